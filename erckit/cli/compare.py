"""``erckit compare RUN_DIR... [-o report.html]``: runs side by side, with plots and an offline HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare run folders: recipe differences, metrics, throughput, plots",
        description="Compare run folders side by side. A folder of seed-*/trial-* runs stands for its runs. "
        'With -o, also write learning-curve and per-class F1 PNGs and an HTML report (needs pip install "erckit[plot]").',
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folders (or folders of them)")
    parser.add_argument("-o", "--output", type=Path, metavar="REPORT.html",
                        help="write an HTML report here, its PNGs beside it (<name>_curves.png, <name>_per_class_f1.png)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments.compare import load_runs, table, write_report
    from . import console as ui

    loaded = load_runs(args.runs)
    ui.print_whole(table(loaded))
    if args.output is not None:
        for path in write_report(loaded, args.output):
            ui.console.print(f"[green]wrote[/] {ui.escape(path)}")
    return 0
