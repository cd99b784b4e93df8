"""``erckit predict MODEL_DIR DIALOGUES``: label every utterance of a dialogue JSONL file (or stdin).

Batch mode reads the whole input first: a broken line stops the command
(exit 1, naming ``file:line``) before any output is written, unless
``--skip-errors``. Output files are written atomically (temp file + rename).
Streaming mode (``-``) answers each stdin line as it arrives and flushes it.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator

from ..errors import DataError, ErckitError, UsageError
from . import console as ui
from .arguments import positive_int
from .episode import MEDIA_FORMATS, add_arguments as add_media_arguments, output_format, records, timeline_size, wants_media

if TYPE_CHECKING:
    from ..data.types import Dialogue
    from ..predict import DialoguePrediction, UtterancePrediction

FORMATS = ("jsonl", "csv", "table")
BACKENDS = ("torch", "onnx")
TABLE_FILE_WIDTH = 160  # a --format table written to a file or a pipe
# Colours for the labels of MELD, IEMOCAP and EmoryNLP; other labels cycle through FALLBACK_COLOURS.
EMOTION_COLOURS = {
    "neutral": "white", "joy": "bright_yellow", "happy": "bright_yellow", "happiness": "bright_yellow",
    "excited": "yellow", "joyful": "bright_yellow", "surprise": "cyan", "sadness": "blue", "sad": "blue",
    "anger": "red", "angry": "red", "frustrated": "dark_orange", "fear": "magenta", "scared": "magenta",
    "disgust": "green", "peaceful": "bright_green", "powerful": "bright_magenta", "mad": "red",
}
FALLBACK_COLOURS = ("bright_cyan", "bright_blue", "bright_red", "orchid", "spring_green2", "gold1")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict the emotion of every utterance of a dialogue JSONL file (or '-' for live stdin)",
        description="Predict the emotion of every utterance. DIALOGUES is a dialogue JSONL file, or '-' to "
        "read utterances one JSON object per line from stdin ({\"dialogue\", \"speaker\", \"text\", "
        "\"audio\"?, \"video\"?, \"start\"?, \"end\"?}) and answer each as it arrives. With --subtitles, "
        "--transcript or --asr, DIALOGUES is one audio or video file (an episode, a call) cut into utterances by its cues.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR",
                        help="model directory (or a run directory holding model/); with --backend onnx an 'erckit export' directory")
    parser.add_argument("dialogues", metavar="DIALOGUES", help="dialogue JSONL file, '-' for streaming stdin, or a recording")
    parser.add_argument("-o", "--output", help="output file (default: stdout); written atomically")
    parser.add_argument("--format", choices=MEDIA_FORMATS, help="output format (default jsonl, or -o's suffix for a "
                        "recording); srt and vtt only for a recording")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="utterances per batch (default 32)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="compute precision (default fp32)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    parser.add_argument("--skip-errors", action="store_true", help="skip broken input lines (each reported) instead of failing")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="torch (default) or onnx: ONNX Runtime on an 'erckit export' directory (CPU, the export's precision)")
    add_media_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..model import resolve_model_dir

    output = _check_output(args.output)
    check_backend(args)
    if args.backend == "torch":
        resolve_model_dir(args.model_dir)  # fail fast on a wrong directory, before reading the input
    if wants_media(args):
        return _run_media(args, output)
    recording_only = [flag for flag, given in (
        (f"--format {args.format}", args.format not in FORMATS + (None,)), ("--timeline", args.timeline),
        ("--gap", args.gap is not None), ("--speaker-pattern", args.speaker_pattern), ("--encoding", args.encoding),
        ("--media-policy", args.media_policy != "zero"),
    ) if given]
    if recording_only:
        raise UsageError(f"{', '.join(recording_only)}: only for a recording with --subtitles, --transcript or --asr")
    args.format = args.format or "jsonl"
    if args.dialogues == "-":
        return _run_stream(args, output)
    data = read_dialogue_file(Path(args.dialogues), skip_errors=args.skip_errors)
    missing_media = MissingMedia()
    for (_, dialogue), line in zip(data.records, data.lines):
        for index, utterance in enumerate(dialogue.utterances):
            missing_media.check(utterance, f"{data.path}:{line}: utterance {index}")
    for problem in [p for p in data.problems if p not in missing_media.reported][:20]:
        ui.warning(problem)
    missing_media.finish()
    model = load_model(args)
    predictions = model.predict(
        [d for _, d in data.records], batch_size=args.batch_size, precision=args.precision, device=args.device
    )
    for dialogue in predictions:  # before any output: a NaN must not reach a file half-written
        for utterance in dialogue.utterances:
            check_finite(utterance)
    if args.format == "table":
        _write(output, lambda handle: write_table(handle, predictions, model.labels, to_terminal=output is None))
    elif args.format == "csv":
        _write(output, lambda handle: write_csv(handle, predictions, model.labels))
    else:
        _write(output, lambda handle: write_jsonl(handle, data.records, predictions))
    _report_missing(predictions)
    for skipped in data.skipped:
        ui.warning(f"skipped {skipped}")
    if data.skipped:
        ui.warning(f"{len(data.skipped)} input line(s) skipped (--skip-errors)")
    return 0


# ---------------------------------------------------- one long recording


CUE_WARNINGS_SHOWN = 20


def _run_media(args: argparse.Namespace, output: Path | None) -> int:
    from ..episode import load_episode, media_cues, predict_episode

    format = output_format(args, output)
    size = timeline_size(args.timeline_size)
    timeline = _timeline_path(args.timeline)
    cues = media_cues(args.dialogues, subtitles=args.subtitles, transcript=args.transcript, asr=args.asr,
                      speaker_pattern=args.speaker_pattern, encoding=args.encoding)
    warned: list[str] = []
    episode = load_episode(args.dialogues, cues, gap=args.gap, media_policy=args.media_policy, on_warning=warned.append)
    for message in warned[:CUE_WARNINGS_SHOWN]:
        ui.warning(message)
    if len(warned) > CUE_WARNINGS_SHOWN:  # a badly timed file can warn about every cue
        ui.warning(f"... and {len(warned) - CUE_WARNINGS_SHOWN} more cue warning(s)")
    model = load_model(args)
    result = predict_episode(model, episode, batch_size=args.batch_size, precision=args.precision,
                             device=args.device, media_policy=args.media_policy)
    for prediction in result.utterances():  # before any output
        check_finite(prediction)
    if timeline is not None:  # first: it needs an extra (matplotlib), the main output does not
        result.timeline(timeline, size)
        ui.console.print(f"[green]wrote[/] {timeline}")
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
    return 0


def _timeline_path(path: str | None) -> Path | None:
    if path is None:
        return None
    timeline = _check_output(path)
    if timeline is None or timeline.suffix.lower() != ".png":
        raise UsageError(f"--timeline {path}: give a .png file name")
    return timeline


# ------------------------------------------------------------------- input


@dataclass
class DialogueFile:
    """A dialogue JSONL file: (raw record, parsed dialogue) per good line, plus what went wrong."""

    path: Path
    records: list[tuple[dict[str, Any], "Dialogue"]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line number of each record
    skipped: list[str] = field(default_factory=list)  # "file:line: reason" of each skipped line
    problems: list[str] = field(default_factory=list)  # tolerated issues (missing media files)


def read_dialogue_file(path: Path, *, skip_errors: bool = False) -> DialogueFile:
    """Read every line; the first broken one raises ``DataError`` (``file:line: ...``) unless ``skip_errors``.

    Lines are checked exactly as ``erckit.data.readers.read_dialogue_jsonl``
    does (same per-line parser), except that gold labels are free strings.
    """
    from ..data.readers.jsonl import parse_dialogue_line

    path = path.expanduser().absolute()
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    result = DialogueFile(path)
    first_line: dict[str, int] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                parsed = parse_dialogue_line(raw, path, number, None, result.problems)
                record, dialogue = parsed if parsed is not None else (None, None)
                if dialogue is not None and dialogue.id in first_line:
                    raise DataError(f"{path}:{number}: duplicate dialogue id {dialogue.id!r} (first on line {first_line[dialogue.id]})")
            except DataError as error:
                if not skip_errors:
                    raise
                result.skipped.append(str(error))
                continue
            if dialogue is None:  # blank line
                continue
            first_line[dialogue.id] = number
            result.records.append((record, dialogue))
            result.lines.append(number)
    return result


class MissingMedia:
    """Warns about media files that do not exist: once per file, the same way for a file and for stdin.

    ``reported`` holds the reader's message for every utterance covered, so
    those are not repeated. After ``LIMIT`` files the rest are only counted.
    """

    LIMIT = 20

    def __init__(self) -> None:
        self.seen: set[Path] = set()
        self.reported: set[str] = set()
        self.hidden = 0

    def check(self, utterance: Any, where: str) -> None:
        for kind in ("audio", "video"):
            path = getattr(utterance, kind)
            if path is None or (path not in self.seen and path.is_file()):
                continue
            message = f"{where}: {kind} file {path} does not exist"
            self.reported.add(message)
            if path in self.seen:
                continue
            self.seen.add(path)
            if len(self.seen) <= self.LIMIT:
                ui.warning(message)
            else:
                self.hidden += 1

    def finish(self) -> None:
        if self.hidden:
            ui.warning(f"... and {self.hidden} more missing media file(s)")
            self.hidden = 0


# ------------------------------------------------------------------ output


def _check_output(output: str | None) -> Path | None:
    """The output path (None: stdout); its directory must exist, so the run never fails at the very end."""
    if output is None or output == "-":
        return None
    path = Path(output).expanduser()
    if path.is_dir():
        raise ErckitError(f"output {path} is a directory; give a file name")
    if not path.absolute().parent.is_dir():
        raise ErckitError(f"output directory {path.absolute().parent} does not exist (for {path})")
    return path


def _write(output: Path | None, write: Callable[[IO[str]], None]) -> None:
    """Write to stdout, or to a temp file beside ``output`` renamed over it when complete."""
    if output is None:
        write(sys.stdout)
        sys.stdout.flush()
        return
    from ..fileio import atomic_path

    with atomic_path(output) as temp, open(temp, "w", encoding="utf-8", newline="") as handle:
        write(handle)
    ui.console.print(f"[green]wrote[/] {output}")


def check_finite(prediction: "UtterancePrediction") -> None:
    """Refuse NaN/infinite probabilities (broken weights): no output may carry them, in any format."""
    bad = {label: p for label, p in prediction.probabilities.items() if not math.isfinite(p)}
    if bad:
        shown = ", ".join(f"{label}={p}" for label, p in bad.items())
        raise ErckitError(
            f"dialogue {prediction.dialogue_id!r}, utterance {prediction.position}: the model gave non-finite "
            f"probabilities ({shown}); its weights are probably broken (NaN or infinite), nothing was written"
        )


def write_jsonl(handle: IO[str], records: list[tuple[dict[str, Any], "Dialogue"]], predictions: list["DialoguePrediction"]) -> None:
    """The input dialogues, each utterance object extended with ``UtterancePrediction.output_fields``."""
    for (record, dialogue), result in zip(records, predictions):
        out = {"id": dialogue.id, **record}  # the id first, also when the input left it implicit
        out["utterances"] = [
            {**turn, **p.output_fields()} for turn, p in zip(record["utterances"], result.utterances)
        ]
        handle.write(json.dumps(out, ensure_ascii=False, allow_nan=False) + "\n")


def csv_header(labels: list[str]) -> list[str]:
    return ["dialogue", "position", "speaker", "text", "gold", "prediction", "confidence",
            *(f"p_{label}" for label in labels), "modalities", "missing"]


def csv_row(p: "UtterancePrediction", labels: list[str]) -> list[Any]:
    from ..predict import PROBABILITY_DIGITS

    return [p.dialogue_id, p.position, p.speaker, p.text, p.gold or "", p.label, round(p.confidence, PROBABILITY_DIGITS),
            *(round(p.probabilities[label], PROBABILITY_DIGITS) for label in labels),
            ";".join(p.modalities_used), ";".join(p.missing)]


def write_csv(handle: IO[str], predictions: list["DialoguePrediction"], labels: list[str]) -> None:
    writer = csv.writer(handle)
    writer.writerow(csv_header(labels))
    for dialogue in predictions:
        for p in dialogue.utterances:
            writer.writerow(csv_row(p, labels))


def emotion_style(label: str, labels: list[str]) -> str:
    known = EMOTION_COLOURS.get(label.lower())
    if known is not None:
        return known
    return FALLBACK_COLOURS[labels.index(label) % len(FALLBACK_COLOURS)] if label in labels else "white"


def write_table(handle: IO[str], predictions: list["DialoguePrediction"], labels: list[str], *, to_terminal: bool) -> None:
    """A rich table, one row per utterance, the prediction coloured by emotion."""
    from rich.console import Console
    from rich.table import Table

    has_gold = any(p.gold is not None for d in predictions for p in d.utterances)
    has_missing = any(p.missing for d in predictions for p in d.utterances)
    table = Table(show_header=True, header_style="bold", show_lines=False)
    for name, justify in (("dialogue", "left"), ("#", "right"), ("speaker", "left"), ("text", "left"),
                          ("prediction", "left"), ("p", "right")):
        # Only the utterance text may wrap; names and labels stay whole (folded only on a too-narrow terminal).
        table.add_column(name, justify=justify, overflow="fold", no_wrap=name != "text")  # type: ignore[arg-type]
    if has_gold:
        table.add_column("gold", no_wrap=True, overflow="fold")
    if has_missing:
        table.add_column("missing", no_wrap=True, overflow="fold")
    for dialogue in predictions:
        for p in dialogue.utterances:
            # Every cell is data (input or model directory): cleaned of control sequences, markup literal.
            row: list[Any] = [ui.text(dialogue.id), str(p.position), ui.text(p.speaker), ui.text(p.text),
                              ui.text(p.label, style=f"bold {emotion_style(p.label, labels)}"), f"{p.confidence:.2f}"]
            if has_gold:
                row.append(ui.text(p.gold or "", style="green" if p.gold == p.label else "dim"))
            if has_missing:
                row.append(ui.text(", ".join(p.missing)))
            table.add_row(*row)
    if to_terminal and ui.out.is_terminal:
        ui.out.print(table)
    else:  # a pipe or a file: plain text at a width where the utterance text has room
        Console(file=handle, width=TABLE_FILE_WIDTH, no_color=True, highlight=False).print(table)


def _report_missing(predictions: list["DialoguePrediction"]) -> None:
    counts: dict[str, int] = {}
    for dialogue in predictions:
        for p in dialogue.utterances:
            for name in p.missing:
                counts[name] = counts.get(name, 0) + 1
    for name, count in sorted(counts.items()):
        ui.warning(f"{count} utterance(s) predicted without {name} (absent or unreadable; see 'missing' in the output)")


# --------------------------------------------------------------- streaming


def _run_stream(args: argparse.Namespace, output: Path | None) -> int:
    """Answer each stdin line as it arrives. Output is written and flushed line by line (not atomic: it is live)."""
    from ..predict import predict_stream

    model = load_model(args)
    skipped: list[str] = []

    def on_error(error: ErckitError) -> None:
        skipped.append(str(error))
        ui.warning(f"skipped {error}")

    lines: Iterator[str] = iter(sys.stdin.readline, "")  # readline, not iteration: no read-ahead on a live pipe
    missing_media = MissingMedia()
    stream = predict_stream(
        model, _checking_media(lines, missing_media), on_error=on_error if args.skip_errors else None,
        batch_size=args.batch_size, precision=args.precision, device=args.device,
    )
    handle = sys.stdout if output is None else output.open("w", encoding="utf-8", newline="")
    try:
        _stream_out(handle, stream, model.labels, args.format)
    finally:
        if handle is not sys.stdout:
            handle.close()
    missing_media.finish()
    if skipped:
        ui.warning(f"{len(skipped)} input line(s) skipped (--skip-errors)")
    return 0


def _checking_media(lines: Iterator[str], missing_media: MissingMedia) -> Iterator[str]:
    """Pass stdin lines on, warning first about media files they name that do not exist (as file mode does)."""
    from ..predict import parse_stream_line

    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                _, utterance = parse_stream_line(line, f"<stdin>:{number}", Path("."))
            except DataError:
                pass  # predict_stream reports the broken line itself
            else:
                missing_media.check(utterance, f"<stdin>:{number}")
        yield line


def _stream_out(handle: IO[str], stream: Iterator["UtterancePrediction"], labels: list[str], format: str) -> None:
    writer = csv.writer(handle) if format == "csv" else None
    if writer is not None:
        writer.writerow(csv_header(labels))
        handle.flush()
    for p in stream:
        check_finite(p)
        if writer is not None:
            writer.writerow(csv_row(p, labels))
        elif format == "table":  # a live conversation has no end to size a table by: one coloured line each
            line = (f"{ui.escape(p.dialogue_id)} #{p.position} {ui.escape(p.speaker)}: "
                    f"[bold {emotion_style(p.label, labels)}]{ui.escape(p.label)}[/] ({p.confidence:.2f})")
            ui.out.print(line) if handle is sys.stdout else handle.write(_plain(line) + "\n")
        else:
            record = {"dialogue": p.dialogue_id, "position": p.position, "speaker": p.speaker, "text": p.text}
            if p.gold is not None:
                record["label"] = p.gold
            handle.write(json.dumps({**record, **p.output_fields()}, ensure_ascii=False, allow_nan=False) + "\n")
        handle.flush()


def _plain(markup: str) -> str:
    from rich.text import Text

    return Text.from_markup(markup).plain


def check_backend(args: argparse.Namespace) -> None:
    """``--backend onnx``: refuse the torch-only options and a missing extra before anything is loaded (predict, serve)."""
    if args.backend != "onnx":
        return
    if args.precision != "fp32":
        raise UsageError("--precision does not apply to --backend onnx: the export has its own (erckit export --quantize)")
    if args.device not in (None, "cpu"):
        raise UsageError(f"--backend onnx runs on the CPU, not on {args.device}")
    from ..export.manifest import require

    require("onnxruntime")
    if not Path(args.model_dir).is_dir():
        raise ErckitError(f"ONNX export directory {args.model_dir} does not exist")


def load_model(args: argparse.Namespace) -> Any:
    """The ``ERCModel`` of ``args.model_dir``, or with ``--backend onnx`` the ``OnnxModel`` of an export (predict, serve)."""
    if getattr(args, "backend", "torch") == "onnx":
        from ..export.runtime import OnnxModel

        return OnnxModel.load(args.model_dir, threads=getattr(args, "threads", None))
    from ..model import ERCModel

    return ERCModel.from_pretrained(args.model_dir)


__all__ = ["add_parser", "read_dialogue_file", "write_csv", "write_jsonl", "write_table", "emotion_style"]
