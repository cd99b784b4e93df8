"""The options of ``erckit predict MODEL_DIR MEDIA --subtitles x.srt | --transcript x.jsonl | --asr MODEL``.

``erckit.cli.predict`` runs it: everything is read and checked, and every cue
predicted, before anything is written; each output (``-o``, ``--timeline``) is
written atomically, so a failure leaves no half-written file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from ..episode import MediaPrediction

MEDIA_FORMATS = ("jsonl", "csv", "table", "srt", "vtt")
SUFFIX_FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".srt": "srt", ".vtt": "vtt", ".txt": "table"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "one long recording", "DIALOGUES is then an audio or video file; each cue becomes an utterance cut from it")
    group.add_argument("--subtitles", metavar="FILE", help="subtitles (.srt, .vtt) with 'Speaker: text' lines or <v Speaker> tags")
    group.add_argument("--transcript", metavar="FILE", help="segments (.jsonl, .csv) with start, end, text, speaker? per row")
    group.add_argument("--asr", metavar="MODEL", help="transcribe with a speech recogniser (a Whisper id or folder; erckit[asr])")
    group.add_argument("--gap", type=float, metavar="SECONDS", help="a silence longer than this starts a new dialogue (default: one dialogue)")
    group.add_argument("--speaker-pattern", metavar="REGEX", help="regex with groups (?P<speaker>) and (?P<text>) for the cue text")
    group.add_argument("--encoding", help="the subtitle file's text encoding (default: UTF-8 or UTF-16 with a BOM)")
    group.add_argument("--media-policy", choices=("zero", "error"), default="zero",
                       help="a cue whose media cannot be had: predicted without it, warned (zero), or an error")
    group.add_argument("--timeline", metavar="PNG", help="also write a timeline plot: emotion per speaker over time (erckit[plot])")
    group.add_argument("--timeline-size", default="1200x400", metavar="WxH", help="timeline size in pixels (default 1200x400)")


def wants_media(args: argparse.Namespace) -> bool:
    return bool(args.subtitles or args.transcript or args.asr)


def records(result: "MediaPrediction") -> list[tuple[dict[str, Any], Any]]:
    """Dialogue JSONL records of the recording's dialogues: each utterance with its span of the file."""
    out = []
    for dialogue in result.inputs:
        turns = [{"id": u.id, "speaker": u.speaker, "text": u.text, "start": u.start, "end": u.end} for u in dialogue.utterances]
        out.append(({"id": dialogue.id, "media": str(result.media), "utterances": turns}, dialogue))
    return out


def output_format(args: argparse.Namespace, output: Path | None) -> str:
    """``--format``, else the output's suffix (``-o x.srt``), else jsonl."""
    if args.format is not None:
        return args.format
    if output is not None and output.suffix.lower() in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[output.suffix.lower()]
    return "jsonl"


def timeline_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--timeline-size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1200x400") from None
    return width, height


__all__ = ["MEDIA_FORMATS", "add_arguments", "output_format", "records", "timeline_size", "wants_media"]
