"""``erckit train RECIPE``: run every stage of a recipe and write a model directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import positive_int
from .recipe import add_set_option


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a recipe",
        description="Train every stage of a recipe. Under torchrun, one process per GPU (DDP).",
    )
    parser.add_argument("recipe", help="recipe TOML file")
    add_set_option(parser)
    parser.add_argument("-o", "--output", type=Path, help="run directory (default: recipe output_dir or runs/<recipe name>)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    resume.add_argument("--resume-from", type=Path, metavar="CHECKPOINT", help="continue from a given checkpoint directory")
    resume.add_argument("--overwrite", action="store_true", help="delete an existing run directory and start again")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default: the recipe's runtime.device (auto)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="default: the recipe's runtime.precision")
    seed = parser.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, help="override the recipe's seed")
    seed.add_argument(
        "--seeds", metavar="SEEDS",
        help="one run per seed into <run dir>/seed-<n>, then summary.json with mean ± std: "
        "a count (5 = seeds 0..4) or a list (0,1,2)",
    )
    parser.add_argument("--deterministic", action="store_true", default=None, help="deterministic algorithms (slower)")
    parser.add_argument(
        "--threads", type=positive_int, metavar="N",
        help="torch intra-op threads (default: the recipe's runtime.threads, auto = the CPUs this process may use)",
    )
    parser.add_argument(
        "--logger", action="append", default=[], metavar="NAME",
        help="also log metrics with this logger: jsonl, tensorboard, mlflow or a registered name (repeatable)",
    )
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..recipe import load_recipe
    from ..train import TrainOptions, train
    from ..train.reporter import Reporter
    from . import console as ui

    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    recipe = load_recipe(args.recipe, overrides, loggers=args.logger)
    options = TrainOptions(
        recipe_path=Path(args.recipe),
        output=args.output,
        resume=args.resume,
        resume_from=args.resume_from,
        overwrite=args.overwrite,
        device=args.device,
        precision=args.precision,
        deterministic=args.deterministic,
        threads=args.threads,
        progress=args.progress,
        reporter=Reporter(ui.console, progress=args.progress),
    )
    name = Path(args.recipe).stem
    if args.seeds is None:
        train(recipe, name, options)
        return 0
    return run_seeds(args, recipe, name, overrides, options)


def run_seeds(args: argparse.Namespace, recipe: object, name: str, overrides: list[str], options: object) -> int:
    from ..errors import UsageError
    from ..experiments.seeds import parse_seeds, summary_table, train_seeds
    from ..recipe import load_recipe
    from . import console as ui

    seeds = parse_seeds(args.seeds)
    if args.resume_from is not None:
        raise UsageError("--resume-from names one checkpoint; with --seeds use --resume (each seed resumes on its own)")
    base = Path(args.output or recipe.output_dir or Path("runs") / name)

    def load(seed: int) -> object:
        return load_recipe(args.recipe, [*overrides, f"seed={seed}"], loggers=args.logger)

    summary = train_seeds(load, name, seeds, base, options, say=lambda line: ui.console.rule(ui.escape(line)))
    ui.print_whole(summary_table(summary), ui.console)
    ui.console.print(f"[green]summary written to[/] {ui.escape(base / 'summary.json')}")
    return 0
