"""Dialogue JSONL: erckit's own format (``erckit predict`` input, users' data sets).

One dialogue per line::

    {"id": "d1", "utterances": [
        {"speaker": "A", "text": "hi", "label": "joy", "audio": "wav/d1_0.wav",
         "video": "mp4/d1_0.mp4", "start": 0.0, "end": 1.5, "id": "d1_0"}]}

``speaker`` and ``text`` are required; ``label``, ``audio``, ``video``,
``start``, ``end`` (seconds) and ``id`` are optional. Media paths are relative
to the JSONL file (absolute paths are kept). ``id`` defaults to
``<file stem>-<line>``. Blank lines are skipped. A data set is a directory with
``train.jsonl``, ``dev.jsonl``, ``test.jsonl`` (any subset) and optionally
``labels.json`` (a JSON list: the label order); without it the labels are the
sorted set of labels in ``train.jsonl``. Errors name ``file:line``; media files
that do not exist are listed in the problems and left for the media policy.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

from ...errors import DataError
from ..types import Corpus, Dialogue, Utterance, repeated_labels
from ._csv import resolve_labels

SPLITS = ("train", "dev", "test")
UTTERANCE_KEYS = {"speaker", "text", "label", "audio", "video", "start", "end", "id"}


def read_dialogue_jsonl(
    path: str | Path, labels: Sequence[str] | None = None, problems: list[str] | None = None
) -> list[Dialogue]:
    """Dialogues of one JSONL file. With ``labels``, every given label must be one of them."""
    path = Path(path).expanduser().absolute()
    problems = problems if problems is not None else []
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    dialogues: list[Dialogue] = []
    seen: dict[str, int] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            parsed = parse_dialogue_line(raw, path, number, labels, problems)
            if parsed is None:
                continue
            dialogue = parsed[1]
            if dialogue.id in seen:
                raise DataError(f"{path}:{number}: duplicate dialogue id {dialogue.id!r} (first on line {seen[dialogue.id]})")
            seen[dialogue.id] = number
            dialogues.append(dialogue)
    return dialogues


def parse_dialogue_line(
    raw: bytes, path: Path, number: int, labels: Sequence[str] | None = None, problems: list[str] | None = None
) -> tuple[dict[str, Any], Dialogue] | None:
    """One line of a dialogue JSONL file -> (raw record, Dialogue); None for a blank line.

    Raises ``DataError`` naming ``file:line`` for bad bytes, bad JSON or a bad dialogue.
    With ``labels``, every given label must be one of them.
    """
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}:{number}: not UTF-8 (byte 0x{raw[error.start]:02x} at column {error.start + 1})") from None
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{number}: invalid JSON: {error}") from None
    problems = problems if problems is not None else []

    def media(key: str, value: str, at: str) -> Path:  # relative to the file; a missing file is a problem, not an error
        resolved = (path.parent / value).absolute()
        if not resolved.is_file():
            problems.append(f"{at}: {key} file {resolved} does not exist")
        return resolved

    return record, parse_dialogue_record(record, f"{path}:{number}", f"{path.stem}-{number}", media, labels)


MediaLocator = Callable[[str, str, str], Path]  # (key "audio"/"video", the input's string, where) -> the file


def parse_dialogue_record(
    record: Any, where: str, default_id: str, media: MediaLocator, labels: Sequence[str] | None = None
) -> Dialogue:
    """A dialogue from its decoded JSON object; ``DataError`` messages start with ``where``.

    ``media`` turns each ``audio``/``video`` string into a path (and may refuse it with a
    ``DataError``); ``default_id`` is the id of a dialogue that gives none. With ``labels``,
    every given label must be one of them.
    """
    allowed = set(labels) if labels is not None else None
    return _dialogue(record, where, default_id, allowed, labels, media)


def _dialogue(
    record: Any, where: str, default_id: str, allowed: set[str] | None, labels: Sequence[str] | None, media: MediaLocator
) -> Dialogue:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object with 'utterances', got {type(record).__name__}")
    turns = record.get("utterances")
    if not isinstance(turns, list):
        raise DataError(f"{where}: 'utterances' must be a list of objects")
    if not turns:
        raise DataError(f"{where}: empty dialogue (no utterances)")
    dialogue_id = record.get("id", default_id)
    if not isinstance(dialogue_id, (str, int)) or isinstance(dialogue_id, bool):
        raise DataError(f"{where}: 'id' must be a string or an integer")
    utterances = []
    for index, turn in enumerate(turns):
        at = f"{where}: utterance {index}"
        if not isinstance(turn, dict):
            raise DataError(f"{at}: expected an object, got {type(turn).__name__}")
        unknown = sorted(set(turn) - UTTERANCE_KEYS)
        if unknown:
            raise DataError(f"{at}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(UTTERANCE_KEYS))}")
        for key in ("speaker", "text"):
            if key not in turn:
                raise DataError(f"{at}: missing '{key}'")
            if not isinstance(turn[key], str):
                raise DataError(f"{at}: '{key}' must be a string")
        label = turn.get("label")
        if label is not None:
            if not isinstance(label, str):
                raise DataError(f"{at}: 'label' must be a string")
            if allowed is not None and label not in allowed:
                raise DataError(f"{at}: unknown label {label!r}; valid labels: {', '.join(labels or ())}")
        start, end = (_seconds(turn, key, at) for key in ("start", "end"))
        if start is not None and end is not None and end <= start:
            raise DataError(f"{at}: 'end' ({end}) is not after 'start' ({start})")
        utterances.append(
            Utterance(
                speaker=turn["speaker"],
                text=turn["text"],
                label=label,
                audio=_media(turn, "audio", at, media),
                video=_media(turn, "video", at, media),
                start=start,
                end=end,
                id=None if turn.get("id") is None else str(turn["id"]),
            )
        )
    return Dialogue(str(dialogue_id), tuple(utterances))


def _seconds(turn: dict, key: str, at: str) -> float | None:
    value = turn.get(key)
    if value is None:
        return None
    # json.loads reads NaN and Infinity: a span made of them would cut nothing sensible.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DataError(f"{at}: '{key}' must be a finite, non-negative number of seconds, got {value!r}")
    return float(value)


def _media(turn: dict, key: str, at: str, media: MediaLocator) -> Path | None:
    value = turn.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise DataError(f"{at}: '{key}' must be a path string")
    return media(key, value, at)


def read_jsonl_dataset(root: str | Path, labels: Sequence[str] | None = None, name: str = "DialogueJSONL") -> Corpus:
    """A ``Corpus`` over ``root/{train,dev,test}.jsonl`` with labels as documented above."""
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected train.jsonl, dev.jsonl, test.jsonl inside)")
    files = {split: root / f"{split}.jsonl" for split in SPLITS if (root / f"{split}.jsonl").is_file()}
    if not files:
        raise DataError(f"{root}: no split files; expected any of {', '.join(s + '.jsonl' for s in SPLITS)}")
    problems: list[str] = []
    label_set = resolve_labels((), labels) if labels is not None else _default_labels(root, files)
    corpus = Corpus(name=name, labels=label_set, splits={}, problems=problems)
    for split, path in files.items():
        corpus.splits[split] = (lambda p=path: read_dialogue_jsonl(p, label_set, corpus.problems))
    return corpus


def _default_labels(root: Path, files: dict[str, Path]) -> tuple[str, ...]:
    listing = root / "labels.json"
    if listing.is_file():
        try:
            value = json.loads(listing.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise DataError(f"{listing}: invalid JSON: {error}") from None
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise DataError(f"{listing}: expected a non-empty JSON list of label strings")
        duplicates = repeated_labels(value)
        if duplicates:
            raise DataError(f"{listing}: duplicate label(s) {', '.join(map(repr, duplicates))}")
        return tuple(value)
    source = files.get("train") or next(iter(files.values()))
    found = {u.label for d in read_dialogue_jsonl(source, None, []) for u in d.utterances if u.label is not None}
    if not found:
        raise DataError(f"{source}: no labels found and no labels.json beside it")
    return tuple(sorted(found))
