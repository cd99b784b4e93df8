"""One resolver for every component table a recipe or a saved model names.

A component table is a mapping with a selector key (``factory``; ``kind`` for a
stage, ``dataset`` for ``[data]``) naming a registered factory, and the
factory's keyword arguments. ``check_table`` validates one against the factory's
signature (the signature is the schema) and fills in its defaults; ``create``
calls the factory with the table's arguments plus the values erckit injects
(each registry declares which: ``Registry.injected``). Because both read the
same signature and the same injection list, a table that passes ``check_table``
cannot fail in ``create`` for a signature reason.

A factory argument annotated ``Annotated[..., Component("distillers")]`` holds
nested component tables (one, or a list): they are checked against their own
registry, by the same code, with their path. A nested table may be written as a
bare name (``"erckit.FocalLoss.v1"``).

Nothing here imports torch: factories are looked up, never called, except by
``create``.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import ErckitError, UnknownComponentError
from .signature import check_args, factory_parameters


@dataclass(frozen=True)
class Component:
    """Marks a factory argument as nested component table(s) of ``registry``.

    ``reserved`` are keys of each nested table that belong to the caller (a loss's
    ``weight``), not to the nested factory; their values are kept as given, and
    ``defaults`` fills those the table leaves out (so the resolved recipe shows them).
    """

    registry: str
    reserved: tuple[str, ...] = ()
    defaults: tuple[tuple[str, Any], ...] = ()


def as_table(value: Any, key: str = "factory") -> dict[str, Any] | None:
    """A bare component name or a table, as a new table; None for anything else."""
    if isinstance(value, str):
        return {key: value}
    if isinstance(value, Mapping):
        return dict(value)
    return None


def check_table(
    registry_name: str,
    table: Mapping[str, Any],
    path: str,
    *,
    key: str = "factory",
    reserved: Iterable[str] = (),
) -> tuple[dict[str, Any] | None, list[str]]:
    """Validate one component table; return (the table with defaults filled in, problems).

    The table is None when its factory cannot be found (the problem says which names exist).
    Reserved keys are copied through unchecked: their owner validates them.
    """
    from .. import registry as registries

    registry = registries.get_registry(registry_name)
    name = table.get(key)
    if not isinstance(name, str):
        return None, [f"{path} -> {key}: required: the name of a registered {registry.singular}"]
    try:
        factory = registry.get(name)
    except UnknownComponentError as error:
        return None, [f"{path} -> {key}: {error}"]
    reserved = set(reserved)
    args = {k: v for k, v in table.items() if k != key and k not in reserved}
    nested = nested_components(factory)
    problems: list[str] = []
    # Nested tables are checked by their own registry: the outer check sees them as plain data.
    for argument, marker in nested.items():
        if argument in args:
            args[argument], found = _check_nested(marker, args[argument], f"{path} -> {argument}")
            problems.extend(found)
    filled, found = check_args(factory, name, args, path, injected=registry.injected)
    problems.extend(found)
    for argument in nested:  # pydantic may have rebuilt them; keep the checked tables
        if argument in args:
            filled[argument] = args[argument]
    kept = {k: table[k] for k in table if k in reserved}
    return {key: name, **kept, **filled}, problems


def _check_nested(marker: Component, value: Any, path: str) -> tuple[Any, list[str]]:
    if isinstance(value, list):
        checked, problems = [], []
        for index, item in enumerate(value):
            one, found = _check_one(marker, item, f"{path} -> {index}")
            checked.append(one)
            problems.extend(found)
        return checked, problems
    return _check_one(marker, value, path)


def _check_one(marker: Component, value: Any, path: str) -> tuple[Any, list[str]]:
    if value is None:
        return None, []
    table = as_table(value)
    if table is None:
        return value, [f"{path}: expected a component table or name, got {value!r}"]
    for key, default in marker.defaults:
        table.setdefault(key, default)
    checked, problems = check_table(marker.registry, table, path, reserved=marker.reserved)
    return (checked if checked is not None else table), problems


def nested_components(factory: Any) -> dict[str, Component]:
    """Arguments of ``factory`` annotated with a ``Component`` marker."""
    try:
        hints = typing.get_type_hints(factory, include_extras=True)
    except Exception:  # noqa: BLE001 - unresolvable hints (torch behind TYPE_CHECKING): no markers
        return {}
    found: dict[str, Component] = {}
    for name in factory_parameters(factory):
        hint = hints.get(name)
        if typing.get_origin(hint) is typing.Annotated:
            marker = next((m for m in typing.get_args(hint)[1:] if isinstance(m, Component)), None)
            if marker is not None:
                found[name] = marker
    return found


def create(
    registry_name: str,
    table: Mapping[str, Any],
    *,
    key: str = "factory",
    reserved: Iterable[str] = (),
    **available: Any,
) -> Any:
    """Call the factory a (checked) table names with its arguments and the injected values it asks for.

    ``available`` holds what the caller can inject; only names the registry injects
    and the factory's signature names are passed. A required injected argument the
    caller cannot supply is an erckit bug, not a recipe problem.
    """
    from .. import registry as registries

    registry = registries.get_registry(registry_name)
    name = table[key]
    factory = registry.get(name)
    reserved = set(reserved)
    args = {k: v for k, v in table.items() if k != key and k not in reserved}
    parameters = factory_parameters(factory)
    injected: dict[str, Any] = {}
    for argument, parameter in parameters.items():
        if argument not in registry.injected or argument in args:
            continue
        if argument in available:
            injected[argument] = available[argument]
        elif parameter.default is inspect.Parameter.empty:
            raise ErckitError(
                f"{registry.singular} {name!r} requires {argument!r}, which erckit injects, but this use of it "
                f"cannot supply it (available here: {', '.join(sorted(available)) or 'none'})"
            )
    return factory(**args, **injected)
