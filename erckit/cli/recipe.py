"""``erckit recipe check|show``: validate a recipe or print it fully resolved."""

from __future__ import annotations

import argparse

from . import console as ui


def add_set_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set stages.teacher.epochs=3 (repeatable)",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("recipe", help="check or show a recipe", description="Check or show a recipe.")
    commands = parser.add_subparsers(dest="recipe_command", metavar="ACTION", parser_class=type(parser))
    check = commands.add_parser("check", help="validate a recipe (exit 0 if valid, 1 otherwise; a missing data root is only a warning)")
    check.add_argument("recipe", help="recipe TOML file")
    add_set_option(check)
    check.set_defaults(run=run_check)
    show = commands.add_parser("show", help="print the resolved recipe with every default filled in")
    show.add_argument("recipe", help="recipe TOML file")
    add_set_option(show)
    show.set_defaults(run=run_show)
    parser.set_defaults(run=lambda args: parser.print_help() or 0)


def run_check(args: argparse.Namespace) -> int:
    from ..recipe import load_recipe

    from ..recipe.data_paths import data_root_warnings

    recipe = load_recipe(args.recipe, args.overrides)
    for message in data_root_warnings(recipe, args.recipe):
        ui.warning(message)  # valid all the same: the data may live on another machine
    from ..recipe.schema import short_kind

    stages = ", ".join(f"{s.name} ({short_kind(s.kind)})" for s in recipe.stages)
    ui.console.print(
        f"[green]ok[/] {args.recipe}: dataset {recipe.data.dataset}, "
        f"encoders {', '.join(recipe.model.encoders)}, stages {stages}"
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ..recipe import load_recipe, recipe_to_toml

    recipe = load_recipe(args.recipe, args.overrides)
    ui.out.print(recipe_to_toml(recipe, header=f"resolved from {args.recipe}"), markup=False)
    return 0
