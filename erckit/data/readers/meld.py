"""MELD (Poria et al., 2019): the official CSVs plus per-utterance mp4 clips.

Layout (``root`` is searched up to two levels deep)::

    root/train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv
    root/train_splits/dia{D}_utt{U}.mp4
    root/dev_splits_complete/dia{D}_utt{U}.mp4
    root/output_repeated_splits_test/dia{D}_utt{U}.mp4

Columns used: Utterance, Speaker, Emotion, Dialogue_ID, Utterance_ID (Sr No.,
Sentiment, Season, Episode, StartTime, EndTime are ignored: each clip already is
one utterance). Dialogues are ``"dia{D}"``, utterances sorted by Utterance_ID,
ids ``"dia{D}_utt{U}"``. Text is repaired (mojibake, curly quotes: see
``fix_text``). A clip serves as both audio and video. A missing clip leaves
audio/video None and is listed in ``corpus.problems``; a split without any clip
directory is reported once (text-only use).

``profile="authors"`` reads MELD as the TelME authors' preprocessing.py did: their
``{split}_meld_emo.csv`` when present (the official columns plus ``Video_Path``), else the
official CSV; file order kept; text and speaker names exactly as in the file; speakers numbered
with their carry-over across dialogues (``Dialogue.speaker_numbers``). Clips are found as above,
then by ``Video_Path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ...errors import DataError
from ..types import Corpus, Dialogue, Utterance
from ._authors import ListedPaths, Profile, carried_speaker_numbers, check_contiguous, check_profile
from ._csv import check_label, find_file, fix_text, parse_int, read_csv, require_root, resolve_labels

# erckit's fixed order (label index = position), kept for the models trained with it. The TelME
# authors index labels alphabetically: MELD_AUTHORS_LABELS (recipes and the importer use it).
MELD_LABELS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")
MELD_AUTHORS_LABELS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")

MELD_SPLITS = {
    "train": ("train_sent_emo.csv", ("train_splits*",)),
    "dev": ("dev_sent_emo.csv", ("dev_splits*",)),
    "test": ("test_sent_emo.csv", ("output_repeated_splits_test*", "test_splits*")),
}
COLUMNS = ("Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID")
MELD_SOURCE = (
    "MELD is not shipped with erckit: download the official MELD.Raw release (MELD.Raw.tar.gz, "
    "linked from https://affective-meld.github.io/) and unpack it, with the train/dev/test clip "
    "archives inside it."
)


def read_meld(root: str | Path, labels: Sequence[str] | None = None, profile: Profile = "erckit") -> Corpus:
    """A lazy ``Corpus`` over MELD at ``root`` (splits read on first use)."""
    check_profile(profile)
    root = Path(root).expanduser().absolute()
    require_root(root, "MELD", MELD_SOURCE, "MELD.Raw")
    label_set = resolve_labels(MELD_LABELS, labels)
    corpus = Corpus(name="MELD", labels=label_set, splits={})
    for split, (csv_name, clip_patterns) in MELD_SPLITS.items():
        names = [f"{split}_meld_emo.csv", csv_name] if profile == "authors" else [csv_name]
        csv_path = find_file(root, names)
        if csv_path is None:
            continue
        corpus.splits[split] = _loader(csv_path, root, clip_patterns, label_set, corpus.problems, profile)
    if not corpus.splits:
        raise DataError(
            f"no MELD CSVs under {root}: expected {', '.join(n for n, _ in MELD_SPLITS.values())}"
        )
    return corpus


def _loader(csv_path: Path, root: Path, patterns: tuple[str, ...], labels: tuple[str, ...], problems: list[str], profile: str):
    def load() -> list[Dialogue]:
        clip_dir = find_clip_dir(root, patterns)
        if profile == "authors":
            return read_meld_split_authors(csv_path, clip_dir, labels, problems, root)
        return read_meld_split(csv_path, clip_dir, labels, problems)

    return load


def find_clip_dir(root: Path, patterns: Sequence[str]) -> Path | None:
    for pattern in patterns:
        for depth in ("", "*/", "*/*/"):
            found = sorted(p for p in root.glob(depth + pattern) if p.is_dir())
            if found:
                return found[0]
    return None


def read_meld_split(
    csv_path: Path, clip_dir: Path | None, labels: Sequence[str], problems: list[str]
) -> list[Dialogue]:
    """Dialogues of one MELD CSV, with clips from ``clip_dir`` (None: text only)."""
    rows: dict[int, list[tuple[int, Utterance]]] = {}
    clips = _clips(csv_path, clip_dir, problems)
    missing: list[str] = []
    for row in read_csv(csv_path, COLUMNS, problems):
        v = row.values
        dialogue = parse_int(v["Dialogue_ID"], "Dialogue_ID", csv_path, row.line)
        number = parse_int(v["Utterance_ID"], "Utterance_ID", csv_path, row.line)
        uid = f"dia{dialogue}_utt{number}"
        clip = clips.get(f"{uid}.mp4")
        if clip_dir is not None and clip is None:
            missing.append(uid)
        utterance = Utterance(
            speaker=fix_text(v["Speaker"]),
            text=fix_text(v["Utterance"]),
            label=check_label(v["Emotion"], labels, {}, csv_path, row.line),
            audio=clip,
            video=clip,
            id=uid,
        )
        rows.setdefault(dialogue, []).append((number, utterance))
    _report_missing(clip_dir, missing, problems)
    return [
        Dialogue(f"dia{d}", tuple(u for _, u in sorted(items, key=lambda item: item[0])))
        for d, items in sorted(rows.items())
    ]


def read_meld_split_authors(
    csv_path: Path, clip_dir: Path | None, labels: Sequence[str], problems: list[str], root: Path | None = None
) -> list[Dialogue]:
    """One MELD CSV as the authors' preprocessing.py read it: file order, raw text, carried speaker numbers."""
    clips = {p.name: p for p in clip_dir.iterdir()} if clip_dir is not None else {}
    listed = ListedPaths([root or csv_path.parent, csv_path.parent])
    groups: dict[int, list[Utterance]] = {}
    order: list[tuple[int, str]] = []
    seen: dict[int, int] = {}
    missing: list[str] = []
    for row in read_csv(csv_path, COLUMNS, problems):
        v = row.values
        dialogue = parse_int(v["Dialogue_ID"], "Dialogue_ID", csv_path, row.line)
        check_contiguous(csv_path, row.line, dialogue, seen, order[-1][0] if order else None)
        uid = f"dia{dialogue}_utt{parse_int(v['Utterance_ID'], 'Utterance_ID', csv_path, row.line)}"
        clip = clips.get(f"{uid}.mp4") or listed.find(v.get("Video_Path", ""))
        if clip is None:
            missing.append(uid)
        groups.setdefault(dialogue, []).append(
            Utterance(
                speaker=v["Speaker"],
                text=v["Utterance"],
                label=check_label(v["Emotion"], labels, {}, csv_path, row.line),
                audio=clip,
                video=clip,
                id=uid,
            )
        )
        order.append((dialogue, v["Speaker"]))
    if clip_dir is None and len(missing) == len(order):
        problems.append(_no_clip_dir(csv_path))  # nothing found anywhere: one line, as in erckit's profile
    else:
        _report_missing(clip_dir, missing, problems)
    numbers = iter(carried_speaker_numbers(order))
    return [
        Dialogue(f"dia{d}", tuple(items), speaker_numbers=tuple(next(numbers) for _ in items))
        for d, items in groups.items()
    ]


def _clips(csv_path: Path, clip_dir: Path | None, problems: list[str]) -> dict[str, Path]:
    if clip_dir is None:
        problems.append(_no_clip_dir(csv_path))
        return {}
    return {p.name: p for p in clip_dir.iterdir()}


def _no_clip_dir(csv_path: Path) -> str:
    return f"{csv_path.name}: no clip directory found; audio and video are absent for this split"


def _report_missing(clip_dir: Path | None, missing: list[str], problems: list[str]) -> None:
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        where = clip_dir if clip_dir is not None else "the listed Video_Path files"
        problems.append(f"{where}: {len(missing)} clip(s) missing ({shown}); their audio and video are absent")
