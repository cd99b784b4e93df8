"""The open training core through the real engine: components that need injected values get them,
a distill stage learns from several teachers, a stage sets its own precision and objective."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from erckit.errors import RecipeError

from .conftest import CTX, TEXT, read_metrics, run_training, stage

TEXT2 = TEXT.replace("encoders.text", "encoders.text2")




def test_a_distiller_and_an_objective_needing_num_classes_get_it(make_recipe, registered, tmp_path: Path):
    """Before one resolver, such a distiller passed `recipe check` and died later with a TypeError."""
    seen: dict[str, int] = {}

    def sized_kl(num_classes: int, temperature: float = 2.0) -> Any:
        from erckit.nn.distillers import KLDistill

        seen["distiller"] = num_classes
        return KLDistill(temperature)

    def sized_ce(num_classes: int, labels: list[str], class_counts: list[int]) -> Any:
        from erckit.nn.losses import CrossEntropy

        seen["objective"] = num_classes
        assert len(labels) == len(class_counts) == num_classes and sum(class_counts) > 0
        return CrossEntropy()

    registered("distillers", "testcore.SizedKL.v1", sized_kl)
    registered("objectives", "testcore.SizedCE.v1", sized_ce)
    stages = (
        stage("supervised", name="teacher", encoders=["text"], epochs=1, lr=0.01)
        + stage("distill", name="students", teacher="text", students=["ctx"], epochs=1, lr=0.01,
                objective="testcore.SizedCE.v1", losses=[{"factory": "testcore.SizedKL.v1", "weight": 0.5}])
    )
    recipe = make_recipe(stages, fuser=False)
    run_training(recipe, tmp_path / "run")
    assert seen == {"distiller": 4, "objective": 4}


def test_recipe_check_reports_a_factory_argument_nobody_can_give(make_recipe, registered):
    registered("distillers", "testcore.NeedsDims.v1", lambda input_dims: None)  # injected into fusers only
    stages = stage("supervised", name="teacher", encoders=["text"]) + stage(
        "distill", name="students", teacher="text", students=["ctx"], losses=[{"factory": "testcore.NeedsDims.v1"}])
    with pytest.raises(RecipeError) as error:
        make_recipe(stages, fuser=False)
    assert error.value.problems == [
        "stages -> students -> losses -> 0 -> input_dims: missing required argument of testcore.NeedsDims.v1"
    ]


def test_a_distill_stage_with_two_teachers(make_recipe, tmp_path: Path):
    stages = (
        stage("supervised", name="teachers", encoders=["text", "text2"], epochs=1, lr=0.01)
        + stage("distill", name="students", teachers=["text", "text2"], students=["ctx"], epochs=2, lr=0.01,
                losses=[{"factory": "erckit.KLDistill.v1", "teacher": "text"},
                        {"factory": "erckit.KLDistill.v1", "teacher": "text2", "weight": 0.5}])
    )
    recipe = make_recipe(stages, encoders=TEXT + TEXT2 + CTX, fuser=False)
    run_training(recipe, tmp_path / "run")
    rows = [r for r in read_metrics(tmp_path / "run") if r["stage"] == "students"]
    assert len(rows) == 2 and all(r["train/loss"] > 0 for r in rows)


def test_several_teachers_need_each_loss_to_name_its_teacher(make_recipe):
    stages = stage("supervised", name="t", encoders=["text", "text2"]) + stage(
        "distill", name="s", teachers=["text", "text2"], students=["ctx"], losses=[{"factory": "erckit.KLDistill.v1"}])
    with pytest.raises(RecipeError) as error:
        make_recipe(stages, encoders=TEXT + TEXT2 + CTX, fuser=False)
    assert error.value.problems[0].startswith("stages -> s -> losses -> 0 -> teacher: the stage has several teachers")


def test_a_stage_runs_in_its_own_precision(make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from erckit.train import loop

    used: list[str] = []
    original = loop.StageLoop.train_epoch

    def spy(self, *args: Any, **kwargs: Any):
        used.append(self.runtime.precision)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(loop.StageLoop, "train_epoch", spy)
    stages = (stage("supervised", name="a", encoders=["text"], precision="bf16", lr=0.01)
              + stage("supervised", name="b", encoders=["ctx"], lr=0.01))
    run_training(make_recipe(stages, fuser=False), tmp_path / "run")
    assert used == ["bf16", "fp32"]


def test_fp16_for_a_stage_on_cpu_is_refused_before_anything_runs(make_recipe, tmp_path: Path):
    from erckit.errors import UsageError

    recipe = make_recipe(stage("supervised", name="a", encoders=["text"], precision="fp16"), fuser=False)
    with pytest.raises(UsageError, match="stage 'a': precision fp16 needs a CUDA device"):
        run_training(recipe, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_focal_loss_trains_by_name(make_recipe, tmp_path: Path):
    recipe = make_recipe(stage("supervised", name="a", encoders=["text"], lr=0.01, epochs=2,
                               objective={"factory": "erckit.FocalLoss.v1", "gamma": 2.0, "alpha": "balanced"}),
                         fuser=False)
    run_training(recipe, tmp_path / "run")
    losses = [r["train/loss"] for r in read_metrics(tmp_path / "run") if r["stage"] == "a"]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
