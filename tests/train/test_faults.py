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
    from erckit.train import loggers

    def full(path: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(loggers, "open", full, raising=False)
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


# ------------------------------------------------ a full disk while saving (issue 14 item 8)
# A real full disk cannot be made portably; the writers are made to fail exactly as they do on
# ENOSPC (safetensors: SafetensorError "... (os error 28)"; torch.save to a file: RuntimeError
# raised while handling the file's OSError), measured on a 64 KiB tmpfs.


def _safetensors_full(*args: Any, **kwargs: Any) -> None:
    from safetensors import SafetensorError

    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def _torch_full(obj: Any, handle: Any, *args: Any, **kwargs: Any) -> None:
    handle.write(b"PK\x03\x04 half a zip")
    try:
        raise OSError(errno.ENOSPC, "No space left on device")
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".writing-" in p.name]


@pytest.mark.parametrize("writer", ["safetensors", "torch"])
def test_full_disk_while_checkpointing_is_one_line_and_leaves_no_staging(
    make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    import safetensors.torch
    import torch

    from erckit.errors import CheckpointError

    if writer == "safetensors":
        monkeypatch.setattr(safetensors.torch, "save_file", _safetensors_full)
    else:
        monkeypatch.setattr(torch, "save", _torch_full)
    out = tmp_path / "run"
    with pytest.raises(CheckpointError) as info:
        run_training(make_recipe(stage("supervised", encoders=["text"]), fuser=False), out)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"cannot write checkpoint under {out / 'checkpoints'}: No space left on device")
    assert _leftovers(out) == [] and not (out / "checkpoints" / "latest").exists()


def test_full_disk_while_saving_a_model_is_one_line_and_leaves_no_staging(
    make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    from erckit.errors import WriteError
    from erckit.model import ERCModel

    result = run_training(make_recipe(stage("supervised", encoders=["text"]), fuser=False), tmp_path / "run")
    model = ERCModel.from_pretrained(result.model_dir)
    target = tmp_path / "exported" / "model"
    target.parent.mkdir()
    monkeypatch.setattr(safetensors.torch, "save_file", _safetensors_full)
    with pytest.raises(WriteError) as info:
        model.save_pretrained(target)
    assert str(info.value) == f"cannot write {target / 'model.safetensors'}: No space left on device"
    assert list(target.parent.iterdir()) == []  # no staging folder, no half model
    with pytest.raises(WriteError):
        model.save_pretrained(result.model_dir)  # replacing: the old model stays as it was
    assert ERCModel.from_pretrained(result.model_dir) is not None
    assert sorted(p.name for p in result.run_dir.iterdir() if p.name.startswith(".")) == [".erckit-run"]


def test_stale_staging_folders_are_removed_by_the_next_checkpoint(
    make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from erckit.train import engine

    recipe = make_recipe(stage("supervised", encoders=["text"], epochs=2), fuser=False)
    out = tmp_path / "run"
    original = engine.Trainer.save_checkpoint

    def stop_after_first(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(engine.Trainer, "save_checkpoint", stop_after_first)
        with pytest.raises(KeyboardInterrupt):
            run_training(recipe, out)
    # what processes killed while writing leave behind (this erckit's names and the old ones)
    for stale in (out / "checkpoints" / ".latest.writing-k1l2", out / "checkpoints" / ".writing-a8x3", out / ".model.writing-q9"):
        stale.mkdir()
        (stale / "model.safetensors").write_bytes(b"half")
    run_training(recipe, out, resume=True)
    assert _leftovers(out) == []
    assert (out / "checkpoints" / "latest" / "state.json").is_file() and (out / "model" / "config.json").is_file()


def test_cache_dir_that_is_a_file_is_reported_before_training(make_recipe, tmp_path: Path) -> None:
    from erckit.errors import DataError

    from .conftest import text_stages

    cache = tmp_path / "cache"
    cache.write_text("not a directory")
    out = tmp_path / "run"
    with pytest.raises(DataError, match=f"cache directory {cache} cannot be used: .*a file, not a directory; set data.cache_dir"):
        run_training(make_recipe(text_stages(epochs=1)), out)
    assert not (out / "metrics.jsonl").exists()  # before the first epoch, not after all of them
