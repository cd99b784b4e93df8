"""What the MELD and IEMOCAP readers share to read data the way TelME's authors did (``profile="authors"``).

The authors' ``preprocessing.py`` (yuntaeyang/TelME, MELD/ and IEMOCAP/) walks the CSV once, in file
order, and numbers a row's speaker *before* it checks whether the row starts a new dialogue; only
then does it empty its speaker list. So the first utterance of every dialogue but the first is
numbered against the previous dialogue's list, and that list restarts without it: its speaker is
numbered afresh when they speak again. The released weights were trained on those numbers, so
the authors' profile reproduces them exactly (``carried_speaker_numbers``).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Hashable, Iterable, Literal, Sequence, get_args

from ...errors import DataError

Profile = Literal["erckit", "authors"]
PROFILES: tuple[str, ...] = get_args(Profile)


def check_profile(profile: str) -> str:
    """``profile`` itself when it is a known one; a DataError listing the choices otherwise."""
    if profile not in PROFILES:
        raise DataError(f"profile {profile!r} is not one of: {', '.join(PROFILES)}")
    return profile


def carried_speaker_numbers(rows: Iterable[tuple[Hashable, str]]) -> list[int]:
    """1-based speaker numbers of ``(dialogue, speaker)`` rows in file order, numbered as the authors did.

    (A, x), (A, y), (B, y), (B, z), (B, y) -> 1, 2, 2, 1, 2: the first row of B is numbered in A's
    list (y is its 2nd speaker), then B's list restarts empty, so z is 1 and y, seen again, is 2.
    """
    speakers: list[str] = []
    numbers: list[int] = []
    previous: object = _START
    for dialogue, speaker in rows:
        if speaker not in speakers:
            speakers.append(speaker)
        numbers.append(speakers.index(speaker) + 1)
        if previous is not _START and dialogue != previous:
            speakers = []
        previous = dialogue
    return numbers


_START = object()


def check_contiguous(path: Path, line: int, dialogue: Hashable, seen: dict[Hashable, int], previous: Hashable) -> None:
    """DataError when ``dialogue`` comes back after other dialogues: the authors' numbering needs its rows together."""
    if dialogue != previous and dialogue in seen:
        raise DataError(
            f"{path}:{line}: dialogue {dialogue!r} continues after other dialogues (its rows start on line "
            f"{seen[dialogue]}); profile 'authors' reads each dialogue's rows as one block, in file order"
        )
    seen.setdefault(dialogue, line)


class ListedPaths:
    """Resolves the paths a CSV lists (``./dataset/IEMOCAP_full_release/Session1/...``) against local folders.

    The authors' paths are relative to their repository; a user's root may be that repository, the
    ``dataset`` folder or the corpus folder itself. So an absolute path that exists is taken as it
    is; any other is tried under each base with 0, 1, 2, ... of its leading folders dropped (never
    above a base: ``..`` is refused). The (base, dropped) pair that worked last is tried first, so a
    whole file costs about one ``stat`` per path.
    """

    def __init__(self, bases: Sequence[Path]):
        self.bases = list(dict.fromkeys(bases))
        self.last: tuple[Path, int] | None = None

    def find(self, listed: str) -> Path | None:
        listed = listed.strip().replace("\\", "/")
        if listed.startswith("/") and Path(listed).is_file():
            return Path(listed)
        parts = [p for p in PurePosixPath(listed).parts if p not in (".", "/")]
        if not parts or ".." in parts:
            return None
        tries = [(base, drop) for base in self.bases for drop in range(len(parts))]
        if self.last in tries:
            tries.insert(0, self.last)  # type: ignore[arg-type]
        for base, drop in tries:
            candidate = base.joinpath(*parts[drop:])
            if candidate.is_file():
                self.last = (base, drop)
                return candidate
        return None


def listed_stem(listed: str) -> str:
    """The file name without suffix of a listed path (``.../Ses01F_impro01_F000.wav`` -> ``Ses01F_impro01_F000``)."""
    return PurePosixPath(listed.strip().replace("\\", "/")).stem
