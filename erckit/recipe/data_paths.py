"""Warnings about the data a recipe points at, for ``erckit recipe check``.

A recipe is valid whether or not its data is on this machine yet (it may be
checked on a laptop and trained on a server), so a missing ``root`` is a warning
that says where the data comes from and how to point the recipe at it, never an
error. Dataset factories may describe their data with two attributes:
``data_source`` (one sentence: where to get it) and ``creates_root`` (True when
the factory generates a missing root itself, as ``erckit.Demo.v1`` does).
"""

from __future__ import annotations

from pathlib import Path

from .load import _VARIABLE, read_with_extends
from .schema import Recipe


def data_root_warnings(recipe: Recipe, source: str | Path) -> list[str]:
    """One message when ``data.root`` is not a directory (none when it is, or will be generated)."""
    from .. import registry

    root = recipe.data.args.get("root")
    factory = registry.datasets.get(recipe.data.dataset)
    if not isinstance(root, str) or getattr(factory, "creates_root", False):
        return []
    path = Path(root).expanduser()
    if path.is_dir():
        return []
    state = "is not a directory" if path.exists() else "does not exist"
    where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
    message = f"data -> root: {root} {state}{where}; training and evaluation need it."
    data_source = getattr(factory, "data_source", None)
    if isinstance(data_source, str) and data_source:
        message += f" {data_source}"
    target = f"/path/to/{path.name or 'data'}"
    variables = _root_variables(Path(source))
    how = f"export {' or '.join(variables)}={target} (the recipe reads it) or " if variables else ""
    return [message + f" Point the recipe at it: {how}--set data.root={target}."]


def _root_variables(source: Path) -> list[str]:
    raw_root = read_with_extends(source).get("data", {}).get("root")
    return [name for name, _ in _VARIABLE.findall(raw_root)] if isinstance(raw_root, str) else []
