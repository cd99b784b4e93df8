"""Optimizers and learning-rate schedules: parameter groups, injected parameters, warm-up and horizon in optimiser steps."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from erckit.builtin.training import (
    adam_optimizer,
    adamw,
    constant_schedule,
    cosine_schedule,
    linear_schedule,
    sgd_optimizer,
)
from erckit.errors import ErckitError
from erckit.recipe import resolve
from erckit.recipe.schema import expand_stage_shorthands
from erckit.train import optim
from erckit.train.optim import decay_groups, schedule_horizon


def named(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return list(module.named_parameters())


def lrs(scheduler_factory, steps: int, lr: float = 1.0, **arguments) -> list[float]:
    """The learning rate of optimiser step k, k = 0..steps-1, for a schedule over a ``steps``-step run."""
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=lr)
    scheduler = scheduler_factory(optimizer=optimizer, run_steps=steps, **arguments)
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


# ------------------------------------------------------------------------ parameter groups


def test_no_weight_decay_on_biases_and_norm_weights() -> None:
    module = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    decay, no_decay = decay_groups(named(module), weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p is module[0].weight for p in decay["params"]] == [True]
    assert {id(p) for p in no_decay["params"]} == {id(module[0].bias), id(module[1].weight), id(module[1].bias)}


@pytest.mark.parametrize("factory", [adamw, adam_optimizer])
def test_decay_all_decays_biases_and_norms_as_torch_adamw_over_all_parameters(factory) -> None:
    module = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    optimizer = factory(params=named(module), lr=0.1, weight_decay=0.3, decay_all=True)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.3, 0.3]
    # the same steps as torch's optimiser over model.parameters() with that weight decay
    twin = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    twin.load_state_dict(module.state_dict())
    kind = torch.optim.AdamW if factory is adamw else torch.optim.Adam
    reference = kind(twin.parameters(), lr=0.1, weight_decay=0.3)
    for _ in range(3):
        for model, opt in ((module, optimizer), (twin, reference)):
            opt.zero_grad()
            model(torch.arange(4.0).view(1, 4)).pow(2).sum().backward()
            opt.step()
    for a, b in zip(module.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ErckitError, match="decay_all must be true or false"):
        factory(params=named(module), decay_all="yes")


def test_frozen_parameters_are_left_out() -> None:
    module = nn.Linear(2, 2)
    module.weight.requires_grad_(False)
    decay, no_decay = decay_groups(named(module), 0.01)
    assert decay["params"] == [] and [p is module.bias for p in no_decay["params"]] == [True]


# ------------------------------------------------------------------------------ optimizers


@pytest.mark.parametrize("factory, kind", [(adamw, torch.optim.AdamW), (adam_optimizer, torch.optim.Adam), (sgd_optimizer, torch.optim.SGD)])
def test_optimizer_over_the_injected_parameters_only(factory, kind: type) -> None:
    """The optimiser updates the (name, parameter) pairs it was given, nothing else."""
    trained, untouched = nn.Linear(3, 2), nn.Linear(3, 2)
    before = untouched.weight.detach().clone()
    optimizer = factory(params=named(trained), lr=0.1, weight_decay=0.5)
    assert isinstance(optimizer, kind)
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in trained.parameters()}
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.5, 0.0]
    start = trained.weight.detach().clone()
    (trained(torch.ones(1, 3)).sum() + untouched(torch.ones(1, 3)).sum()).backward()
    optimizer.step()
    assert not torch.equal(trained.weight, start)
    assert torch.equal(untouched.weight, before)


def test_adam_options_reach_the_optimizer() -> None:
    optimizer = adamw(params=named(nn.Linear(2, 2)), lr=3e-4, weight_decay=0.0, betas=[0.8, 0.95], eps=1e-6)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (3e-4, (0.8, 0.95), 1e-6)
    assert group["fused"] is True  # the CPU has fused Adam kernels


def test_sgd_options_reach_the_optimizer() -> None:
    optimizer = sgd_optimizer(params=named(nn.Linear(2, 2)), lr=0.1, momentum=0.5, nesterov=True)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"]) == (0.1, 0.5, True)


def test_a_device_without_fused_kernels_falls_back_to_the_plain_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like torch, the failing attempt has already written fused=True into its groups: they must not be reused."""

    class NoFusedAdamW(torch.optim.AdamW):
        def __init__(self, params, **options):
            super().__init__(params, **options)
            if options.get("fused"):
                raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")

    monkeypatch.setattr(optim.torch.optim, "AdamW", NoFusedAdamW)
    module = nn.Linear(2, 2)
    optimizer = adamw(params=named(module), lr=0.1)
    assert all(not group.get("fused") for group in optimizer.param_groups)
    module(torch.ones(1, 2)).sum().backward()
    optimizer.step()


