"""``erckit evaluate MODEL_DIR DATA``: metrics and confusion matrix of a model on labelled dialogues."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a model on labelled dialogues (F1, accuracy, confusion matrix)",
        description="Score a model on labelled dialogues. DATA is a dialogue JSONL file, a directory of "
        "{train,dev,test}.jsonl, or a recipe .toml whose [data] names the data set.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model directory (or a run directory holding model/)")
    parser.add_argument("data", metavar="DATA", help="dialogue JSONL file, data set directory or recipe .toml")
    parser.add_argument("--split", default="test", help="split of a data set directory or recipe (default test)")
    parser.add_argument("--plot", metavar="PNG", help="write the confusion matrix as a PNG image")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--batch-size", type=int, default=32, help="utterances per batch (default 32)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="compute precision (default fp32)")
    parser.add_argument("--device", help="torch device (default: cpu)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ErckitError

    raise ErckitError("erckit evaluate is not implemented yet")
