"""Built-in objectives, optimizers and learning-rate schedules, and their registration. Imports without torch.

Each factory's signature is its recipe schema. Arguments are checked here, before
torch is imported, and every bad value is an ``ErckitError`` naming the component.
Injected by erckit (a recipe never sets them): ``num_classes`` and ``class_counts``
(training examples per class) for objectives, ``params`` ((name, parameter) pairs,
trainable only) for optimizers, ``optimizer`` and ``run_steps`` (optimiser steps of
the stage's run) for schedulers.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Sequence

from pydantic import Field

from ..errors import ErckitError

# Ranges in the signatures, so `erckit recipe check` refuses a bad value before anything runs;
# the factories check again for callers that build them directly.
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]
Steps = Annotated[int, Field(ge=0)]
from ..plugins import hookimpl

# --------------------------------------------------------------------------- checks


def _finite(component: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ErckitError(f"{component}: {name} must be a finite number (got {value!r})")
    return float(value)


def _at_least(component: str, name: str, value: Any, low: float, *, strict: bool = False) -> float:
    number = _finite(component, name, value)
    if number < low or (strict and number == low):
        raise ErckitError(f"{component}: {name} must be {'>' if strict else '>='} {low:g} (got {value!r})")
    return number


def _fraction(component: str, name: str, value: Any, *, closed: bool) -> float:
    """A number in [0, 1] (``closed``) or [0, 1)."""
    number = _finite(component, name, value)
    if number < 0 or number > 1 or (not closed and number == 1):
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ErckitError(f"{component}: {name} must be in {interval} (got {value!r})")
    return number


def _count(component: str, name: str, value: Any, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ErckitError(f"{component}: {name} must be a whole number >= {low} (got {value!r})")
    return value


def _class_counts(component: str, num_classes: int, class_counts: Sequence[int] | None, why: str) -> list[int]:
    if class_counts is None:
        raise ErckitError(f"{component} needs class_counts for {why} (injected by erckit: training examples per class)")
    counts = list(class_counts)
    if len(counts) != num_classes or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
        raise ErckitError(
            f"{component}: class_counts must be {num_classes} whole numbers >= 0, one per class (got {counts!r})"
        )
    if sum(counts) == 0:
        raise ErckitError(f"{component}: no training examples to compute {why} from (class_counts are all 0)")
    return counts


def _class_weights(component: str, name: str, num_classes: int, value: Any) -> list[float] | None:
    """``value`` checked as 'balanced' (None returned) or a list of num_classes positive numbers."""
    if isinstance(value, str):
        if value != "balanced":
            raise ErckitError(f"{component}: {name} must be 'balanced' or a list of {num_classes} numbers (got {value!r})")
        return None
    if not isinstance(value, (list, tuple)) or len(value) != num_classes:
        raise ErckitError(
            f"{component}: {name} must be 'balanced' or a list of {num_classes} positive numbers, one per class "
            f"(got {value!r})"
        )
    weights = [_finite(component, f"{name}[{i}]", w) for i, w in enumerate(value)]
    for i, weight in enumerate(weights):
        if weight <= 0:
            raise ErckitError(f"{component}: {name}[{i}] must be > 0 (got {value[i]!r}); every class needs a weight")
    return weights


def _num_classes(component: str, num_classes: Any) -> int:
    return _count(component, "num_classes", num_classes, low=1)


# ----------------------------------------------------------------------- objectives


def cross_entropy(num_classes: int, label_smoothing: float = 0.0) -> Any:
    """Cross-entropy on the head's logits, optionally label-smoothed.

    label_smoothing: eps in [0, 1); the target is (1 - eps) on the label and eps / C
    spread over all C classes (PyTorch's definition).
    """
    name = "erckit.CrossEntropy.v1"
    _num_classes(name, num_classes)
    smoothing = _fraction(name, "label_smoothing", label_smoothing, closed=False)
    from ..nn.losses import CrossEntropy

    return CrossEntropy(label_smoothing=smoothing)


def weighted_cross_entropy(
    num_classes: int,
    class_counts: list[int] | None = None,
    weights: Literal["balanced"] | list[float] = "balanced",
    label_smoothing: Fraction = 0.0,
) -> Any:
    """Class-weighted cross-entropy (weighted mean over rows, as PyTorch's weight=).

    weights: "balanced" (class c weighs sum(counts) / (C * max(count_c, 1)) from the
    training examples per class, as class_weights = true) or a list of C positive
    numbers in label order (only their ratios matter). label_smoothing: eps in [0, 1).
    """
    name = "erckit.WeightedCrossEntropy.v1"
    classes = _num_classes(name, num_classes)
    given = _class_weights(name, "weights", classes, weights)
    smoothing = _fraction(name, "label_smoothing", label_smoothing, closed=False)
    counts = _class_counts(name, classes, class_counts, "balanced weights") if given is None else None
    import torch

    from ..nn.losses import CrossEntropy, balanced_class_weights

    weight = balanced_class_weights(counts) if counts is not None else torch.tensor(given, dtype=torch.float32)
    return CrossEntropy(weight=weight, label_smoothing=smoothing)


def focal_loss(
    num_classes: int,
    class_counts: list[int] | None = None,
    gamma: NonNegative = 2.0,
    alpha: None | Literal["balanced"] | list[float] = None,
    label_smoothing: Fraction = 0.0,
) -> Any:
    """Focal loss (Lin et al.): mean over rows of -alpha_y (1 - p_y)^gamma log p_y.

    gamma: focusing, >= 0 (0 without alpha is cross-entropy). alpha: none, "balanced"
    (the balanced class weights of WeightedCrossEntropy) or a list of C positive
    numbers in label order; either is rescaled so that it averages 1 over the training
    examples (sum_c count_c alpha_c = sum_c count_c), so only its ratios matter and the
    loss keeps the scale of the unweighted one. label_smoothing: eps in [0, 1), the
    target (1 - eps) one-hot + eps / C weighting each class's focal term.
    """
    name = "erckit.FocalLoss.v1"
    classes = _num_classes(name, num_classes)
    focusing = _at_least(name, "gamma", gamma, 0.0)
    given = None if alpha is None else _class_weights(name, "alpha", classes, alpha)
    smoothing = _fraction(name, "label_smoothing", label_smoothing, closed=False)
    counts = None if alpha is None else _class_counts(name, classes, class_counts, "alpha")
    import torch

    from ..nn.losses import FocalLoss, balanced_class_weights, normalised_class_weights

    weight = None
    if counts is not None:
        raw = balanced_class_weights(counts) if given is None else torch.tensor(given, dtype=torch.float32)
        weight = normalised_class_weights(raw, counts)
    return FocalLoss(gamma=focusing, alpha=weight, label_smoothing=smoothing)


# ----------------------------------------------------------------------- optimizers


def _flag(component: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ErckitError(f"{component}: {name} must be true or false (got {value!r})")
    return value


def _adam_options(name: str, lr: Any, weight_decay: Any, betas: Any, eps: Any) -> dict[str, Any]:
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
        raise ErckitError(f"{name}: betas must be two numbers in [0, 1), e.g. [0.9, 0.999] (got {betas!r})")
    return {
        "lr": _at_least(name, "lr", lr, 0.0, strict=True),
        "weight_decay": _at_least(name, "weight_decay", weight_decay, 0.0),
        "betas": tuple(_fraction(name, f"betas[{i}]", b, closed=False) for i, b in enumerate(betas)),
        "eps": _at_least(name, "eps", eps, 0.0),
    }


def adamw(
    params: list[tuple[str, Any]],
    lr: Positive = 1e-5,
    weight_decay: NonNegative = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    decay_all: bool = False,
) -> Any:
    """AdamW (decoupled weight decay, none on biases and norm weights).

    lr: peak learning rate (the schedule scales it). weight_decay: on weight matrices
    only (parameters with 2 or more dimensions), or with decay_all on every parameter
    (torch's AdamW(model.parameters()), as the TelME authors train). Uses torch's fused
    kernel where the device has one.
    """
    options = _adam_options("erckit.AdamW.v1", lr, weight_decay, betas, eps)
    from ..train.optim import adam

    return adam(params, decoupled=True, decay_all=_flag("erckit.AdamW.v1", "decay_all", decay_all), **options)


def adam_optimizer(
    params: list[tuple[str, Any]],
    lr: Positive = 1e-5,
    weight_decay: NonNegative = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    decay_all: bool = False,
) -> Any:
    """Adam (weight decay as L2 on the gradient, none on biases and norm weights).

    lr: peak learning rate (the schedule scales it). weight_decay: on weight matrices
    only (parameters with 2 or more dimensions), or with decay_all on every parameter.
    Uses torch's fused kernel where the device has one.
    """
    options = _adam_options("erckit.Adam.v1", lr, weight_decay, betas, eps)
    from ..train.optim import adam

    return adam(params, decoupled=False, decay_all=_flag("erckit.Adam.v1", "decay_all", decay_all), **options)


def sgd_optimizer(
    params: list[tuple[str, Any]],
    lr: Positive = 1e-5,
    weight_decay: NonNegative = 0.01,
    momentum: NonNegative = 0.9,
    nesterov: bool = False,
) -> Any:
    """SGD with momentum (weight decay as L2 on the gradient, none on biases and norm weights).

    lr: peak learning rate (the schedule scales it). momentum: >= 0. nesterov: Nesterov
    momentum (needs momentum > 0).
    """
    name = "erckit.SGD.v1"
    rate = _at_least(name, "lr", lr, 0.0, strict=True)
    decay = _at_least(name, "weight_decay", weight_decay, 0.0)
    inertia = _at_least(name, "momentum", momentum, 0.0)
    if not isinstance(nesterov, bool):
        raise ErckitError(f"{name}: nesterov must be true or false (got {nesterov!r})")
    if nesterov and inertia == 0:
        raise ErckitError(f"{name}: nesterov = true needs momentum > 0 (got momentum {momentum!r})")
    from ..train.optim import sgd

    return sgd(params, lr=rate, weight_decay=decay, momentum=inertia, nesterov=nesterov)


# ----------------------------------------------------------------------- schedules


def _schedule(
    kind: Literal["linear", "cosine", "constant"], name: str, optimizer: Any, run_steps: Any,
    warmup_ratio: Any, warmup_steps: Any, total_steps: Any, num_cycles: float = 0.5,
) -> Any:
    steps = _count(name, "run_steps", run_steps, low=0)
    ratio = _fraction(name, "warmup_ratio", warmup_ratio, closed=True)
    warmup = None if warmup_steps is None else _count(name, "warmup_steps", warmup_steps, low=0)
    horizon = None if total_steps is None else _count(name, "total_steps", total_steps, low=1)
    cycles = _at_least(name, "num_cycles", num_cycles, 0.0, strict=True)
    from ..train.optim import schedule

    return schedule(kind, optimizer, run_steps=steps, warmup_ratio=ratio, warmup_steps=warmup,
                    total_steps=horizon, num_cycles=cycles)


def linear_schedule(
    optimizer: Any,
    run_steps: int,
    warmup_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0,
    warmup_steps: Steps | None = None,
    total_steps: Annotated[int, Field(ge=1)] | None = None,
) -> Any:
    """Linear warm-up from 0, then linear decay to 0 at the horizon (transformers' "linear").

    total_steps: the horizon in optimiser steps (default: the stage's run); longer than
    the run, the schedule stops before reaching 0. warmup_steps: warm-up length
    (default: round(warmup_ratio * horizon)).
    """
    return _schedule("linear", "erckit.LinearSchedule.v1", optimizer, run_steps, warmup_ratio, warmup_steps, total_steps)


def cosine_schedule(
    optimizer: Any,
    run_steps: int,
    warmup_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0,
    warmup_steps: Steps | None = None,
    total_steps: Annotated[int, Field(ge=1)] | None = None,
    num_cycles: float = 0.5,
) -> Any:
    """Linear warm-up from 0, then cosine decay over the horizon (transformers' "cosine").

    num_cycles: cosine waves over the decay (0.5: one half-wave from the peak down to 0).
    total_steps: the horizon in optimiser steps (default: the stage's run). warmup_steps:
    warm-up length (default: round(warmup_ratio * horizon)).
    """
    return _schedule("cosine", "erckit.CosineSchedule.v1", optimizer, run_steps, warmup_ratio, warmup_steps,
                     total_steps, num_cycles)


def constant_schedule(
    optimizer: Any,
    run_steps: int,
    warmup_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0,
    warmup_steps: Steps | None = None,
    total_steps: Annotated[int, Field(ge=1)] | None = None,
) -> Any:
    """Constant learning rate, after a linear warm-up from 0 if one is set.

    total_steps: the horizon the warm-up ratio is taken of (default: the stage's run).
    warmup_steps: warm-up length (default: round(warmup_ratio * horizon)).
    """
    return _schedule("constant", "erckit.ConstantSchedule.v1", optimizer, run_steps, warmup_ratio, warmup_steps,
                     total_steps)


@hookimpl
def register_components(register: Any) -> None:
    register("objectives", "erckit.CrossEntropy.v1", cross_entropy)
    register("objectives", "erckit.WeightedCrossEntropy.v1", weighted_cross_entropy)
    register("objectives", "erckit.FocalLoss.v1", focal_loss)
    register("optimizers", "erckit.AdamW.v1", adamw)
    register("optimizers", "erckit.Adam.v1", adam_optimizer)
    register("optimizers", "erckit.SGD.v1", sgd_optimizer)
    register("schedulers", "erckit.LinearSchedule.v1", linear_schedule)
    register("schedulers", "erckit.CosineSchedule.v1", cosine_schedule)
    register("schedulers", "erckit.ConstantSchedule.v1", constant_schedule)