@pytest.mark.parametrize("build, message", [
    (lambda p: adamw(p, lr=0.0), "lr must be > 0"),
    (lambda p: adamw(p, weight_decay=-0.1), "weight_decay must be >= 0"),
    (lambda p: adamw(p, betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\)"),
    (lambda p: adam_optimizer(p, betas=(0.9,)), "betas must be two numbers"),
    (lambda p: adam_optimizer(p, eps=-1.0), "eps must be >= 0"),
    (lambda p: sgd_optimizer(p, momentum=-0.5), "momentum must be >= 0"),
    (lambda p: sgd_optimizer(p, momentum=0.0, nesterov=True), "nesterov = true needs momentum > 0"),
])
def test_bad_optimizer_arguments_are_erckit_errors(build, message: str) -> None:
    with pytest.raises(ErckitError, match=message):
        build(named(nn.Linear(2, 2)))


# ------------------------------------------------------------------------------- schedules


def test_linear_schedule_by_hand() -> None:
    # transformers' warm-up: factor k / W (0 at the first step), then (H - k) / (H - W); W = 4, H = 10
    expected = [0.0, 0.25, 0.5, 0.75] + [(10 - k) / 6 for k in range(4, 10)]
    assert lrs(linear_schedule, 10, warmup_steps=4) == pytest.approx(expected)


def test_cosine_schedule_by_hand() -> None:
    expected = [0.0, 0.5] + [0.5 * (1 + math.cos(math.pi * (k - 2) / 8)) for k in range(2, 10)]
    assert lrs(cosine_schedule, 10, warmup_steps=2) == pytest.approx(expected)
    # one whole wave: down to 0 half-way through the decay, back up to the peak at its end
    expected = [0.5 * (1 + math.cos(2 * math.pi * k / 10)) for k in range(10)]
    assert lrs(cosine_schedule, 10, num_cycles=1.0) == pytest.approx(expected)


def test_constant_schedule_with_and_without_warmup() -> None:
    # warmup_ratio 0.25 of 20 steps = 5 steps: lr 2 * k / 5, then 2
    assert lrs(constant_schedule, 20, lr=2.0, warmup_ratio=0.25) == pytest.approx([0.0, 0.4, 0.8, 1.2, 1.6] + [2.0] * 15)
    assert lrs(constant_schedule, 6, lr=2.0) == pytest.approx([2.0] * 6)


def test_explicit_horizon_longer_than_the_run() -> None:
    """total_steps 10 over a 5-step run: the schedule stops half-way (lr 0.6), and the warm-up ratio is of 10."""
    assert lrs(linear_schedule, 5, total_steps=10) == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6])
    # ratio 0.2 of the 10-step horizon = 2 warm-up steps, then (10 - k) / 8
    assert lrs(linear_schedule, 5, total_steps=10, warmup_ratio=0.2) == pytest.approx([0.0, 0.5, 1.0, 7 / 8, 6 / 8])


