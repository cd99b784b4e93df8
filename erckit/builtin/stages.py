"""The built-in stage kinds, registered through the same hook as any plugin's. Imports without torch.

A stage kind factory's signature is the schema of its stage table's own keys;
recipes may use the short names ``supervised``, ``distill`` and ``fuse``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ..plugins import hookimpl
from ..recipe.resolve import Component
from ..train.stage import StageKind

NonEmptyNames = Annotated[list[str], Field(min_length=1)]


def supervised(encoders: NonEmptyNames) -> StageKind:
    """Train encoders, each on its own head, with the stage's objective (cross-entropy by default)."""
    from ..train.kinds import Supervised

    return Supervised(list(encoders))


def distill(
    students: NonEmptyNames,
    teacher: str | None = None,
    teachers: list[str] | None = None,
    ce_weight: Annotated[float, Field(ge=0)] = 1.0,
    losses: Annotated[list[Any], Component("distillers", reserved=("weight", "teacher"), defaults=(("weight", 1.0),))] = [],  # noqa: B006 - read, never mutated
) -> StageKind:
    """Train students with the objective (times ce_weight) plus weighted distillers against frozen teachers.

    teacher / teachers: the encoder(s) to learn from (any encoder; set one of the two).
    losses: distiller tables; each may set weight (default 1) and, with several
    teachers, teacher (which one it compares with).
    """
    from ..errors import ErckitError
    from ..train.kinds import Distill

    if teacher is not None and teachers is not None:
        raise ErckitError("teacher and teachers: set one of them (teachers = [...] for several)")
    for index, loss in enumerate(losses):
        weight = loss.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ErckitError(f"losses -> {index} -> weight: expected a number >= 0 (got {weight!r})")
    return Distill(list(students), [teacher] if teacher is not None else list(teachers or []), ce_weight, list(losses))


def fuse(encoders: list[str] | None = None, untrained_encoders_reason: str | None = None) -> StageKind:
    """Train the fuser on the cached outputs of frozen encoders (default: all of them)."""
    from ..train.kinds import Fuse

    return Fuse(None if encoders is None else list(encoders), untrained_encoders_reason)


@hookimpl
def register_components(register: Any) -> None:
    register("stages", "erckit.Supervised.v1", supervised)
    register("stages", "erckit.Distill.v1", distill)
    register("stages", "erckit.Fuse.v1", fuse)
