"""Timed text for one long recording: subtitles (SRT, WebVTT) or a transcript (JSONL, CSV) -> cues -> dialogues.

* ``read_cues(path)`` -> ``Cue``s in file order. SRT and VTT are parsed with the
  ``srt`` and ``webvtt-py`` libraries (extra ``erckit[subtitles]``); every timing
  line is also checked strictly first, as both libraries skip or misread a
  malformed one silently. Speakers come from VTT ``<v Name>`` voice tags or
  ``Name: text`` lines (``speaker_pattern``, a regex with groups ``speaker`` and
  ``text``); a cue without one gets ``UNKNOWN_SPEAKER``. A transcript has one row
  per segment: ``start``, ``end``, ``text`` and optionally ``speaker``.
* ``tidy_cues(cues)`` -> cues fit to predict: empty or zero-length cues are
  dropped, unordered ones sorted, overlaps kept; each case is one ``CueWarning``
  naming the cue.
* ``dialogues_from_cues(cues, media)`` -> ``Dialogue``s whose utterances are
  spans of ``media``; a silence longer than ``gap`` starts a new dialogue.
* ``format_srt`` / ``format_vtt`` write cues back, each with a note line.

Text files are read as UTF-8, or UTF-16 / UTF-8 with a byte-order mark; any
other encoding must be named (``encoding="latin-1"``): guessing it would
silently garble the text the model reads.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ..errors import DataError, ErckitError
from .types import Dialogue, Utterance

SUBTITLE_SUFFIXES = (".srt", ".vtt")
TRANSCRIPT_SUFFIXES = (".jsonl", ".csv")
UNKNOWN_SPEAKER = "unknown"
# "Ross: we were on a break" -> speaker "Ross". A name is at most three words without
# punctuation, so a sentence that merely holds a colon ("Well, here is the thing: no") stays text.
DEFAULT_SPEAKER_PATTERN = r"^\s*(?P<speaker>[^\s:<>\[\],!?][^:<>\[\],!?]{0,40}?)\s*:\s+(?P<text>.*)$"
_SPEAKER_WORDS = 3
_TIMING = {
    ".srt": re.compile(r"^\s*\d{1,3}:\d{2}:\d{2}[,.]\d{1,3}\s*-->\s*\d{1,3}:\d{2}:\d{2}[,.]\d{1,3}(\s+.*)?$"),
    ".vtt": re.compile(r"^\s*(\d{1,3}:)?\d{2}:\d{2}\.\d{3}\s*-->\s*(\d{1,3}:)?\d{2}:\d{2}\.\d{3}(\s+.*)?$"),
}
_VTT_TIME = re.compile(r"^(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})$")
SUBTITLES_EXTRA = "pip install 'erckit[subtitles]'"


class CueWarning(UserWarning):
    """A cue was dropped, moved or changed (named in the message) on the way to a prediction."""


@dataclass(frozen=True)
class Cue:
    start: float  # seconds into the recording
    end: float
    text: str
    speaker: str = UNKNOWN_SPEAKER
    where: str = ""  # "file:line" of the cue, for messages

    def describe(self) -> str:
        return f"{self.where}: cue [{self.start:.3f} --> {self.end:.3f}]"


# ------------------------------------------------------------------ reading


def read_cues(path: str | Path, *, speaker_pattern: str | None = None, encoding: str | None = None) -> list[Cue]:
    """The cues of a subtitle (.srt, .vtt) or transcript (.jsonl, .csv) file, in file order."""
    path = Path(path).expanduser().absolute()
    suffix = path.suffix.lower()
    if suffix not in SUBTITLE_SUFFIXES + TRANSCRIPT_SUFFIXES:
        raise DataError(f"{path}: unknown timed-text format {suffix or '(no suffix)'!r}; "
                        f"expected one of {', '.join(SUBTITLE_SUFFIXES + TRANSCRIPT_SUFFIXES)}")
    text = read_text(path, encoding)
    if suffix in TRANSCRIPT_SUFFIXES:
        return _read_transcript(path, text)
    pattern = _speaker_regex(speaker_pattern)
    _check_timings(path, text, suffix)
    return _read_vtt(path, text, pattern) if suffix == ".vtt" else _read_srt(path, text, pattern)


def read_text(path: Path, encoding: str | None = None) -> str:
    """The file's text: ``encoding`` when given, else UTF-8 or a byte-order-marked UTF-16/UTF-8."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    if encoding is None:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            encoding = "utf-16"
        elif raw.startswith(b"\xef\xbb\xbf"):
            encoding = "utf-8-sig"
    try:
        return raw.decode(encoding or "utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except LookupError:
        raise DataError(f"{path}: unknown text encoding {encoding!r}") from None
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        hint = "" if encoding else "; give its encoding, e.g. --encoding latin-1 (Python: encoding='latin-1')"
        raise DataError(f"{path}:{line}: not {encoding or 'UTF-8'} text (byte 0x{raw[error.start]:02x}){hint}") from None


def _speaker_regex(pattern: str | None) -> re.Pattern[str]:
    try:
        regex = re.compile(pattern or DEFAULT_SPEAKER_PATTERN, re.DOTALL)
    except re.error as error:
        raise DataError(f"speaker pattern {pattern!r} is not a regular expression: {error}") from None
    if not {"speaker", "text"} <= set(regex.groupindex):
        raise DataError(f"speaker pattern {pattern!r} needs the named groups (?P<speaker>...) and (?P<text>...)")
    return regex


def _split_speaker(text: str, regex: re.Pattern[str]) -> tuple[str | None, str]:
    match = regex.match(text)
    if match is None:
        return None, text
    speaker = match.group("speaker").strip()
    if not speaker or len(speaker.split()) > _SPEAKER_WORDS and regex.pattern == DEFAULT_SPEAKER_PATTERN:
        return None, text
    return speaker, match.group("text").strip()


def _check_timings(path: Path, text: str, suffix: str) -> None:
    """Both libraries pass over a malformed timing line without a word: refuse it here, naming the line."""
    for number, line in enumerate(text.split("\n"), start=1):
        if "-->" in line and not _TIMING[suffix].match(line):
            raise DataError(f"{path}:{number}: malformed cue timing {line.strip()!r} "
                            f"(expected {'00:01:02,345 --> 00:01:03,000' if suffix == '.srt' else '00:01:02.345 --> 00:01:03.000'})")


def _line_of(text: str, needle: str, after: int) -> tuple[int, int]:
    """1-based line of the first ``needle`` at or after character ``after``, and where it ends."""
    found = text.find(needle, after)
    if found < 0:
        return 0, after
    return text.count("\n", 0, found) + 1, found + len(needle)


def _read_srt(path: Path, text: str, regex: re.Pattern[str]) -> list[Cue]:
    srt = _import("srt")
    cues = []
    cursor = 0
    try:
        subtitles = list(srt.parse(text))
    except srt.SRTParseError as error:
        raise DataError(f"{path}: not a well-formed SRT file: {error}") from None
    for subtitle in subtitles:
        line, cursor = _line_of(text, "-->", cursor)
        speaker, words = _split_speaker(subtitle.content.strip(), regex)
        cues.append(Cue(subtitle.start.total_seconds(), subtitle.end.total_seconds(), words,
                        speaker or UNKNOWN_SPEAKER, f"{path}:{line}"))
    return cues


def _read_vtt(path: Path, text: str, regex: re.Pattern[str]) -> list[Cue]:
    webvtt = _import("webvtt")
    try:
        captions = list(webvtt.from_string(text))
    except webvtt.errors.MalformedFileError as error:
        raise DataError(f"{path}: not a well-formed WebVTT file: {error}") from None
    cues = []
    cursor = 0
    for caption in captions:
        line, cursor = _line_of(text, "-->", cursor)
        speaker, words = caption.voice, caption.text.strip()
        if not speaker:
            speaker, words = _split_speaker(words, regex)
        cues.append(Cue(_vtt_seconds(caption.start), _vtt_seconds(caption.end), words,
                        (speaker or "").strip() or UNKNOWN_SPEAKER, f"{path}:{line}"))
    return cues


def _vtt_seconds(stamp: str) -> float:
    # webvtt-py's start_in_seconds is whole seconds: read the milliseconds here.
    hours, minutes, seconds, millis = _VTT_TIME.match(stamp.strip()).groups()  # type: ignore[union-attr]
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _read_transcript(path: Path, text: str) -> list[Cue]:
    """Rows of ``start``, ``end``, ``text``, ``speaker``? (a diarised ASR export); seconds as numbers."""
    rows: list[tuple[str, Any]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        missing = {"start", "end", "text"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}:1: the header lacks column(s) {', '.join(sorted(missing))} (needs start, end, text, speaker?)")
        rows = [(f"{path}:{reader.line_num}", row) for row in reader]
    else:
        for number, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                rows.append((f"{path}:{number}", json.loads(line)))
            except json.JSONDecodeError as error:
                raise DataError(f"{path}:{number}: invalid JSON: {error}") from None
    cues = []
    for where, row in rows:
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with start, end, text, speaker?")
        start, end = (_seconds(where, key, row.get(key)) for key in ("start", "end"))
        words = row.get("text")
        if not isinstance(words, str):
            raise DataError(f"{where}: 'text' must be a string")
        speaker = row.get("speaker")
        if speaker is not None and not isinstance(speaker, (str, int)):
            raise DataError(f"{where}: 'speaker' must be a string")
        cues.append(Cue(start, end, words.strip(), str(speaker).strip() if speaker not in (None, "") else UNKNOWN_SPEAKER, where))
    return cues


def _seconds(where: str, key: str, value: Any) -> float:
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise DataError(f"{where}: '{key}' must be a non-negative number of seconds, got {value!r}")
    return seconds


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise ErckitError(f"reading subtitles needs the '{name}' package: {SUBTITLES_EXTRA}") from None


# ------------------------------------------------------------------ tidying


def tidy_cues(cues: Sequence[Cue]) -> tuple[list[Cue], list[str]]:
    """Cues fit to predict, and one message per cue that was dropped, moved or overlaps another."""
    kept: list[Cue] = []
    messages: list[str] = []
    for cue in cues:
        if not cue.text:
            messages.append(f"{cue.describe()} has no text: skipped")
        elif cue.end <= cue.start:
            messages.append(f"{cue.describe()} ends before it starts: skipped")
        else:
            kept.append(cue)
    for before, cue in zip(kept, kept[1:]):
        if cue.start < before.start:
            messages.append(f"{cue.describe()} starts before the cue above it: cues sorted by start time")
    ordered = sorted(kept, key=lambda c: (c.start, c.end))
    for before, cue in zip(ordered, ordered[1:]):
        if cue.start < before.end:
            messages.append(f"{cue.describe()} overlaps the previous cue by {before.end - cue.start:.3f} s: both kept")
    return ordered, messages


def fit_to_duration(cues: Sequence[Cue], duration: float) -> tuple[list[Cue], list[Cue], list[str]]:
    """(cues inside the media, cues that start at or after its end, messages); a cue running past it is cut at the end."""
    inside, outside, messages = [], [], []
    for cue in cues:
        if cue.start >= duration:
            outside.append(cue)
        elif cue.end > duration:
            messages.append(f"{cue.describe()} runs past the media's end ({duration:.3f} s): cut there")
            inside.append(replace(cue, end=duration))
        else:
            inside.append(cue)
    return inside, outside, messages


# --------------------------------------------------------------- dialogues


def dialogues_from_cues(
    cues: Sequence[Cue], media: Path | None, *, audio: bool = True, video: bool = True,
    gap: float | None = None, name: str = "episode",
) -> list[Dialogue]:
    """Consecutive cues form a dialogue; a silence longer than ``gap`` seconds starts the next one.

    Each utterance is the cue's span of ``media`` (its audio and/or video stream:
    ``audio``/``video`` False leaves that medium absent); ids are ``cue<N>``, N the
    1-based position in ``cues``. One dialogue is named ``name``, several ``name-001``, ...
    """
    groups: list[list[Utterance]] = []
    previous_end = None
    for number, cue in enumerate(cues, start=1):
        if not groups or (gap is not None and previous_end is not None and cue.start - previous_end > gap):
            groups.append([])
        groups[-1].append(Utterance(
            speaker=cue.speaker, text=cue.text, audio=media if audio else None, video=media if video else None,
            start=cue.start, end=cue.end, id=f"cue{number}",
        ))
        previous_end = cue.end if previous_end is None else max(previous_end, cue.end)
    if len(groups) == 1:
        return [Dialogue(name, tuple(groups[0]))]
    return [Dialogue(f"{name}-{index:03d}", tuple(group)) for index, group in enumerate(groups, start=1)]


# ------------------------------------------------------------------ writing


def _stamp(seconds: float, mark: str) -> str:
    millis = int(round(seconds * 1000))
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d}{mark}{millis % 1000:03d}"


def format_srt(cues: Sequence[Cue], notes: Sequence[str]) -> str:
    """SRT with ``Speaker: text`` and each note on a line of its own below."""
    blocks = [
        f"{number}\n{_stamp(cue.start, ',')} --> {_stamp(cue.end, ',')}\n{_tagged(cue, '{}: ')}\n{note}\n"
        for number, (cue, note) in enumerate(zip(cues, notes), start=1)
    ]
    return "\n".join(blocks)


def format_vtt(cues: Sequence[Cue], notes: Sequence[str]) -> str:
    """WebVTT with ``<v Speaker>`` voice tags and each note on a line of its own below."""
    blocks = [
        f"{_stamp(cue.start, '.')} --> {_stamp(cue.end, '.')}\n{_tagged(cue, '<v {}>')}\n{note}\n"
        for cue, note in zip(cues, notes)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _tagged(cue: Cue, tag: str) -> str:
    return cue.text if cue.speaker == UNKNOWN_SPEAKER else tag.format(cue.speaker) + cue.text


__all__ = [
    "Cue", "CueWarning", "DEFAULT_SPEAKER_PATTERN", "UNKNOWN_SPEAKER", "dialogues_from_cues", "fit_to_duration",
    "format_srt", "format_vtt", "read_cues", "read_text", "tidy_cues",
]
