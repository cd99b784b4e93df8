"""IEMOCAP: one CSV per split plus the corpus' media, in erckit's layout or the TelME authors'.

CSVs: ``root/{split}.csv`` or ``root/IEMOCAP_{split}.csv`` (split = train, dev, test; searched up
to two levels below ``root``). The header picks the layout.

erckit's layout (a column ``Utterance_ID``):

* ``Utterance_ID`` (required): ``Ses01F_impro01_F000``; the dialogue is the id
  without its last ``_`` part, the speaker is the session + the gender letter
  of that last part: ``Ses01_F``. (The letter after the session number,
  ``Ses01F``, only says who wore the motion-capture markers, so it is *not* the
  speaker; nor is the utterance id, which would make every turn a new speaker.)
* ``Utterance`` (required): the transcript.
* ``Emotion`` (required): a full name or IEMOCAP's short code: neu -> neutral,
  fru -> frustration, sad -> sadness, ang -> anger, exc -> excited, hap -> happy.
* ``Dialogue_ID`` (optional): overrides the dialogue derived from the id.
* ``StartTime``, ``EndTime`` (optional, seconds): the utterance's span in the
  dialogue recording. Utterances are ordered by StartTime when every row has one
  (IEMOCAP ids are numbered per speaker, not in turn order), else by file order.

Media are found anywhere under ``root`` (the official tree has
``Session1/dialog/avi/DivX/Ses01F_impro01.avi``, ``Session1/dialog/wav/Ses01F_impro01.wav``,
``Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav``), as TelME uses
them: audio is the per-utterance ``<utterance id>.wav``, decoded whole
(``Utterance.audio_whole``); video is the dialogue-level ``.avi`` cut by the
span. Without a per-utterance wav, audio comes from the dialogue-level
``<dialogue>.wav`` (else the avi's own track) cut by the same span; without
times, there is no video (nothing to cut it by). Missing media are listed in
``corpus.problems``.

The TelME authors' layout (their ``IEMOCAP_{split}.csv``): ``Utterance, Speaker, Dialogue_ID,
Start_Time, End_Time, Wav_Path, Video_Path, Emotion``, where ``Speaker`` holds the utterance id and
the paths point into the released tree (``./dataset/IEMOCAP_full_release/Session1/...``). The
paths are resolved against ``root`` (the corpus folder or any folder above it, see
``ListedPaths``), else found under ``root`` by file name. Read as the authors' code reads it: file
order kept, audio = the listed wav decoded whole, video = the listed avi cut by the span widened by
their 1 s margin on each side (``start - 1`` floored at 0, ``end + 1``; it is in ``Utterance.start``
and ``end``, which apply to the video only). Speakers as in erckit's layout (session + gender),
except under ``profile="authors"``.

``profile="authors"`` (authors' layout only) reproduces their preprocessing.py: the utterance id
is the speaker, speakers are numbered with their carry-over across dialogues
(``Dialogue.speaker_numbers``) and the text is kept exactly as in the file.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ...errors import DataError
from ..types import Corpus, Dialogue, Utterance
from ._authors import ListedPaths, Profile, carried_speaker_numbers, check_contiguous, check_profile, listed_stem
from ._csv import (
    CsvRow, check_label, find_file, fix_text, missing_columns, open_csv, parse_float, require_root, resolve_labels,
)

IEMOCAP_LABELS = ("neutral", "frustration", "sadness", "anger", "excited", "happy")
# The authors' label indices (IEMOCAP/utils.py: ang, exc, fru, hap, neu, sad), as erckit's names.
IEMOCAP_AUTHORS_LABELS = ("anger", "excited", "frustration", "happy", "neutral", "sadness")
IEMOCAP_CODES = {"neu": "neutral", "fru": "frustration", "sad": "sadness", "ang": "anger", "exc": "excited", "hap": "happy"}
COLUMNS = ("Utterance_ID", "Utterance", "Emotion")
AUTHORS_COLUMNS = ("Utterance", "Speaker", "Dialogue_ID", "Start_Time", "End_Time", "Wav_Path", "Video_Path", "Emotion")
# The authors' video reader (IEMOCAP/utils.py get_video) widens every span by this on each side.
AUTHORS_MARGIN = 1.0
SPLITS = ("train", "dev", "test")
IEMOCAP_SOURCE = (
    "IEMOCAP is not shipped with erckit: request it from USC SAIL (https://sail.usc.edu/iemocap/, "
    "release form), then add one CSV per split as docs/data.md describes."
)

Media = dict[str, dict[str, Path]]


def iemocap_speaker(utterance_id: str) -> str:
    """``Ses01F_impro01_F000`` -> ``Ses01_F`` (session + gender letter of the turn)."""
    parts = utterance_id.split("_")
    if len(parts) < 3 or len(parts[0]) < 5 or not parts[-1][:1] in ("F", "M"):
        raise ValueError(f"not an IEMOCAP utterance id: {utterance_id!r}")
    return f"{parts[0][:5]}_{parts[-1][0]}"


def read_iemocap(root: str | Path, labels: Sequence[str] | None = None, profile: Profile = "erckit") -> Corpus:
    """A lazy ``Corpus`` over IEMOCAP CSVs and media at ``root``."""
    check_profile(profile)
    root = Path(root).expanduser().absolute()
    require_root(root, "IEMOCAP", IEMOCAP_SOURCE, "IEMOCAP")
    label_set = resolve_labels(IEMOCAP_LABELS, labels)
    corpus = Corpus(name="IEMOCAP", labels=label_set, splits={})
    media: Media = {}

    def index() -> Media:
        # One walk of the tree, shared by all splits, only when a split needs it.
        if not media:
            for suffix in ("wav", "avi"):
                media[suffix] = {p.stem: p for p in sorted(root.rglob(f"*.{suffix}"))}
        return media

    for split in SPLITS:
        path = find_file(root, [f"{split}.csv", f"IEMOCAP_{split}.csv", f"iemocap_{split}.csv"])
        if path is not None:
            corpus.splits[split] = _loader(path, root, label_set, index, corpus.problems, profile)
    if not corpus.splits:
        raise DataError(f"no IEMOCAP CSVs under {root}: expected {{train,dev,test}}.csv or IEMOCAP_{{split}}.csv")
    return corpus


def _loader(path: Path, root: Path, labels: tuple[str, ...], index: Callable[[], Media], problems: list[str], profile: str):
    return lambda: read_iemocap_split(path, labels, index, problems, profile=profile, root=root)


def read_iemocap_split(
    path: Path,
    labels: Sequence[str],
    media: Media | Callable[[], Media],
    problems: list[str],
    *,
    profile: Profile = "erckit",
    root: Path | None = None,
) -> list[Dialogue]:
    """The dialogues of one IEMOCAP CSV in either layout; ``media`` is the stem index (or makes it on demand)."""
    check_profile(profile)
    index = media if callable(media) else (lambda: media)
    header, rows = open_csv(path, problems, COLUMNS)
    layout = _layout(path, header, profile)
    if layout == "authors":
        return _read_authors(path, rows, labels, index, problems, profile, root or path.parent)
    if profile == "authors":
        raise DataError(
            f"{path}: profile 'authors' reads the TelME authors' CSV layout ({', '.join(AUTHORS_COLUMNS)}); "
            "this file is in erckit's layout (Utterance_ID, ...): read it with profile 'erckit'"
        )
    return _read_erckit(path, rows, labels, index(), problems)


def _layout(path: Path, header: Sequence[str], profile: str) -> str:
    """'erckit' or 'authors' by the header; a DataError naming what each layout lacks otherwise."""
    erckit, authors = missing_columns(header, COLUMNS), missing_columns(header, AUTHORS_COLUMNS)
    if not authors and (profile == "authors" or erckit):
        return "authors"
    if not erckit:
        return "erckit"
    raise DataError(
        f"{path}: missing {erckit} for erckit's IEMOCAP layout ({', '.join(COLUMNS)}; optional Dialogue_ID, "
        f"StartTime, EndTime), or {authors} for the TelME authors' layout ({', '.join(AUTHORS_COLUMNS)}) "
        f"(found: {', '.join(header)}; layouts: docs/data.md)"
    )


def _read_erckit(
    path: Path, rows: Iterator[CsvRow], labels: Sequence[str], media: Media, problems: list[str]
) -> list[Dialogue]:
    groups: dict[str, list[tuple[float | None, int, Utterance]]] = defaultdict(list)
    missing: list[str] = []
    for order, row in enumerate(rows):
        v = row.values
        uid = v["Utterance_ID"].strip()
        speaker = _speaker(uid, path, row.line)
        dialogue = (v.get("Dialogue_ID") or "").strip() or uid.rsplit("_", 1)[0]
        start = parse_float(v.get("StartTime", ""), "StartTime", path, row.line)
        end = parse_float(v.get("EndTime", ""), "EndTime", path, row.line)
        if start is not None and end is not None and end <= start:
            raise DataError(f"{path}:{row.line}: EndTime {end} is not after StartTime {start}")
        # TelME's layout: the utterance's own wav for audio, the dialogue's avi cut by the span
        # for video. Fall back to dialogue-level audio (wav, else the avi's track) cut by the span.
        utterance_wav = media.get("wav", {}).get(uid)
        video = media.get("avi", {}).get(dialogue) if start is not None else None
        audio = utterance_wav or (media.get("wav", {}).get(dialogue, video) if video is not None else None)
        audio_whole = utterance_wav is not None and start is not None
        if video is None:
            start = end = None  # nothing left to cut
        if audio is None:
            missing.append(uid)
        utterance = Utterance(
            speaker=speaker,
            text=fix_text(v["Utterance"]),
            label=check_label(v["Emotion"], labels, IEMOCAP_CODES, path, row.line),
            audio=audio,
            video=video,
            start=start,
            end=end,
            id=uid,
            audio_whole=audio_whole,
        )
        groups[dialogue].append((start, order, utterance))
    _report_missing(path, "media", missing, problems)
    dialogues = []
    for name, items in groups.items():
        timed = all(start is not None for start, _, _ in items)
        items.sort(key=(lambda i: (i[0], i[1])) if timed else (lambda i: i[1]))
        dialogues.append(Dialogue(name, tuple(u for _, _, u in items)))
    return dialogues


def _read_authors(
    path: Path,
    rows: Iterator[CsvRow],
    labels: Sequence[str],
    index: Callable[[], Media],
    problems: list[str],
    profile: str,
    root: Path,
) -> list[Dialogue]:
    listed = ListedPaths([root, path.parent])
    groups: dict[str, list[Utterance]] = {}
    order: list[tuple[str, str]] = []  # (dialogue, raw speaker) per row, for the authors' numbering
    seen: dict[str, int] = {}
    missing: dict[str, list[str]] = {"wav": [], "avi": []}
    authors = profile == "authors"
    for row in rows:
        v = row.values
        uid = v["Speaker"].strip()  # the authors' Speaker column holds the utterance id
        dialogue = v["Dialogue_ID"].strip()
        if not uid or not dialogue:
            raise DataError(f"{path}:{row.line}: empty {'Speaker' if not uid else 'Dialogue_ID'}")
        if authors:
            check_contiguous(path, row.line, dialogue, seen, order[-1][0] if order else None)
        start, end = _span(v, path, row.line)

        def locate(column: str, suffix: str, stem: str) -> Path | None:
            found = listed.find(v[column]) or index().get(suffix, {}).get(listed_stem(v[column]) or stem)
            if found is None:
                missing[suffix].append(uid)
            return found

        audio = locate("Wav_Path", "wav", uid)
        video = locate("Video_Path", "avi", dialogue)
        groups.setdefault(dialogue, []).append(
            Utterance(
                speaker=v["Speaker"] if authors else _speaker(uid, path, row.line),
                text=v["Utterance"] if authors else fix_text(v["Utterance"]),
                label=check_label(v["Emotion"], labels, IEMOCAP_CODES, path, row.line),
                audio=audio,
                video=video,
                start=None if video is None else max(start - AUTHORS_MARGIN, 0.0),
                end=None if video is None else end + AUTHORS_MARGIN,
                id=uid,
                audio_whole=audio is not None,
            )
        )
        order.append((dialogue, v["Speaker"]))
    _report_missing(path, "wav", missing["wav"], problems)
    _report_missing(path, "avi", missing["avi"], problems)
    if not authors:
        return [Dialogue(name, tuple(utterances)) for name, utterances in groups.items()]
    numbers = iter(carried_speaker_numbers(order))
    return [
        Dialogue(name, tuple(utterances), speaker_numbers=tuple(next(numbers) for _ in utterances))
        for name, utterances in groups.items()
    ]


def _span(values: dict[str, str], path: Path, line: int) -> tuple[float, float]:
    start = parse_float(values["Start_Time"], "Start_Time", path, line)
    end = parse_float(values["End_Time"], "End_Time", path, line)
    if start is None or end is None:
        empty = "Start_Time" if start is None else "End_Time"
        raise DataError(f"{path}:{line}: empty {empty} (the authors' layout times every utterance)")
    if end <= start:
        raise DataError(f"{path}:{line}: End_Time {end} is not after Start_Time {start}")
    return start, end


def _speaker(uid: str, path: Path, line: int) -> str:
    try:
        return iemocap_speaker(uid)
    except ValueError as error:
        raise DataError(f"{path}:{line}: {error}") from None


def _report_missing(path: Path, what: str, ids: list[str], problems: list[str]) -> None:
    if ids:
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        problems.append(f"{path.name}: no {what} for {len(ids)} utterance(s) ({shown})")
