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
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

from ..types import Corpus, Dialogue, Utterance
from ._csv import check_label, find_file, fix_text, parse_int, read_csv, require_root, resolve_labels

# Fixed order (label index = position); the order TelME and most MELD baselines use.
MELD_LABELS = ("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger")

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


def read_meld(root: str | Path, labels: Sequence[str] | None = None) -> Corpus:
    """A lazy ``Corpus`` over MELD at ``root`` (splits read on first use)."""
    from ...errors import DataError

    root = Path(root).expanduser().absolute()
    require_root(root, "MELD", MELD_SOURCE, "MELD.Raw")
    label_set = resolve_labels(MELD_LABELS, labels)
    corpus = Corpus(name="MELD", labels=label_set, splits={})
    for split, (csv_name, clip_patterns) in MELD_SPLITS.items():
        csv_path = find_file(root, [csv_name])
        if csv_path is None:
            continue
        corpus.splits[split] = _loader(csv_path, root, split, clip_patterns, label_set, corpus.problems)
    if not corpus.splits:
        raise DataError(
            f"no MELD CSVs under {root}: expected {', '.join(n for n, _ in MELD_SPLITS.values())}"
        )
    return corpus


def _loader(csv_path: Path, root: Path, split: str, patterns: tuple[str, ...], labels: tuple[str, ...], problems: list[str]):
    def load() -> list[Dialogue]:
        return read_meld_split(csv_path, find_clip_dir(root, patterns), labels, problems)

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
    rows: dict[int, list[tuple[int, Utterance]]] = defaultdict(list)
    clips = {p.name: p for p in clip_dir.iterdir()} if clip_dir is not None else {}
    if clip_dir is None:
        problems.append(f"{csv_path.name}: no clip directory found; audio and video are absent for this split")
    missing: list[str] = []
    for row in read_csv(csv_path, COLUMNS, problems):
        v = row.values
        dialogue = parse_int(v["Dialogue_ID"], "Dialogue_ID", csv_path, row.line)
        number = parse_int(v["Utterance_ID"], "Utterance_ID", csv_path, row.line)
        uid = f"dia{dialogue}_utt{number}"
        clip = clips.get(f"{uid}.mp4")
        if clip_dir is not None and clip is None:
            missing.append(uid)
        rows[dialogue].append(
            (
                number,
                Utterance(
                    speaker=fix_text(v["Speaker"]),
                    text=fix_text(v["Utterance"]),
                    label=check_label(v["Emotion"], labels, {}, csv_path, row.line),
                    audio=clip,
                    video=clip,
                    id=uid,
                ),
            )
        )
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        problems.append(f"{clip_dir}: {len(missing)} clip(s) missing ({shown}); their audio and video are absent")
    return [
        Dialogue(f"dia{d}", tuple(u for _, u in sorted(items, key=lambda item: item[0])))
        for d, items in sorted(rows.items())
    ]
