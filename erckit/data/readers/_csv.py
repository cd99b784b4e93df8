"""Shared CSV plumbing for the readers: decoding, required columns, text clean-up, labels.

Encoding decision (documented in docs/data.md): CSVs are read as UTF-8 (a BOM is
ignored). A line holding bytes that are not valid UTF-8 is decoded as cp1252 (what
spreadsheet tools on Windows write; undefined bytes become U+FFFD) and the reader
records a problem naming the file, line and byte offset, so one stray byte never
throws away a corpus, and is never silently hidden either.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from ...errors import DataError
from ..types import repeated_labels

# Characters that only appear in text that was UTF-8, decoded as cp1252 and
# re-encoded (e.g. "’" -> "â€™"); their presence triggers the repair attempt.
_MOJIBAKE_MARKERS = frozenset("ÃâÂð€")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "′": "'", "“": '"', "”": '"', "„": '"', "″": '"', "\u00a0": " "})


def require_root(root: Path, corpus: str, source: str, example: str) -> None:
    """A ``DataError`` saying where ``corpus`` comes from and how to point erckit at it."""
    if root.is_dir():
        return
    state = "is not a directory" if root.exists() else "does not exist"
    raise DataError(
        f"{corpus} root {root} {state}. {source} Then point the recipe at it: "
        f"--set data.root=/path/to/{example} (layout: docs/data.md)"
    )


@dataclass
class CsvRow:
    line: int  # 1-based line number of the row in the file (header is line 1)
    values: dict[str, str]


def read_csv(path: Path, required: Sequence[str], problems: list[str]) -> Iterator[CsvRow]:
    """Rows of ``path`` as dicts; DataError naming file and column if one is missing."""
    header, rows = open_csv(path, problems, required)
    missing = missing_columns(header, required)
    if missing:
        raise DataError(f"{path}: missing {missing} (found: {', '.join(header)})")
    return rows


def open_csv(path: Path, problems: list[str], expected: Sequence[str] = ()) -> tuple[list[str], Iterator[CsvRow]]:
    """The header of ``path`` and an iterator over its rows, for a reader that picks a layout by header."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    text = decode_bytes(path, path.read_bytes(), problems)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        wanted = f" (expected a header with columns {', '.join(expected)})" if expected else ""
        raise DataError(f"{path}: empty file{wanted}") from None
    return header, _rows(path, reader, header)


def missing_columns(header: Sequence[str], required: Sequence[str]) -> str:
    """``"column 'A'"`` / ``"columns 'A', 'B'"`` for the required columns not in ``header``; "" if none."""
    missing = [c for c in required if c not in header]
    if not missing:
        return ""
    return f"column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)}"


def _rows(path: Path, reader: Any, header: list[str]) -> Iterator[CsvRow]:
    previous_end = reader.line_num
    for record in reader:
        line = previous_end + 1
        previous_end = reader.line_num
        if not any(v.strip() for v in record):
            continue  # blank line
        if len(record) != len(header):
            raise DataError(f"{path}:{line}: expected {len(header)} fields, found {len(record)}")
        yield CsvRow(line, dict(zip(header, record)))


def decode_bytes(path: Path, data: bytes, problems: list[str]) -> str:
    """UTF-8 text of ``data``; non-UTF-8 lines are decoded as cp1252 and reported."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    parts: list[str] = []
    offset = 0
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        try:
            parts.append(line.decode("utf-8"))
        except UnicodeDecodeError as error:
            bad = line[error.start]
            problems.append(
                f"{path}:{number}: byte 0x{bad:02x} at offset {offset + error.start} is not UTF-8; "
                "line decoded as cp1252"
            )
            parts.append(line.decode("cp1252", errors="replace"))
        offset += len(line)
    return "".join(parts)


def fix_text(text: str) -> str:
    """Repair UTF-8-read-as-cp1252 mojibake, normalise curly quotes to ASCII, trim.

    "Itâ€™s" -> "It's"; "café" stays "café" (the repair is kept only when the
    round trip decodes cleanly).
    """
    if any(ch in _MOJIBAKE_MARKERS for ch in text):
        text = _undo_mojibake(text)
    text = unicodedata.normalize("NFC", text).translate(_QUOTES)
    return " ".join(text.split())


def _undo_mojibake(text: str) -> str:
    # Each run of non-ASCII characters is repaired on its own, so a correctly
    # encoded "café" next to a broken "â€™" does not block the repair.
    return _NON_ASCII.sub(lambda match: _undo_run(match.group()), text)


def _undo_run(text: str) -> str:
    raw = bytearray()
    for ch in text:
        try:
            raw += ch.encode("cp1252")
        except UnicodeEncodeError:
            if ord(ch) < 256:  # the 5 bytes cp1252 leaves undefined pass through as latin-1
                raw.append(ord(ch))
            else:
                return text
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return text


def check_label(
    raw: str, labels: Sequence[str], aliases: dict[str, str], path: Path, line: int
) -> str:
    """The canonical label for ``raw`` (case-insensitive, short codes via ``aliases``)."""
    key = raw.strip().lower()
    by_lower = {label.lower(): label for label in labels}
    if key in aliases and aliases[key].lower() in by_lower:
        return by_lower[aliases[key].lower()]
    if key in by_lower:
        return by_lower[key]
    raise DataError(
        f"{path}:{line}: unknown label {raw!r}; valid labels: {', '.join(labels)}"
    )


def parse_float(value: str, column: str, path: Path, line: int) -> float | None:
    """A float cell (None when empty); DataError naming file, line and column otherwise."""
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"{path}:{line}: column {column!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise DataError(f"{path}:{line}: column {column!r}: {value!r} is not a finite number")
    return number


def parse_int(value: str, column: str, path: Path, line: int) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DataError(f"{path}:{line}: column {column!r}: {value!r} is not an integer") from None


def find_file(root: Path, names: Sequence[str]) -> Path | None:
    """The first of ``names`` found in ``root`` or up to two directory levels below it."""
    for name in names:
        for pattern in (name, f"*/{name}", f"*/*/{name}"):
            found = sorted(root.glob(pattern))
            if found:
                return found[0]
    return None


def resolve_labels(default: Sequence[str], labels: Sequence[str] | None) -> tuple[str, ...]:
    """The label override if given (must be non-empty and unique), else ``default``."""
    if labels is None:
        return tuple(default)
    labels = tuple(labels)
    if not labels:
        raise DataError("labels: the label list is empty")
    duplicates = repeated_labels(labels)
    if duplicates:
        raise DataError(f"labels: duplicate label(s) {', '.join(duplicates)}")
    return labels
