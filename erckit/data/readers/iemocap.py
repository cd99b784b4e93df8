"""IEMOCAP in a TelME-style CSV layout (one CSV per split) plus the corpus' media.

CSV (``root/{split}.csv`` or ``root/IEMOCAP_{split}.csv``; split = train, dev, test),
columns:

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

Media, found anywhere under ``root`` (the official tree has
``Session1/dialog/avi/DivX/Ses01F_impro01.avi``, ``Session1/dialog/wav/Ses01F_impro01.wav``,
``Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav``), as TelME uses
them: audio is the per-utterance ``<utterance id>.wav``, decoded whole
(``Utterance.audio_whole``); video is the dialogue-level ``.avi`` cut by the
span. Without a per-utterance wav, audio comes from the dialogue-level
``<dialogue>.wav`` (else the avi's own track) cut by the same span; without
times, there is no video (nothing to cut it by). Missing media are listed in
``corpus.problems``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

from ...errors import DataError
from ..types import Corpus, Dialogue, Utterance
from ._csv import check_label, find_file, fix_text, parse_float, read_csv, require_root, resolve_labels

IEMOCAP_LABELS = ("neutral", "frustration", "sadness", "anger", "excited", "happy")
IEMOCAP_CODES = {"neu": "neutral", "fru": "frustration", "sad": "sadness", "ang": "anger", "exc": "excited", "hap": "happy"}
COLUMNS = ("Utterance_ID", "Utterance", "Emotion")
SPLITS = ("train", "dev", "test")
IEMOCAP_SOURCE = (
    "IEMOCAP is not shipped with erckit: request it from USC SAIL (https://sail.usc.edu/iemocap/, "
    "release form), then add one CSV per split as docs/data.md describes."
)


def iemocap_speaker(utterance_id: str) -> str:
    """``Ses01F_impro01_F000`` -> ``Ses01_F`` (session + gender letter of the turn)."""
    parts = utterance_id.split("_")
    if len(parts) < 3 or len(parts[0]) < 5 or not parts[-1][:1] in ("F", "M"):
        raise ValueError(f"not an IEMOCAP utterance id: {utterance_id!r}")
    return f"{parts[0][:5]}_{parts[-1][0]}"


def read_iemocap(root: str | Path, labels: Sequence[str] | None = None) -> Corpus:
    """A lazy ``Corpus`` over IEMOCAP CSVs and media at ``root``."""
    root = Path(root).expanduser().absolute()
    require_root(root, "IEMOCAP", IEMOCAP_SOURCE, "IEMOCAP")
    label_set = resolve_labels(IEMOCAP_LABELS, labels)
    corpus = Corpus(name="IEMOCAP", labels=label_set, splits={})
    media: dict[str, dict[str, Path]] = {}

    def index() -> dict[str, dict[str, Path]]:
        # One walk of the tree, shared by all splits, only when a split is read.
        if not media:
            for suffix in ("wav", "avi"):
                media[suffix] = {p.stem: p for p in sorted(root.rglob(f"*.{suffix}"))}
        return media

    for split in SPLITS:
        path = find_file(root, [f"{split}.csv", f"IEMOCAP_{split}.csv", f"iemocap_{split}.csv"])
        if path is not None:
            corpus.splits[split] = _loader(path, label_set, index, corpus.problems)
    if not corpus.splits:
        raise DataError(f"no IEMOCAP CSVs under {root}: expected {{train,dev,test}}.csv or IEMOCAP_{{split}}.csv")
    return corpus


def _loader(path, labels, index, problems):
    return lambda: read_iemocap_split(path, labels, index(), problems)


def read_iemocap_split(
    path: Path, labels: Sequence[str], media: dict[str, dict[str, Path]], problems: list[str]
) -> list[Dialogue]:
    groups: dict[str, list[tuple[float | None, int, Utterance]]] = defaultdict(list)
    missing: list[str] = []
    for order, row in enumerate(read_csv(path, COLUMNS, problems)):
        v = row.values
        uid = v["Utterance_ID"].strip()
        try:
            speaker = iemocap_speaker(uid)
        except ValueError as error:
            raise DataError(f"{path}:{row.line}: {error}") from None
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
        groups[dialogue].append(
            (
                start,
                order,
                Utterance(
                    speaker=speaker,
                    text=fix_text(v["Utterance"]),
                    label=check_label(v["Emotion"], labels, IEMOCAP_CODES, path, row.line),
                    audio=audio,
                    video=video,
                    start=start,
                    end=end,
                    id=uid,
                    audio_whole=audio_whole,
                ),
            )
        )
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        problems.append(f"{path.name}: no media for {len(missing)} utterance(s) ({shown})")
    dialogues = []
    for name, items in groups.items():
        timed = all(start is not None for start, _, _ in items)
        items.sort(key=(lambda i: (i[0], i[1])) if timed else (lambda i: i[1]))
        dialogues.append(Dialogue(name, tuple(u for _, _, u in items)))
    return dialogues
