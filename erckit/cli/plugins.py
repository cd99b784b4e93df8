"""``erckit plugins``: loaded plugins, their packages and versions."""

from __future__ import annotations

import argparse

from rich.table import Table

from . import console as ui


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plugins", help="list loaded plugins", description="List loaded plugins.")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..plugins import PluginLoadWarning, failed_plugins, load_plugins, loaded_plugins

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PluginLoadWarning)  # failures are listed below, once each
        load_plugins()
    table = Table(title="erckit plugins", title_justify="left")
    for column in ("plugin", "package", "version", "source"):
        table.add_column(column, no_wrap=True, overflow="fold")
    for info in loaded_plugins():
        table.add_row(*(ui.text(cell) for cell in (info.name, info.package, info.version, info.source)))
    ui.print_whole(table)
    for failure in failed_plugins():
        ui.warning(failure)
    from ..registry import REGISTRIES

    for kind, registry in REGISTRIES.items():
        for name, replaced in sorted(registry.overrides.items()):
            ui.console.print(
                f"override: {kind} {name} of {replaced.package} is replaced by {registry.origins[name].package}",
                markup=False,
            )
    return 0
