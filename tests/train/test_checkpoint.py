"""Checkpoints: resume after an interruption gives the uninterrupted run's results; torn checkpoints fail clearly."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import erckit
from erckit.cli.main import main
from erckit.errors import CheckpointError
from erckit.plugins import get_plugin_manager

from .conftest import CTX, TEXT, read_metrics, run_training, stage, text_stages, write_recipe

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


class ProjectedKD(torch.nn.Module):
    """A distiller with its own trainable projection and dropout: the stage trains tensors that
    the model does not hold, and building it draws from the RNG."""

    def __init__(self, dim: int):
        super().__init__()
        self.projection = torch.nn.Linear(dim, dim)
        self.dropout = torch.nn.Dropout(0.5)

    def forward(self, student: Any, teacher: Any) -> torch.Tensor:
        return torch.nn.functional.mse_loss(self.projection(self.dropout(student.embedding)), teacher.embedding)


def projected_kd(dim: int = 16) -> torch.nn.Module:
    return ProjectedKD(dim)


@pytest.fixture
def projected_distiller() -> Any:
    import catalogue

    from erckit import registry

    name = "test.ProjectedKD.v1"
    registry.distillers.register(name, func=projected_kd)
    yield name
    catalogue.REGISTRY.pop((*registry.distillers.namespace, name), None)
    registry.distillers.origins.pop(name, None)


def test_resume_restores_a_distillers_own_parameters_and_the_rng_it_drew(
    make_recipe, projected_distiller: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The projection is not part of the model: it must come back from the checkpoint, and the RNG
    its re-initialisation draws on resume must not shift the dropout masks of the next epoch."""
    common = {"epochs": 3, "lr": 0.01, "batch_size": 8}
    stages = (
        stage("supervised", name="teacher", encoders=["text"], **common)
        + stage("distill", name="students", teacher="text", students=["ctx"], losses=[{"factory": projected_distiller}], **common)
    )
    recipe = make_recipe(stages, fuser=False)
    uninterrupted = run_training(recipe, tmp_path / "full")
    with monkeypatch.context() as patch:
        _interrupt_after(patch, "students", 1)
        with pytest.raises(KeyboardInterrupt):
            run_training(recipe, tmp_path / "run")
    resumed = run_training(recipe, tmp_path / "run", resume=True)
    assert _stable(resumed.history) == _stable(uninterrupted.history)


def _resume_cli(recipe: Path, out: Path, capsys: pytest.CaptureFixture, *overrides: str) -> tuple[int, str]:
    capsys.readouterr()
    sets = [item for override in overrides for item in ("--set", override)]
    code = main(["train", str(recipe), "-o", str(out), "--device", "cpu", "--no-progress", "--resume", *sets])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    return code, errors[0]


@pytest.fixture(scope="module")
def interrupted(recipe_path: Path) -> Path:
    """A run stopped after students epoch 1: its latest checkpoint is inside a stage."""
    out = recipe_path.parent / "interrupted"
    with pytest.MonkeyPatch.context() as patch:
        _interrupt_after(patch, "students", 1)
        assert main(["train", str(recipe_path), "-o", str(out), "--device", "cpu", "--no-progress"]) == 130
    return out


def _safetensors(**tensors: torch.Tensor) -> bytes:
    from safetensors.torch import save

    return save(tensors)


def _pickled(value: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


GARBAGE = {
    "python_rng.json: not JSON": ("python_rng.json", b"\x00garbage"),
    "python_rng.json: not UTF-8": ("python_rng.json", b"\xff\xfe\xfa"),
    "python_rng.json: a list": ("python_rng.json", b"[1, 2, 3]"),
    "python_rng.json: a short state": ("python_rng.json", b'{"version": 3, "internal": [1, 2], "gauss": null}'),
    "python_rng.json: a bad numpy state": (
        "python_rng.json", b'{"version": 3, "internal": [], "gauss": null, "numpy": {"bit_generator": "MT19937"}}'
    ),
    "state.json: a wrong type": ("state.json", b'{"stage_index": "one"}'),
    "state.json: a list": ("state.json", b"[]"),
    "state.json: an unknown field": ("state.json", b'{"epochs_done": 1}'),
    "rng.safetensors: no torch state": ("rng.safetensors", _safetensors(cpu=torch.zeros(2))),
    "rng.safetensors: a wrong-sized state": ("rng.safetensors", _safetensors(torch=torch.zeros(3, dtype=torch.uint8))),
    "optimizer.pt: a list": ("optimizer.pt", _pickled([1, 2])),
    "best.safetensors: garbage": ("best.safetensors", b"\x00garbage"),
}


@pytest.mark.parametrize("name,content", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_checkpoint_file_is_one_line_naming_it(
    recipe_path: Path, interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture, name: str, content: bytes
) -> None:
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    latest, previous = out / "checkpoints" / "latest", out / "checkpoints" / "previous"
    (latest / name).write_bytes(content)
    code, error = _resume_cli(recipe_path, out, capsys)
    assert code == 1
    assert f"{latest / name} is corrupt or truncated" in error
    assert f"resume from it with --resume-from {previous}" in error


def test_garbage_in_the_only_checkpoint_says_what_to_do(recipe_path: Path, interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    shutil.rmtree(out / "checkpoints" / "latest")
    (out / "checkpoints" / "previous" / "python_rng.json").write_text("[]")
    code, error = _resume_cli(recipe_path, out, capsys)
    assert code == 1 and "previous/python_rng.json is corrupt or truncated" in error
    assert "--resume-from" in error and "--overwrite" in error


@pytest.mark.parametrize(
    "override,file,change",
    [
        ("model.encoders.text.dim=32", "model.safetensors", "model.encoders.text.dim: 16 -> 32"),
        ('stages.students.name="pupils"', "state.json", 'stages.students.name: "students" -> "pupils"'),
        ('stages.students.losses=[{factory = "test.ProjectedKD.v1"}]', "objective.safetensors", "stages.students.losses"),
    ],
    ids=["encoder size", "stage renamed", "distiller with parameters"],
)
def test_resume_with_a_changed_recipe_says_the_recipe_differs(
    recipe_path: Path, interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
    projected_distiller: str, override: str, file: str, change: str,
) -> None:
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    code, error = _resume_cli(recipe_path, out, capsys, override)
    assert code == 1
    assert "corrupt" not in error
    assert f"cannot resume from {out / 'checkpoints' / 'latest' / file}" in error
    assert "this recipe differs from the run's" in error and change in error
    assert "start a new run" in error


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
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if ".writing-" in p.name]
    assert ckpt.load_checkpoint(latest, model).state.epoch == 1


def test_resume_with_a_change_the_checkpoint_can_hold_warns_and_names_it(
    recipe_path: Path, interrupted: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    capsys.readouterr()
    args = ["train", str(recipe_path), "-o", str(out), "--device", "cpu", "--no-progress", "--resume"]
    assert main([*args, "--set", "stages.fusion.lr=0.02"]) == 0
    assert "warning: resuming with a recipe that differs from the run's recipe.toml: stages.fusion.optimizer.lr: 0.01 -> 0.02" in capsys.readouterr().err
