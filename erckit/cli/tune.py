"""``erckit tune RECIPE --space SPACE.toml --trials N``: hyperparameter search on Optuna (``erckit[tune]``)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .arguments import positive_int
from .recipe import add_set_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune",
        help="search hyperparameters with Optuna (dev weighted F1)",
        description="Search recipe values named in a space file with Optuna; the objective is dev weighted F1 "
        "(never test). Every trial is a run folder <output>/trial-<n>. Several machines pointing --storage at one "
        'database run trials of one study together. Needs pip install "erckit[tune]".',
    )
    parser.add_argument("recipe", help="recipe TOML file")
    parser.add_argument("--space", type=Path, required=True, metavar="SPACE.toml", help="recipe paths and their ranges or choices")
    parser.add_argument("--trials", type=positive_int, required=True, metavar="N", help="trials this process runs")
    parser.add_argument("--storage", default="sqlite:///study.db", metavar="URL",
                        help="Optuna storage URL (default: sqlite:///study.db, in the current directory)")
    parser.add_argument("--study", metavar="NAME", help="study name (default: the recipe's file name)")
    parser.add_argument("-o", "--output", type=Path, help="where trial run folders go (default: runs/<study>-tune)")
    parser.add_argument("--no-prune", dest="prune", action="store_false", help="run every trial to the end")
    add_set_option(parser)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the recipe's runtime.device (auto)")
    parser.add_argument("--threads", type=positive_int, metavar="N", help="torch intra-op threads")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..experiments import tune
    from ..recipe import load_recipe
    from ..train import TrainOptions
    from ..train.reporter import Reporter
    from . import console as ui

    optuna = tune.require_optuna()  # before anything else: a missing extra is the first thing to know
    name = Path(args.recipe).stem
    study_name = args.study or name

    def load(extra: list[str]) -> object:
        return load_recipe(args.recipe, [*args.overrides, *extra])

    load([])  # the recipe itself first: its own problems are not the space file's
    params = tune.read_space(args.space)
    tune.check_space(params, load, args.space)
    pruner = optuna.pruners.MedianPruner() if args.prune else optuna.pruners.NopPruner()
    study = tune.open_study(args.storage, study_name, pruner)
    base = Path(args.output or Path("runs") / f"{study_name}-tune")
    options = TrainOptions(recipe_path=Path(args.recipe), device=args.device, threads=args.threads,
                           progress=args.progress, reporter=Reporter(ui.console, progress=args.progress))
    objective = tune.make_objective(params, load, name, base, options, say=lambda line: ui.console.rule(ui.escape(line)))
    study.optimize(objective, n_trials=args.trials)
    ui.print_whole(tune.trials_table(study), ui.console)
    completed = [t for t in study.trials if t.value is not None]
    if not completed:
        ui.warning("no trial completed")
        return 1
    best = study.best_trial
    command = ["erckit", "train", args.recipe, *(x for o in [*args.overrides, *tune.best_overrides(study)] for x in ("--set", o))]
    ui.console.print(f"best: trial {best.number}, dev weighted F1 {best.value:.4f} ({ui.escape(best.user_attrs.get('run_dir', ''))})")
    ui.console.print(f"train it again with: {ui.escape(shlex.join(command))}")
    return 0
