"""Checkpoints: resume after an interruption gives the uninterrupted run's results; torn checkpoints fail clearly."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import erckit
from erckit.cli.main import main
from erckit.errors import CheckpointError
from erckit.plugins import get_plugin_manager

from .conftest import CTX, TEXT, read_metrics, run_training, text_stages, write_recipe

VOLATILE = ("seconds", "train/samples_per_s")


def _stable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


@pytest.fixture(scope="module")
def recipe_path(tmp_path_factory: pytest.TempPathFactory, demo_root: Path) -> Path:
    tmp = tmp_path_factory.mktemp("ckpt")
    return write_recipe(tmp / "recipe.toml", demo_root, tmp / "cache", TEXT + CTX, text_stages(epochs=3))


@pytest.fixture(scope="module")
def uninterrupted(recipe_path: Path) -> Path:
    out = recipe_path.parent / "full"
    assert main(["train", str(recipe_path), "-o", str(out), "--device", "cpu", "--no-progress"]) == 0
    return out


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, stage: str, epoch: int) -> None:
    """KeyboardInterrupt right after ``stage`` epoch ``epoch`` has been checkpointed."""
    from erckit.train import engine

    original = engine.Trainer.save_checkpoint

    def save(self, state, best, optim_state, *rest):
        original(self, state, best, optim_state, *rest)
        name = self.recipe.stages[state.stage_index].name if state.stage_index < len(self.recipe.stages) else None
        if name == stage and state.epoch == epoch and optim_state is not None:
            raise KeyboardInterrupt

    monkeypatch.setattr(engine.Trainer, "save_checkpoint", save)


def test_crash_between_metrics_row_and_checkpoint_leaves_no_duplicate_rows(
    recipe_path: Path, uninterrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill after an epoch's metrics row but before its checkpoint: resume rewrites that epoch once."""
    from erckit.train import engine

    out = tmp_path / "run"
    args = ["train", str(recipe_path), "-o", str(out), "--device", "cpu", "--no-progress"]
    original = engine.Trainer.save_checkpoint

    def save(self, state, best, optim_state, *rest):
        name = self.recipe.stages[state.stage_index].name if state.stage_index < len(self.recipe.stages) else None
        if name == "students" and state.epoch == 1 and optim_state is not None:
            raise KeyboardInterrupt  # the row for students epoch 1 is written, its checkpoint is not
        original(self, state, best, optim_state, *rest)

    with monkeypatch.context() as patch:
        patch.setattr(engine.Trainer, "save_checkpoint", save)
        assert main(args) == 130
    assert main([*args, "--resume"]) == 0
    assert _stable(read_metrics(out)) == _stable(read_metrics(uninterrupted))


@pytest.mark.parametrize("stage,epoch", [("students", 1), ("fusion", 2)])
def test_resume_matches_uninterrupted_run(
    recipe_path: Path, uninterrupted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: str, epoch: int
) -> None:
    out = tmp_path / "run"
    args = ["train", str(recipe_path), "-o", str(out), "--device", "cpu", "--no-progress"]
    with monkeypatch.context() as patch:
        _interrupt_after(patch, stage, epoch)
        assert main(args) == 130  # "interrupted"
    assert not (out / "model").exists()
    starts: list[str] = []

    class Starts:
        @erckit.hookimpl
        def on_stage_start(self, run: Any, stage: str, kind: str) -> None:
            starts.append(stage)

    manager = get_plugin_manager()
    manager.register(Starts(), name="test-starts")
    try:
        assert main([*args, "--resume"]) == 0
    finally:
        manager.unregister(name="test-starts")
    order = ["teacher", "students", "fusion"]
    assert starts == order[order.index(stage):]  # completed stages are not re-run
    assert _stable(read_metrics(out)) == _stable(read_metrics(uninterrupted))
    assert (out / "model" / "model.safetensors").read_bytes() == (uninterrupted / "model" / "model.safetensors").read_bytes()


def test_corrupt_latest_checkpoint_is_named_and_previous_is_usable(recipe_path: Path, uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    latest, previous = out / "checkpoints" / "latest", out / "checkpoints" / "previous"
    weights = latest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    from erckit.recipe import load_recipe

    with pytest.raises(CheckpointError) as info:
        run_training(load_recipe(recipe_path), out, resume=True)
    message = str(info.value)
    assert str(latest) in message and "corrupt or truncated" in message
    assert "--resume-from" in message and str(previous) in message
    result = run_training(load_recipe(recipe_path), out, resume_from=previous)  # previous is intact
    assert result.test == run_training(load_recipe(recipe_path), tmp_path / "fresh").test


@pytest.mark.parametrize("name", ["state.json", "optimizer.pt", "rng.safetensors"])
def test_missing_or_garbage_checkpoint_file(recipe_path: Path, uninterrupted: Path, tmp_path: Path, name: str) -> None:
    from erckit.recipe import load_recipe

    out = tmp_path / "run"
    shutil.copytree(uninterrupted, out)
    target = out / "checkpoints" / "latest" / name
    target.unlink()
    with pytest.raises(CheckpointError, match=f"incomplete: {name} is missing"):
        run_training(load_recipe(recipe_path), out, resume=True)
    target.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        run_training(load_recipe(recipe_path), out, resume=True)


def test_resume_without_checkpoint_is_refused(recipe_path: Path, tmp_path: Path) -> None:
    from erckit.errors import ErckitError
    from erckit.recipe import load_recipe

    with pytest.raises(ErckitError, match="no checkpoint"):
        run_training(load_recipe(recipe_path), tmp_path / "empty", resume=True)


def test_failed_checkpoint_write_keeps_the_previous_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import torch

    from erckit.train import checkpoint as ckpt

    model = torch.nn.Linear(2, 2)
    first = ckpt.save_checkpoint(tmp_path, ckpt.TrainState(epoch=1), model, None, {})
    before = {p.name: p.read_bytes() for p in first.iterdir()}

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint is left as it was"):
        ckpt.save_checkpoint(tmp_path, ckpt.TrainState(epoch=2), model, None, {})
    latest = ckpt.find_checkpoint(tmp_path)
    assert latest == first and {p.name: p.read_bytes() for p in latest.iterdir()} == before
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".writing-")]
    assert ckpt.load_checkpoint(latest, model).state.epoch == 1
