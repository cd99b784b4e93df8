"""Optimisers and learning-rate schedules, counted in optimiser steps.

The registered factories (``erckit.AdamW.v1``, ``erckit.LinearSchedule.v1``, ...
in ``erckit.builtin.training``) check their arguments without torch and call the
builders here. ``decay_groups`` is public so a third-party optimizer can group
parameters the same way.
"""

from __future__ import annotations

from typing import Any, Iterable, Literal

import torch
from torch import nn

from ..errors import ErckitError

NamedParameters = Iterable[tuple[str, nn.Parameter]]


def decay_groups(params: NamedParameters, weight_decay: float, decay_all: bool = False) -> list[dict[str, Any]]:
    """Two parameter groups: ``weight_decay`` on matrices, none on biases and norm weights (ndim < 2).

    ``decay_all`` decays the second group too, as ``torch.optim.AdamW(model.parameters())``
    does (the TelME authors' setting); the layout stays the same.

    Not decaying biases and LayerNorm/BatchNorm scales is standard for transformers: decay
    pulls them towards 0, which for a norm's scale means towards switching the layer off.
    Both groups are always present (possibly empty), decay first, so an optimiser's state
    dict has the same layout whatever the model. Parameters that do not require gradients
    are left out.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, parameter in params:
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim < 2 else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": weight_decay if decay_all else 0.0},
    ]


def adam(
    params: NamedParameters,
    *,
    decoupled: bool,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    eps: float,
    decay_all: bool = False,
) -> torch.optim.Optimizer:
    """AdamW (``decoupled``) or Adam (weight decay as L2 on the gradient), fused where the device allows."""
    kind = torch.optim.AdamW if decoupled else torch.optim.Adam
    params = list(params)
    options = {"lr": lr, "betas": tuple(betas), "eps": eps}
    try:
        # One fused kernel per step instead of a Python loop over every parameter tensor.
        return kind(decay_groups(params, weight_decay, decay_all), fused=True, **options)
    except (RuntimeError, TypeError, ValueError):  # a device or dtype without a fused kernel
        # Fresh groups: torch wrote fused=True into the failed attempt's group dicts, and a
        # group keeping it would take the fused path at the first step anyway.
        return kind(decay_groups(params, weight_decay, decay_all), **options)


def sgd(
    params: NamedParameters, *, lr: float, weight_decay: float, momentum: float, nesterov: bool
) -> torch.optim.Optimizer:
    """SGD with (optionally Nesterov) momentum; weight decay as L2 on the gradient."""
    return torch.optim.SGD(decay_groups(params, weight_decay), lr=lr, momentum=momentum, nesterov=nesterov)


ScheduleKind = Literal["linear", "cosine", "constant"]


def schedule_horizon(
    run_steps: int, warmup_ratio: float, warmup_steps: int | None, total_steps: int | None
) -> tuple[int, int]:
    """(horizon, warm-up) in optimiser steps.

    The horizon is ``total_steps`` when given (it may be longer than the run: the schedule
    then stops before its end), else ``run_steps``. The warm-up is ``warmup_steps`` when
    given, else round(warmup_ratio * horizon), and never longer than the horizon.
    """
    horizon = run_steps if total_steps is None else total_steps
    if horizon < run_steps:
        raise ErckitError(
            f"total_steps {horizon} is shorter than the stage's {run_steps} optimiser steps: the schedule "
            "would end before training does; raise total_steps or leave it unset (the run's length)"
        )
    warmup = warmup_steps if warmup_steps is not None else int(round(warmup_ratio * horizon))
    return horizon, min(warmup, horizon)


def schedule(
    kind: ScheduleKind,
    optimizer: torch.optim.Optimizer,
    *,
    run_steps: int,
    warmup_ratio: float = 0.0,
    warmup_steps: int | None = None,
    total_steps: int | None = None,
    num_cycles: float = 0.5,
) -> torch.optim.lr_scheduler.LRScheduler:
    """``transformers.get_scheduler`` over the horizon of ``schedule_horizon``.

    The factor at step k of a warm-up of W steps is k / W (0 at the first step), then
    linear: (H - k) / (H - W); cosine: 0.5 (1 + cos(2 pi num_cycles (k - W) / (H - W)));
    constant: 1. The scheduler is stepped once per optimiser step.
    """
    from transformers import get_scheduler

    horizon, warmup = schedule_horizon(run_steps, warmup_ratio, warmup_steps, total_steps)
    if kind == "constant":
        name = "constant_with_warmup" if warmup > 0 else "constant"
        return get_scheduler(name, optimizer, num_warmup_steps=warmup)
    extra = {"num_cycles": num_cycles} if kind == "cosine" else None
    return get_scheduler(
        kind, optimizer, num_warmup_steps=warmup, num_training_steps=horizon, scheduler_specific_kwargs=extra
    )
