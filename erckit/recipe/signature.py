"""Validate a component table against its factory's signature (the signature is the schema)."""

from __future__ import annotations

import difflib
import inspect
import types
import typing
from typing import Any, Callable

from pydantic import ConfigDict, StrictBool, ValidationError, create_model

# Arguments erckit supplies to model components (encoders, distillers, fusers) when their
# signature asks for them; each registry declares its own set (``Registry.injected``).
INJECTED = frozenset({"num_classes", "input_dims", "anchor"})


def factory_parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """Keyword-settable parameters of ``factory`` (injected ones included)."""
    return {
        name: p
        for name, p in inspect.signature(factory).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _annotation(factory: Callable[..., Any], name: str, parameter: inspect.Parameter) -> Any:
    return strict_bools(_resolved_annotation(factory, parameter))


def strict_bools(annotation: Any) -> Any:
    """``annotation`` with every ``bool`` strict: a recipe says true or false, never "no" (read as true
    by a plain cast) or 0; pydantic's lax bool would accept both."""
    if annotation is bool:
        return StrictBool
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if not args or origin in (typing.Literal, typing.Annotated):
        return annotation
    strict = tuple(strict_bools(a) for a in args)
    if strict == args:
        return annotation
    if origin in (typing.Union, types.UnionType):
        return typing.Union[strict]
    if origin in (list, dict, tuple, set, frozenset):
        return origin[strict]
    return annotation


def _resolved_annotation(factory: Callable[..., Any], parameter: inspect.Parameter) -> Any:
    annotation = parameter.annotation
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        namespace = dict(vars(typing))
        namespace.update(getattr(factory, "__globals__", {}))
        try:
            resolved = eval(annotation, namespace)  # noqa: S307 - annotations of installed code
        except Exception:
            return Any  # e.g. a torch type hidden behind TYPE_CHECKING: accept anything
        # A quoted hint under ``from __future__ import annotations`` evaluates to a string,
        # which pydantic would treat as an unresolvable forward reference.
        return Any if isinstance(resolved, str) else resolved
    return annotation


def check_args(
    factory: Callable[..., Any], name: str, args: dict[str, Any], path: str, injected: frozenset[str] = INJECTED
) -> tuple[dict[str, Any], list[str]]:
    """Return (arguments with defaults filled in, problems) for one component table.

    ``injected`` names the arguments erckit passes itself: a table may not set them, and
    a factory requiring one is not missing it.
    """
    parameters = factory_parameters(factory)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
    settable = {n: p for n, p in parameters.items() if n not in injected}
    problems: list[str] = []
    for key in args:
        if key in settable or accepts_any:
            continue
        if key in injected and key in parameters:
            problems.append(f"{path} -> {key}: set by erckit, not by the recipe ({name})")
            continue
        close = difflib.get_close_matches(key, settable, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        valid = ", ".join(settable) or "none"
        problems.append(f"{path} -> {key}: unknown argument of {name}.{hint} Valid: {valid}")

    fields: dict[str, Any] = {}
    for arg, parameter in settable.items():
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[arg] = (_annotation(factory, arg, parameter), default)
    model = create_model(  # type: ignore[call-overload]
        f"{name}_args", __config__=ConfigDict(arbitrary_types_allowed=True, extra="ignore"), **fields
    )
    try:
        validated = model.model_validate({k: v for k, v in args.items() if k in settable})
    except ValidationError as error:
        for item in error.errors():
            where = " -> ".join(str(part) for part in item["loc"])
            if item["type"] == "missing":
                problems.append(f"{path} -> {where}: missing required argument of {name}")
            else:
                problems.append(f"{path} -> {where}: {item['msg']} (got {item.get('input')!r})")
        return dict(args), problems
    filled = {arg: getattr(validated, arg) for arg in settable}
    # Keep extra **kwargs the factory accepts as given.
    filled.update({k: v for k, v in args.items() if k not in settable})
    return filled, problems


def summary(factory: Callable[..., Any]) -> str:
    """First line of the factory's docstring."""
    doc = inspect.getdoc(factory) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
