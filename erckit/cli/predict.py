"""``erckit predict MODEL_DIR DIALOGUES``: label every utterance of a dialogue JSONL file (or stdin)."""

from __future__ import annotations

import argparse

FORMATS = ("jsonl", "csv", "table")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict", help="predict the emotion of every utterance of a dialogue JSONL file (or '-' for live stdin)",
        description="Predict the emotion of every utterance. DIALOGUES is a dialogue JSONL file, or '-' to "
        "read utterances one JSON object per line from stdin and answer each as it arrives.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model directory (or a run directory holding model/)")
    parser.add_argument("dialogues", metavar="DIALOGUES", help="dialogue JSONL file, or '-' for streaming stdin")
    parser.add_argument("-o", "--output", help="output file (default: stdout)")
    parser.add_argument("--format", choices=FORMATS, default="jsonl", help="output format (default jsonl)")
    parser.add_argument("--batch-size", type=int, default=32, help="utterances per batch (default 32)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="compute precision (default fp32)")
    parser.add_argument("--device", help="torch device (default: cpu)")
    parser.add_argument("--skip-errors", action="store_true", help="skip broken input lines (reported) instead of failing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ErckitError

    raise ErckitError("erckit predict is not implemented yet")
