"""``erckit components``: every registered component and where it came from."""

from __future__ import annotations

import argparse

from rich.table import Table

from . import console as ui


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..registry import REGISTRIES

    parser = subparsers.add_parser(
        "components", help="list registered components", description="List registered components."
    )
    parser.add_argument("--kind", choices=list(REGISTRIES), help="only this registry")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..recipe.signature import summary
    from ..registry import REGISTRIES

    table = Table(title="erckit components", title_justify="left")
    for column in ("name", "kind", "plugin", "package", "description"):
        table.add_column(column, overflow="fold")
    for kind, registry in REGISTRIES.items():
        if args.kind and kind != args.kind:
            continue
        for name, factory in registry.get_all().items():
            origin = registry.origins.get(name)
            table.add_row(
                name, kind, origin.plugin if origin else "?", origin.package if origin else "?", summary(factory)
            )
    ui.out.print(table)
    return 0
