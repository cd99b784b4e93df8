"""``erckit predict MODEL_DIR MEDIA --subtitles x.srt | --transcript x.jsonl | --asr MODEL``: one long recording.

Everything is read and checked, and every cue predicted, before anything is
written; each output (``-o``, ``--timeline``) is written atomically, so a
failure leaves no half-written file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from . import console as ui

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


def run_media(args: argparse.Namespace, output: Path | None) -> int:
    from ..episode import load_episode, media_cues, predict_episode
    from .predict import _load_model, _write, check_finite, write_csv, write_jsonl, write_table

    format = _format(args, output)
    size = _size(args.timeline_size)
    timeline = _timeline_path(args.timeline)
    cues = media_cues(args.dialogues, subtitles=args.subtitles, transcript=args.transcript, asr=args.asr,
                      speaker_pattern=args.speaker_pattern, encoding=args.encoding)
    episode = load_episode(args.dialogues, cues, gap=args.gap, media_policy=args.media_policy, on_warning=ui.warning)
    model = _load_model(args)
    result = predict_episode(model, episode, batch_size=args.batch_size, precision=args.precision,
                             device=args.device, media_policy=args.media_policy)
    for prediction in result.utterances():  # before any output
        check_finite(prediction)
    if format == "srt":
        _write(output, lambda handle: handle.write(result.to_srt()))
    elif format == "vtt":
        _write(output, lambda handle: handle.write(result.to_vtt()))
    elif format == "csv":
        _write(output, lambda handle: write_csv(handle, result.dialogues, model.labels))
    elif format == "table":
        _write(output, lambda handle: write_table(handle, result.dialogues, model.labels, to_terminal=output is None))
    else:
        _write(output, lambda handle: write_jsonl(handle, records(result), result.dialogues))
    if timeline is not None:
        result.timeline(timeline, size)
        ui.console.print(f"[green]wrote[/] {timeline}")
    return 0


def records(result: "MediaPrediction") -> list[tuple[dict[str, Any], Any]]:
    """Dialogue JSONL records of the recording's dialogues: each utterance with its span of the file."""
    out = []
    for dialogue in result.inputs:
        turns = [{"id": u.id, "speaker": u.speaker, "text": u.text, "start": u.start, "end": u.end} for u in dialogue.utterances]
        out.append(({"id": dialogue.id, "media": str(result.media), "utterances": turns}, dialogue))
    return out


def _format(args: argparse.Namespace, output: Path | None) -> str:
    """``--format``, else the output's suffix (``-o x.srt``), else jsonl."""
    if args.format is not None:
        return args.format
    if output is not None and output.suffix.lower() in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[output.suffix.lower()]
    return "jsonl"


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--timeline-size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1200x400") from None
    return width, height


def _timeline_path(path: str | None) -> Path | None:
    if path is None:
        return None
    from .predict import _check_output

    timeline = _check_output(path)
    if timeline is None or timeline.suffix.lower() != ".png":
        raise UsageError(f"--timeline {path}: give a .png file name")
    return timeline


__all__ = ["MEDIA_FORMATS", "add_arguments", "run_media", "wants_media"]
