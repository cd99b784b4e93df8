"""``erckit evaluate MODEL_DIR DATA``: metrics and confusion matrix of a model on labelled dialogues."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ErckitError
from . import console as ui


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a model on labelled dialogues (F1, accuracy, confusion matrix)",
        description="Score a model on labelled dialogues. DATA is a dialogue JSONL file, a directory of "
        "{train,dev,test}.jsonl, or a recipe .toml whose [data] names the data set. Utterances whose label "
        "the model does not know are reported and left out of the metrics.",
    )
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="model directory (or a run directory holding model/)")
    parser.add_argument("data", metavar="DATA", help="dialogue JSONL file, data set directory or recipe .toml")
    parser.add_argument("--split", default="test", help="split of a data set directory or recipe (default test)")
    parser.add_argument("--plot", metavar="PNG", help='write the confusion matrix as a PNG image (needs matplotlib: pip install "erckit[plot]")')
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--batch-size", type=int, default=32, help="utterances per batch (default 32)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="compute precision (default fp32)")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: cpu)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluate import evaluate, load_dialogues, plot_confusion, render, write_json
    from ..model import ERCModel, resolve_model_dir

    for option, value in (("--plot", args.plot), ("--json", args.json)):
        # Checked before the (possibly long) evaluation, so it never fails at the very end.
        if value is not None and not Path(value).absolute().parent.is_dir():
            raise ErckitError(f"{option}: output directory {Path(value).absolute().parent} does not exist")
    resolve_model_dir(args.model_dir)
    dialogues = load_dialogues(args.data, args.split)
    model = ERCModel.from_pretrained(args.model_dir)
    evaluation = evaluate(model, dialogues, batch_size=args.batch_size, precision=args.precision, device=args.device)
    ui.print_whole(render(evaluation))
    if args.json is not None:
        ui.console.print(f"[green]wrote[/] {write_json(evaluation, args.json)}")
    if args.plot is not None:
        ui.console.print(f"[green]wrote[/] {plot_confusion(evaluation, args.plot)}")
    return 0
