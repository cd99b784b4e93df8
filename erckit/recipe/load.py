"""Read a recipe: TOML -> extends -> ${VARS} -> --set overrides -> schema -> component signatures.

Every problem found is collected and raised together in one ``RecipeError``
whose lines each start with the path of the offending key. Nothing here
imports torch: factories are looked up (which imports plugin modules, kept
light by convention) but never called.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from pydantic import ValidationError

from ..errors import ErckitError, RecipeError, UsageError
from . import schema
from . import resolve
from .schema import Recipe

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_recipe(path: str | Path, overrides: Iterable[str] = (), loggers: Iterable[str] = ()) -> Recipe:
    """Load, merge, override and validate a recipe; raise ``RecipeError`` listing every problem.

    ``loggers`` (``--logger``) are appended to the recipe's ``[[loggers]]`` (default: JSON lines).
    """
    path = Path(path)
    raw = read_with_extends(path)
    problems: list[str] = []
    raw = substitute_variables(raw, problems)
    _name_stages(raw)  # before --set, so stages.<default name>.key addresses an unnamed stage
    overridden = apply_overrides(raw, list(overrides), problems)
    loggers = list(loggers)
    if loggers:
        present = raw.get("loggers", [{"factory": "erckit.JSONL.v1"}])
        if isinstance(present, list):
            raw["loggers"] = [*present, *loggers]
    try:
        recipe = validate(raw, str(path), overridden)
    except RecipeError as error:
        raise RecipeError(str(path), problems + error.problems) from None
    if problems:
        raise RecipeError(str(path), problems)
    return recipe


MAX_RECIPE_BYTES = 1 << 20
"""A recipe is a few KiB of text; anything larger is not one (``/dev/zero`` would never end)."""

MAX_EXTENDS_DEPTH = 32


def read_toml(path: Path, extended_by: Path | None = None) -> dict[str, Any]:
    """Parse one recipe file: a regular file of at most ``MAX_RECIPE_BYTES`` of UTF-8 TOML.

    Only a ``*.toml`` file has its offending line quoted in a syntax error: any other file
    (``extends = "/etc/passwd"``) is named with a line number, never echoed.
    """
    label = f"{path} (extended by {extended_by})" if extended_by is not None else str(path)
    text = _read_recipe_text(path, label)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        match = re.search(r"line (\d+), column (\d+)", str(error))
        if path.suffix.lower() != ".toml":
            where = f" (line {match.group(1)})" if match else ""
            raise ErckitError(f"{label} is not a recipe: not valid TOML{where}") from None
        message = f"TOML syntax error: {error}"
        if match:
            line_no, column = int(match.group(1)), int(match.group(2))
            lines = text.splitlines()
            if 0 < line_no <= len(lines):
                message += f"\n    {line_no} | {lines[line_no - 1]}\n    {' ' * len(str(line_no))} | {' ' * (column - 1)}^"
        raise RecipeError(str(path), [message]) from None


def _read_recipe_text(path: Path, label: str) -> str:
    # O_NONBLOCK: opening a FIFO for reading must not wait for a writer; fstat then
    # refuses it, like devices, before a single byte is read.
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ErckitError(f"recipe file not found: {label}") from None
    except IsADirectoryError:
        raise ErckitError(f"cannot read recipe {label}: a directory, not a regular file") from None
    except OSError as error:
        raise ErckitError(f"cannot read recipe {label}: {error.strerror or error}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ErckitError(f"cannot read recipe {label}: {_file_kind(info.st_mode)}, not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > MAX_RECIPE_BYTES:
            raise ErckitError(
                f"cannot read recipe {label}: {info.st_size:,} bytes; a recipe is at most {MAX_RECIPE_BYTES:,}"
            )
        try:
            data = handle.read(MAX_RECIPE_BYTES + 1)
        except OSError as error:
            raise ErckitError(f"cannot read recipe {label}: {error.strerror or error}") from None
    if len(data) > MAX_RECIPE_BYTES:  # grew after fstat
        raise ErckitError(f"cannot read recipe {label}: larger than {MAX_RECIPE_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ErckitError(f"cannot read recipe {label}: not UTF-8 text (byte {error.start})") from None


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def read_with_extends(path: Path) -> dict[str, Any]:
    """The recipe at ``path`` merged over the chain of recipes it ``extends`` (each relative to its child)."""
    chain: list[Path] = []
    layers: list[dict[str, Any]] = []
    current, child = path, None
    while True:
        resolved = current.resolve()
        if resolved in chain:
            cycle = " -> ".join(str(p) for p in (*chain, resolved))
            raise RecipeError(str(path), [f"extends: cycle {cycle}"])
        if len(chain) == MAX_EXTENDS_DEPTH:
            raise RecipeError(
                str(path), [f"extends: more than {MAX_EXTENDS_DEPTH} files deep (at {current}); flatten the chain"]
            )
        chain.append(resolved)
        raw = read_toml(current, extended_by=child)
        parent = raw.pop("extends", None)
        layers.append(raw)
        if parent is None:
            break
        if not isinstance(parent, str):
            raise RecipeError(str(current), [f"extends: expected a file name, got {parent!r}"])
        parent_path = Path(parent) if Path(parent).is_absolute() else current.parent / parent
        if not parent_path.exists():
            raise RecipeError(str(current), [f"extends: {parent_path} does not exist"])
        current, child = parent_path, current
    merged = layers.pop()
    while layers:
        merged = deep_merge(merged, layers.pop())
    return merged


def deep_merge(base: dict[str, Any], override: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Tables merge key by key; any other value (arrays included) replaces the base's.

    A table naming a different component than the base's (``factory``, or ``dataset`` in
    ``[data]``) replaces it whole: the old component's arguments mean nothing to the new one.
    """
    selector = "dataset" if path == ("data",) else "factory"
    if path and selector in override and selector in base and override[selector] != base[selector]:
        return copy.deepcopy(override)
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value, (*path, key))
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def substitute_variables(raw: Any, problems: list[str], path: str = "") -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in strings with environment values."""
    if isinstance(raw, dict):
        return {k: substitute_variables(v, problems, f"{path} -> {k}" if path else k) for k, v in raw.items()}
    if isinstance(raw, list):
        return [substitute_variables(v, problems, f"{path} -> {i}") for i, v in enumerate(raw)]
    if not isinstance(raw, str):
        return raw

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        problems.append(f"{path}: environment variable {name} is not set (use ${{{name}:-default}} for a default)")
        return match.group(0)

    return _VARIABLE.sub(replace, raw)


def parse_override(item: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (['a', 'b', 'c'], value); the value is read as a TOML literal if it is one."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--set expects KEY=VALUE (e.g. stages.teacher.epochs=3), got {item!r}")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word: treat as a string
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str], problems: list[str]) -> dict[str, str]:
    """Apply ``--set`` items in place; return dotted path -> the text typed (for typing and messages)."""
    applied: dict[str, str] = {}
    for item in overrides:
        keys, value = parse_override(item)
        node: Any = raw
        for depth, key in enumerate(keys[:-1]):
            where = ".".join(keys[: depth + 1])
            if isinstance(node, list):
                node = _list_item(node, key, where, problems)
            elif isinstance(node, dict):
                node = node.setdefault(key, {})
            else:
                node = None
            if node is None:
                problems.append(f"--set {item}: {where} is not a table")
                break
        else:
            last = keys[-1]
            if isinstance(node, list):
                index = _list_index(node, last)
                if index is None:
                    problems.append(f"--set {item}: no item {last!r} in {'.'.join(keys[:-1])}")
                    continue
                node[index] = value
            elif isinstance(node, dict):
                node[last] = value
            else:
                problems.append(f"--set {item}: {'.'.join(keys[:-1])} is not a table")
                continue
            applied[".".join(keys)] = item.partition("=")[2]
    return applied


def _list_index(items: list[Any], key: str) -> int | None:
    if key.isdigit():
        return int(key) if int(key) < len(items) else None
    for i, entry in enumerate(items):
        if isinstance(entry, dict) and entry.get("name") == key:
            return i
    return None


def _list_item(items: list[Any], key: str, where: str, problems: list[str]) -> Any:
    index = _list_index(items, key)
    if index is None:
        names = [str(e.get("name", i)) for i, e in enumerate(items) if isinstance(e, dict)]
        problems.append(f"--set: no item {key!r} at {where} (have: {', '.join(names) or 'none'})")
        return _Missing
    return items[index]


class _MissingType(dict):
    """Absorbs writes below a path that was already reported as missing."""


_Missing = _MissingType()


# ---------------------------------------------------------------------------
# Validation


def validate(raw: dict[str, Any], source: str, overridden: Mapping[str, str] | None = None) -> Recipe:
    """Shorthands -> component tables (each against its factory's signature) -> stage checks -> schema.

    Every problem of every step is collected, so one check lists them all.
    """
    overridden = overridden or {}
    _name_stages(raw)
    problems = expand_shorthands(raw)
    checked: set[int] = set()  # positions of the stages whose kind table passed
    problems += check_components(raw, overridden, checked)
    problems = _mark_overridden(problems, overridden)
    problems += check_stages(raw, checked)
    try:
        recipe = _validate_schema(raw, overridden)
    except ValidationError as error:
        schema_problems = [_describe(item, raw, overridden) for item in error.errors()]
        raise RecipeError(source, schema_problems + problems) from None
    if problems:
        raise RecipeError(source, problems)
    return recipe


def _mark_overridden(problems: list[str], overridden: Mapping[str, str]) -> list[str]:
    """Say "(from --set)" on a component problem whose key came from the command line, also when it
    was set through a stage shorthand (``--set stages.teacher.lr=...`` is ``optimizer -> lr``)."""
    marked = []
    for problem in problems:
        parts = problem.split(":", 1)[0].split(" -> ")
        dotted = {".".join(parts)}
        if len(parts) == 4 and parts[0] == "stages" and parts[2] in ("optimizer", "scheduler"):
            dotted.add(f"stages.{parts[1]}.{parts[3]}")
        if "(from --set)" not in problem and dotted & set(overridden):
            problem += " (from --set)"
        marked.append(problem)
    return marked


def expand_shorthands(raw: dict[str, Any]) -> list[str]:
    """Stage and logger shorthands (``kind = "fuse"``, ``lr = 1e-4``, ``"tensorboard"``) as full tables."""
    problems: list[str] = []
    stages = raw.get("stages")
    for stage in stages if isinstance(stages, list) else []:
        if isinstance(stage, dict):
            problems += schema.expand_stage_shorthands(stage)
    loggers = raw.setdefault("loggers", [{"factory": "erckit.JSONL.v1"}])  # checked like any other table
    if isinstance(loggers, list):
        raw["loggers"] = [
            {"factory": schema.full_name(item, schema.LOGGERS)} if isinstance(item, str)
            else ({**item, "factory": schema.full_name(item["factory"], schema.LOGGERS)}
                  if isinstance(item, dict) and "factory" in item else item)
            for item in loggers
        ]
    return problems


def check_components(
    raw: dict[str, Any], overridden: Mapping[str, str] | None = None, checked: set[int] | None = None
) -> list[str]:
    """Check every component table of a raw recipe with the one resolver; fill defaults in place.

    Tables of the wrong shape are skipped: the schema reports them.
    """
    problems: list[str] = []

    def check(registry: str, parent: Any, key: Any, path: str, selector: str = "factory",
              reserved: Iterable[str] = ()) -> None:
        table = parent[key] if isinstance(parent, (dict, list)) else None
        if not isinstance(table, dict) or not isinstance(table.get(selector), str):
            return
        filled, found = resolve.check_table(registry, table, path, key=selector, reserved=reserved)
        problems.extend(found)
        if filled is not None and not found:
            parent[key] = filled

    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("dataset"), str):
        filled, found = resolve.check_table("datasets", data, "data", key="dataset", reserved=schema.DATA_RESERVED)
        problems.extend(found)
        if filled is not None and not found:
            # A reader argument named like a [data] key (labels) is that key: its default must not shadow it.
            data.update({k: v for k, v in filled.items() if k not in schema.DATA_RESERVED})
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    encoders = model.get("encoders")
    for name in list(encoders) if isinstance(encoders, dict) else []:
        check("encoders", encoders, name, f"model -> encoders -> {name}")
    if "fuser" in model:
        check("fusers", model, "fuser", "model -> fuser")
    stages = raw.get("stages")
    for index, stage in enumerate(stages if isinstance(stages, list) else []):
        if not isinstance(stage, dict):
            continue
        where = f"stages -> {stage.get('name') or index}"
        problems += _unknown_stage_keys(stage, where, overridden or {})  # removed: the kind's table stays checkable
        before = len(problems)
        check("stages", stages, index, where, selector="kind", reserved=schema.STAGE_RESERVED)
        if len(problems) > before and "unknown stage kind" in problems[before]:
            problems[before] += f" Short names: {', '.join(schema.STAGE_KINDS)}."
        stage = stages[index]
        if len(problems) == before and isinstance(stage.get("kind"), str) and checked is not None:
            checked.add(index)
        for key, registry in (("objective", "objectives"), ("optimizer", "optimizers"), ("scheduler", "schedulers")):
            check(registry, stage, key, f"{where} -> {key}")
    loggers = raw.get("loggers")
    for index in range(len(loggers) if isinstance(loggers, list) else 0):
        check("loggers", loggers, index, f"loggers -> {index}")
    return problems


def _unknown_stage_keys(stage: dict[str, Any], where: str, overridden: Mapping[str, str]) -> list[str]:
    """Keys neither every stage has nor the stage kind takes, with a suggestion from both; removed
    from the table so the kind's own check does not report them again."""
    from .. import registry
    from .signature import factory_parameters

    kind = stage.get("kind")
    if not isinstance(kind, str) or kind not in registry.stages.names():
        return []
    factory = registry.stages.get(kind)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
    own = set(factory_parameters(factory))
    if accepts_any:
        return []
    known = sorted(own | set(schema.STAGE_RESERVED) | set(_STAGE_SHORTHANDS))
    problems = []
    for key in [k for k in stage if k not in own and k not in schema.STAGE_RESERVED]:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        origin = " (from --set)" if f"stages.{stage.get('name')}.{key}" in overridden else ""
        problems.append(f"{where} -> {key}: unknown key{origin}.{hint}")
        del stage[key]
    return problems


_STAGE_SHORTHANDS = (*schema.OPTIMIZER_SHORTHAND_KEYS, *schema.SCHEDULER_SHORTHAND_KEYS, "class_weights")


def stage_kinds(recipe: Recipe) -> list[Any]:
    """Each stage's ``StageKind`` (cheap: stage kind factories build descriptions, not models)."""
    return [resolve.create("stages", stage.kind_table(), key="kind") for stage in recipe.stages]


def check_stages(raw: dict[str, Any], checked: set[int]) -> list[str]:
    """Cross-field rules on the raw recipe: unique stage names, the anchor, and each stage kind's own
    check of the model (stages whose table is broken are skipped: their problems are reported)."""
    from .schema import ModelView

    problems: list[str] = []
    model = raw.get("model") if isinstance(raw.get("model"), dict) else {}
    encoders = tuple(model.get("encoders") or ()) if isinstance(model.get("encoders"), dict) else ()
    anchor = model.get("anchor")
    if anchor is not None and encoders and anchor not in encoders:
        problems.append(f"model -> anchor: {anchor!r} is not an encoder (have: {', '.join(encoders)})")
    listed = raw.get("stages") if isinstance(raw.get("stages"), list) else []
    stages = [(i, s) for i, s in enumerate(listed) if isinstance(s, dict)]
    names = [s.get("name") for _, s in stages]
    for name in sorted({n for n in names if isinstance(n, str) and names.count(n) > 1}):
        problems.append(f"stages -> {name}: two stages share this name; give each a unique 'name'")
    trained: set[str] = set()
    for index, stage in stages:
        if index not in checked:
            # What a broken stage trains is unknown: assume everything, so later stages are not
            # blamed for its problem (already reported).
            trained.update(encoders)
            continue
        where = f"stages -> {stage.get('name')}"
        table = {k: v for k, v in stage.items() if k not in schema.STAGE_RESERVED}
        try:
            kind = resolve.create("stages", {**table, "kind": stage["kind"]}, key="kind")
        except ErckitError as error:
            problems.append(f"{where}: {error}")
            continue
        view = ModelView(encoders, anchor or (encoders[0] if encoders else ""), isinstance(model.get("fuser"), dict), frozenset(trained))
        problems += [f"{where} -> {problem}" for problem in kind.check(view)]
        trained.update(kind.trains())
    return problems


def _validate_schema(raw: dict[str, Any], overridden: Mapping[str, str]) -> Recipe:
    """Validate; a ``--set`` value read as a number/bool where the schema wants a string is
    retried as the text the user typed (``--set output_dir=2024`` means the string)."""
    try:
        return Recipe.model_validate(raw)
    except ValidationError as error:
        retried = False
        for item in error.errors():
            parts, parent, key = _walk(item["loc"], raw)
            text = overridden.get(".".join(parts))
            if item["type"] == "string_type" and text is not None and isinstance(parent, (dict, list)):
                parent[key] = text
                retried = True
        if not retried:
            raise
    return Recipe.model_validate(raw)


def _name_stages(raw: dict[str, Any]) -> None:
    """Give unnamed stages their kind as name (kind + position when a kind repeats)."""
    stages = raw.get("stages")
    if not isinstance(stages, list):
        return
    kinds = [s.get("kind") for s in stages if isinstance(s, dict)]
    for position, stage in enumerate(stages):
        if isinstance(stage, dict) and "name" not in stage and isinstance(stage.get("kind"), str):
            kind = stage["kind"]
            stage["name"] = kind if kinds.count(kind) == 1 else f"{kind}{position + 1}"


_ALL_KEYS = sorted(
    {
        name
        for model in (schema.Recipe, schema.DataConfig, schema.ModelConfig, schema.RuntimeConfig, schema.StageConfig)
        for name in model.model_fields
    }
    | set(schema.OPTIMIZER_SHORTHAND_KEYS) | set(schema.SCHEDULER_SHORTHAND_KEYS) | {"class_weights"}
)


def _walk(loc: Sequence[Any], raw: dict[str, Any]) -> tuple[list[str], Any, Any]:
    """Readable parts of a pydantic error location (stages by name), plus the raw container and key."""
    parts: list[str] = []
    node: Any = raw
    parent: Any = None
    key: Any = None
    for i, part in enumerate(loc):
        parent, key = node, part
        if isinstance(part, int) and isinstance(node, list) and part < len(node):
            entry = node[part]
            label = entry.get("name") if isinstance(entry, dict) else None
            parts.append(str(label) if label else str(part))
            node = entry
            continue
        parts.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return parts, parent, key


def _describe(item: dict[str, Any], raw: dict[str, Any], overridden: Mapping[str, str]) -> str:
    loc = list(item["loc"])
    parts, _, _ = _walk(loc, raw)
    path = " -> ".join(parts)
    dotted = ".".join(parts)
    origin = " (from --set)" if dotted in overridden else ""
    kind = item["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _ALL_KEYS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"{path}: unknown key{origin}.{hint}"
    if kind == "missing":
        return f"{path}: required key is missing"
    return f"{path}: {item['msg']}{origin} (got {item.get('input')!r})"