def test_warmup_steps_override_the_ratio_and_are_capped_at_the_horizon() -> None:
    assert schedule_horizon(100, warmup_ratio=0.5, warmup_steps=3, total_steps=None) == (100, 3)
    assert schedule_horizon(10, warmup_ratio=0.0, warmup_steps=50, total_steps=None) == (10, 10)
    assert schedule_horizon(10, warmup_ratio=0.25, warmup_steps=None, total_steps=40) == (40, 10)
    assert lrs(constant_schedule, 6, warmup_ratio=0.5, warmup_steps=2) == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 1.0])


def test_a_horizon_shorter_than_the_run_is_refused() -> None:
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    with pytest.raises(ErckitError, match="total_steps 8 is shorter than the stage's 10 optimiser steps"):
        linear_schedule(optimizer, run_steps=10, total_steps=8)


@pytest.mark.parametrize("factory", [linear_schedule, cosine_schedule, constant_schedule])
def test_schedule_state_round_trips_through_a_checkpoint(factory) -> None:
    """Resuming at step 4 (state saved and read back as checkpoints do) gives the uninterrupted sequence."""
    steps, arguments = 10, {"warmup_steps": 3, "total_steps": 12}
    uninterrupted = lrs(factory, steps, lr=0.5, **arguments)

    module = nn.Linear(2, 2)
    optimizer = adamw(named(module), lr=0.5)
    scheduler = factory(optimizer, run_steps=steps, **arguments)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed_optimizer = adamw(named(module), lr=0.5)
    resumed = factory(resumed_optimizer, run_steps=steps, **arguments)
    resumed_optimizer.load_state_dict(saved["optimizer"])
    resumed.load_state_dict(saved["scheduler"])
    rest = []
    for _ in range(4, steps):
        rest.append(resumed_optimizer.param_groups[0]["lr"])
        resumed_optimizer.step()
        resumed.step()
    assert rest == pytest.approx(uninterrupted[4:])


@pytest.mark.parametrize("arguments, message", [
    ({"warmup_ratio": 1.5}, r"warmup_ratio must be in \[0, 1\]"),
    ({"warmup_steps": -1}, "warmup_steps must be a whole number >= 0"),
    ({"total_steps": 0}, "total_steps must be a whole number >= 1"),
    ({"num_cycles": 0.0}, "num_cycles must be > 0"),
])
def test_bad_schedule_arguments_are_erckit_errors(arguments: dict, message: str) -> None:
    optimizer = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1.0)
    with pytest.raises(ErckitError, match=message):
        cosine_schedule(optimizer, run_steps=10, **arguments)


# ------------------------------------------------- the stage shorthands build the same components


@pytest.mark.parametrize("name, kind", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD)])
def test_stage_shorthands_build_the_registered_optimizer(name: str, kind: type) -> None:
    stage = {"name": "s", "kind": "supervised", "optimizer": name, "lr": 0.2, "weight_decay": 0.3}
    assert expand_stage_shorthands(stage) == []
    table, problems = resolve.check_table("optimizers", stage["optimizer"], "stages -> s -> optimizer")
    assert problems == []
    optimizer = resolve.create("optimizers", table, params=list(nn.Linear(2, 2).named_parameters()))
    assert isinstance(optimizer, kind)
    assert [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [(0.2, 0.3), (0.2, 0.0)]


def test_stage_shorthands_build_the_registered_schedule() -> None:
    stage = {"name": "s", "kind": "supervised", "optimizer": "sgd", "lr": 1.0, "scheduler": "linear", "warmup_steps": 2}
    expand_stage_shorthands(stage)
    optimizer = resolve.create("optimizers", resolve.check_table("optimizers", stage["optimizer"], "o")[0],
                               params=list(nn.Linear(2, 2).named_parameters()))
    scheduler = resolve.create("schedulers", resolve.check_table("schedulers", stage["scheduler"], "s")[0],
                               optimizer=optimizer, run_steps=6)
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.25])
