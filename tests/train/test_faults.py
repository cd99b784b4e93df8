"""Faults: each gives a clear, named error."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from erckit.errors import ErckitError, RecipeError, TrainingError

from .conftest import AUDIO, TEXT, run_training, stage


def test_stage_references_a_modality_the_model_lacks(make_recipe) -> None:
    with pytest.raises(RecipeError) as info:
        make_recipe(stage("supervised", encoders=["visual"]) + stage("distill", teacher="text", students=["audio"]), encoders=TEXT, fuser=False)
    message = str(info.value)
    assert "no encoder 'visual'" in message and "no encoder 'audio'" in message and "have: text" in message


def test_fuse_before_any_encoder_is_trained(make_recipe) -> None:
    with pytest.raises(RecipeError, match="no earlier stage trained.*untrained_encoders_reason"):
        make_recipe(stage("fuse", epochs=1), encoders=TEXT + AUDIO)
    recipe = make_recipe(stage("fuse", epochs=1, untrained_encoders_reason="pretrained encoders"), encoders=TEXT + AUDIO)
    assert recipe.stages[0].untrained_encoders_reason == "pretrained encoders"


def test_existing_output_directory_without_resume(make_recipe, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(ErckitError, match="already exists and was not made by erckit .*holds metrics.jsonl"):
        run_training(make_recipe(stage("supervised", encoders=["text"]), fuser=False), out)
    assert [p.name for p in out.iterdir()] == ["metrics.jsonl"]  # nothing touched, nothing added


@pytest.mark.parametrize("code,text", [(errno.ENOSPC, "No space left on device"), (errno.EACCES, "Permission denied")])
def test_run_directory_not_writable(make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, text: str) -> None:
    recipe = make_recipe(stage("supervised", encoders=["text"]), fuser=False)
    import os

    original = os.open

    def open_(path: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(path).name == ".erckit-run":  # the first file a run writes
            raise OSError(code, text, str(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(ErckitError, match=f"cannot write to run directory .*run: {text}"):
        run_training(recipe, tmp_path / "run")


def test_disk_full_while_writing_metrics(make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from erckit.train import engine

    def full(path: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(engine, "open", full, raising=False)
    with pytest.raises(ErckitError, match=r"cannot write .*metrics\.jsonl: No space left on device"):
        run_training(make_recipe(stage("supervised", encoders=["text"]), fuser=False), tmp_path / "run")


def test_disk_full_while_checkpointing(make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from erckit.errors import CheckpointError

    def full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match="cannot write checkpoint under .*checkpoints: No space left on device"):
        run_training(make_recipe(stage("supervised", encoders=["text"]), fuser=False), tmp_path / "run")


def test_nan_loss_names_step_stage_and_samples(make_recipe, tmp_path: Path) -> None:
    recipe = make_recipe(
        stage("supervised", name="teacher", encoders=["text"], epochs=3, lr=1e30, optimizer="sgd"),
        fuser=False,
    )
    with pytest.raises(TrainingError) as info:
        run_training(recipe, tmp_path / "run")
    message = str(info.value)
    assert "stage 'teacher'" in message and "step " in message and "batch " in message
    assert "samples train" in message  # sample ids such as train003/2
    assert any(word in message for word in ("nan", "inf"))


def test_unlabelled_training_utterance_is_named(tmp_path: Path) -> None:
    import json

    from erckit.errors import DataError
    from erckit.recipe import load_recipe

    from .conftest import write_recipe

    data = tmp_path / "data"
    data.mkdir()
    good = {"id": "d1", "utterances": [{"speaker": "A", "text": "hi", "label": "joy"}, {"speaker": "B", "text": "hey", "label": "anger"}]}
    unlabelled = {"id": "d2", "utterances": [{"speaker": "A", "text": "so?", "label": "joy"}, {"speaker": "B", "text": "well"}]}
    (data / "train.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(unlabelled) + "\n")
    (data / "dev.jsonl").write_text(json.dumps(good) + "\n")
    path = write_recipe(tmp_path / "r.toml", data, tmp_path / "cache", TEXT, stage("supervised", encoders=["text"]), fuser=False)
    with pytest.raises(DataError, match=r"dialogue 'd2' utterance 1: no label"):
        run_training(load_recipe(path), tmp_path / "run")
