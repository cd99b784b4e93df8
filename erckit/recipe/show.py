"""Turn a validated recipe back into TOML (``erckit recipe show``, config.json of a model)."""

from __future__ import annotations

import json
import math
from typing import Any

from .schema import Recipe


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """Plain data (JSON-able) with every default filled in, component arguments included."""
    return recipe.model_dump(mode="json")


def recipe_to_toml(recipe: Recipe, header: str | None = None) -> str:
    lines: list[str] = [f"# {line}" for line in (header or "").splitlines()]
    _table(lines, [], recipe_to_dict(recipe), array_item=False)
    return "\n".join(lines).strip() + "\n"


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(lines: list[str], path: list[str], data: dict[str, Any], array_item: bool) -> None:
    for key, value in data.items():
        if value is None:
            lines.append(f"# {_key(key)} is not set")
        elif isinstance(value, dict) and not array_item:
            continue
        elif _is_table_list(value):
            continue
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in data.items():
        if isinstance(value, dict) and not array_item:
            lines.append("")
            lines.append(f"[{'.'.join(_key(p) for p in (*path, key))}]")
            _table(lines, [*path, key], value, array_item=False)
    for key, value in data.items():
        if _is_table_list(value):
            for item in value:
                lines.append("")
                lines.append(f"[[{'.'.join(_key(p) for p in (*path, key))}]]")
                _table(lines, [*path, key], item, array_item=True)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None) + " }"
    return json.dumps(str(value))
