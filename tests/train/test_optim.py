"""Optimiser groups and learning-rate schedules (warm-up counted in optimiser steps)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from erckit.recipe.schema import SupervisedStage
from erckit.train.optim import build_optimizer, build_scheduler, warmup_steps


def _stage(**fields) -> SupervisedStage:
    return SupervisedStage(kind="supervised", encoders=["text"], **fields)


def _lrs(stage: SupervisedStage, total: int) -> list[float]:
    """The LR used by optimiser step k (k = 0..total-1)."""
    module = nn.Linear(2, 2)
    optimizer = build_optimizer(stage, module)
    scheduler = build_scheduler(stage, optimizer, total)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_linear_warmup_then_linear_decay_in_optimizer_steps() -> None:
    lrs = _lrs(_stage(lr=1.0, warmup_steps=4, scheduler="linear"), total=10)
    # LR after k steps: (k+1)/4 during warm-up, then linear to 0 over the remaining 6 steps.
    expected = [0.25, 0.5, 0.75, 1.0] + [1.0 - (k - 4) / 6 for k in range(4, 10)]
    assert lrs == pytest.approx(expected)


def test_warmup_ratio_is_a_fraction_of_optimizer_steps() -> None:
    stage = _stage(lr=2.0, warmup_ratio=0.25, scheduler="constant")
    assert warmup_steps(stage, 20) == 5
    lrs = _lrs(stage, 20)
    assert lrs[:5] == pytest.approx([0.4, 0.8, 1.2, 1.6, 2.0])
    assert lrs[5:] == pytest.approx([2.0] * 15)


def test_warmup_steps_override_ratio_and_are_capped() -> None:
    assert warmup_steps(_stage(warmup_ratio=0.5, warmup_steps=3), 100) == 3
    assert warmup_steps(_stage(warmup_steps=50), 10) == 10


def test_cosine_schedule() -> None:
    lrs = _lrs(_stage(lr=1.0, warmup_steps=2, scheduler="cosine"), total=10)
    assert lrs[:2] == pytest.approx([0.5, 1.0])
    for k in range(2, 10):
        assert lrs[k] == pytest.approx(0.5 * (1 + math.cos(math.pi * (k - 2) / 8)))


def test_no_weight_decay_on_biases_and_norms() -> None:
    module = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    optimizer = build_optimizer(_stage(weight_decay=0.1), module)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]
    assert len(no_decay["params"]) == 3


@pytest.mark.parametrize("name,cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)])
def test_optimizer_choice(name: str, cls: type) -> None:
    assert isinstance(build_optimizer(_stage(optimizer=name), nn.Linear(2, 2)), cls)


def test_frozen_parameters_are_not_optimised() -> None:
    module = nn.Linear(2, 2)
    module.weight.requires_grad_(False)
    optimizer = build_optimizer(_stage(), module)
    assert sum(len(g["params"]) for g in optimizer.param_groups) == 1
