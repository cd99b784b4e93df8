"""The built-in objectives, optimizers and schedules are registered like any plugin's components and listed."""

from __future__ import annotations

import pytest

from erckit import registry
from erckit.builtin import training
from erckit.cli.main import main

BUILTINS = {
    "objectives": {
        "erckit.CrossEntropy.v1": training.cross_entropy,
        "erckit.WeightedCrossEntropy.v1": training.weighted_cross_entropy,
        "erckit.FocalLoss.v1": training.focal_loss,
    },
    "optimizers": {
        "erckit.AdamW.v1": training.adamw,
        "erckit.Adam.v1": training.adam_optimizer,
        "erckit.SGD.v1": training.sgd_optimizer,
    },
    "schedulers": {
        "erckit.LinearSchedule.v1": training.linear_schedule,
        "erckit.CosineSchedule.v1": training.cosine_schedule,
        "erckit.ConstantSchedule.v1": training.constant_schedule,
    },
}


@pytest.mark.parametrize("kind", list(BUILTINS))
def test_registered_as_builtins(kind: str) -> None:
    for name, factory in BUILTINS[kind].items():
        assert registry.get_registry(kind).get(name) is factory
        origin = registry.get_registry(kind).origins[name]
        assert origin.plugin == "erckit.builtin.training" and origin.package.startswith("erckit")


@pytest.mark.parametrize("kind", list(BUILTINS))
def test_components_lists_them_by_kind(capsys: pytest.CaptureFixture, kind: str) -> None:
    assert main(["components", "--kind", kind]) == 0
    out = capsys.readouterr().out
    for name in BUILTINS[kind]:
        assert name in out
    others = [n for k, names in BUILTINS.items() if k != kind for n in names]
    assert not any(n in out for n in others)


def test_injected_arguments_are_the_registries_own() -> None:
    """Every argument a recipe cannot set is one erckit injects into that kind of factory."""
    import inspect

    for kind, factories in BUILTINS.items():
        injected = registry.get_registry(kind).injected
        for name, factory in factories.items():
            required = [n for n, p in inspect.signature(factory).parameters.items() if p.default is inspect.Parameter.empty]
            assert set(required) <= injected, (name, required)


def test_one_component_shows_its_arguments(capsys: pytest.CaptureFixture) -> None:
    assert main(["components", "erckit.FocalLoss.v1"]) == 0
    out = capsys.readouterr().out
    assert "erckit.FocalLoss.v1 (objective)" in out and "Lin et al." in out
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]] for line in out.splitlines()
            if line.startswith("│")}
    assert rows["gamma"] == ["float", "2.0"]
    assert rows["label_smoothing"] == ["float", "0.0"]
