"""``erckit components [NAME]``: every registered component and where it came from, or one in full."""

from __future__ import annotations

import argparse
import difflib
import inspect
from typing import Any, Callable

from rich.table import Table

from ..errors import UnknownComponentError
from . import console as ui


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from ..registry import REGISTRIES

    parser = subparsers.add_parser(
        "components", help="list registered components, or show one's arguments",
        description="List registered components. With NAME: that component's description, package, "
        "and arguments with their types and defaults (the recipe keys of its table).",
    )
    parser.add_argument("name", nargs="?", metavar="NAME", help="a component name, e.g. telme.ASF.v1")
    parser.add_argument("--kind", choices=list(REGISTRIES), help="only this registry")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.name is not None:
        return show_component(args.name)
    from ..recipe.signature import summary
    from ..registry import REGISTRIES

    table = Table(title="erckit components", title_justify="left")
    for column in ("name", "kind", "plugin", "package"):
        table.add_column(column, no_wrap=True, overflow="fold")  # names whole; fold only if a terminal is too narrow
    table.add_column("description", overflow="fold")
    for kind, registry in REGISTRIES.items():
        if args.kind and kind != args.kind:
            continue
        for name, factory in registry.get_all().items():
            origin = registry.origins.get(name)
            table.add_row(*(ui.text(cell) for cell in (
                name, kind, origin.plugin if origin else "?", origin.package if origin else "?", summary(factory))))
    ui.print_whole(table)
    return 0


def show_component(name: str) -> int:
    from ..recipe.signature import factory_parameters
    from ..registry import REGISTRIES

    found = [(kind, registry) for kind, registry in REGISTRIES.items() if name in registry.get_all()]
    if not found:
        raise UnknownComponentError(_unknown_message(name, [n for r in REGISTRIES.values() for n in r.get_all()]))
    kind, registry = found[0]
    factory = registry.get(name)
    origin = registry.origins.get(name)
    ui.out.print(f"[bold]{ui.escape(name)}[/] ({registry.singular})")
    if origin is not None:
        ui.out.print(f"plugin {ui.escape(origin.plugin)}, package {ui.escape(origin.package)}")
    ui.out.print(f"factory {ui.escape(_qualified_name(factory))}")
    doc = inspect.getdoc(factory)
    if doc:
        ui.out.print()
        ui.out.print(ui.text(doc))
    table = Table(title="arguments", title_justify="left")
    for column in ("argument", "type", "default"):
        table.add_column(column, no_wrap=True, overflow="fold")
    parameters = factory_parameters(factory)
    for argument, parameter in parameters.items():
        if argument in registry.injected:
            default = "set by erckit"
        elif parameter.default is inspect.Parameter.empty:
            default = "required"
        else:
            default = _toml_value(parameter.default)
        table.add_row(ui.text(argument), ui.text(_type_name(parameter.annotation, factory, argument)), ui.text(default))
    ui.out.print()
    if parameters:
        ui.print_whole(table)
    else:
        ui.out.print("no arguments")
    if any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values()):
        ui.out.print("any other key is passed through to the factory (**kwargs)")
    return 0


def _unknown_message(name: str, available: list[str]) -> str:
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.75)
    if not close:  # a version or namespace typo: compare the middle part alone too
        middle = name.split(".")[1] if name.count(".") == 2 else name
        close = [n for n in available if n.count(".") == 2 and middle.lower() in n.split(".")[1].lower()][:5]
    if close:
        return f"unknown component {name!r}; did you mean: {', '.join(close)}? ('erckit components' lists all)"
    return f"unknown component {name!r}; 'erckit components' lists all {len(available)}"


def _qualified_name(factory: Callable[..., Any]) -> str:
    module = getattr(factory, "__module__", None) or "?"
    return f"{module}:{getattr(factory, '__qualname__', repr(factory))}"


def _type_name(annotation: Any, factory: Any = None, argument: str = "") -> str:
    """The argument's type as a recipe author reads it: constraints and markers left out,
    nested component tables named by their registry."""
    import typing

    from ..recipe.resolve import nested_components

    marker = nested_components(factory).get(argument) if factory is not None else None
    if marker is not None:
        return f"{marker.registry} tables"
    if factory is not None:
        try:
            annotation = typing.get_type_hints(factory).get(argument, annotation)  # Annotated[...] stripped
        except Exception:  # noqa: BLE001 - unresolvable hints: show them as written
            pass
    if annotation is inspect.Parameter.empty:
        return "any"
    if isinstance(annotation, str):  # from __future__ import annotations: the hint as written
        return annotation
    return inspect.formatannotation(annotation)


def _toml_value(value: Any) -> str:
    """A default as it would be written in a recipe."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
