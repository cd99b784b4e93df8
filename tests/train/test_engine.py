"""The training engine end to end on the small demo: stages, metrics, hooks, caching, options."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

import erckit
from erckit.plugins import get_plugin_manager
from erckit.recipe import load_recipe

from .conftest import AUDIO, CTX, TEXT, read_metrics, run_training, stage, text_stages, write_recipe


class Recorder:
    """A test plugin recording every training event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @erckit.hookimpl
    def on_train_start(self, run: Any) -> None:
        self.events.append(("train_start", run.rank))

    @erckit.hookimpl
    def on_stage_start(self, run: Any, stage: str, kind: str) -> None:
        self.events.append(("stage_start", (stage, kind)))

    @erckit.hookimpl
    def on_epoch_end(self, run: Any, stage: str, epoch: int, metrics: Any) -> None:
        self.events.append(("epoch_end", (stage, epoch, dict(metrics))))

    @erckit.hookimpl
    def on_stage_end(self, run: Any, stage: str, metrics: Any) -> None:
        self.events.append(("stage_end", (stage, dict(metrics))))

    @erckit.hookimpl
    def on_train_end(self, run: Any, metrics: Any) -> None:
        self.events.append(("train_end", dict(metrics)))


class Misses:
    """Counts frozen-output computations (cache misses) by wrapping frozen.make_loader."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from erckit.train import frozen

        self.count = 0
        original = frozen.make_loader

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(frozen, "make_loader", counting)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, demo_root: Path):
    """One supervised -> distill -> fuse run (2 epochs each), with a recording plugin."""
    tmp = tmp_path_factory.mktemp("full")
    path = write_recipe(tmp / "recipe.toml", demo_root, tmp / "cache", TEXT + CTX, text_stages(epochs=2))
    recorder = Recorder()
    manager = get_plugin_manager()
    manager.register(recorder, name="test-recorder")
    monkeypatch = pytest.MonkeyPatch()
    misses = Misses(monkeypatch)
    try:
        result = run_training(load_recipe(path), tmp / "run")
    finally:
        manager.unregister(recorder)
        monkeypatch.undo()
    return {"tmp": tmp, "recipe": path, "result": result, "events": recorder.events, "misses": misses.count}


def test_run_directory_layout(full_run: dict) -> None:
    run = full_run["result"].run_dir
    for name in ("metrics.jsonl", "recipe.toml", "test_report.json", "model/config.json", "model/model.safetensors"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "latest" / "state.json").is_file()


def test_metrics_rows(full_run: dict) -> None:
    rows = read_metrics(full_run["result"].run_dir)
    assert [(r["stage"], r.get("epoch")) for r in rows] == [
        ("teacher", 1), ("teacher", 2), ("students", 1), ("students", 2), ("fusion", 1), ("fusion", 2), ("final", None),
    ]
    for row in rows[:-1]:
        for key in ("train/loss", "dev/weighted_f1", "dev/macro_f1", "dev/accuracy", "dev/selection", "best", "step"):
            assert key in row, key
        assert math.isfinite(row["train/loss"])
    assert set(rows[-1]) >= {"test/weighted_f1", "test/macro_f1", "test/accuracy"}
    assert full_run["result"].test["test/weighted_f1"] == rows[-1]["test/weighted_f1"]
    # 90 train utterances, batch 8, grad_accum 1 -> 12 optimiser steps per epoch, counted per stage
    assert [r["step"] for r in rows[:-1]] == [12, 24] * 3


def test_hooks_fire_in_order(full_run: dict) -> None:
    events = full_run["events"]
    kinds = [e[0] for e in events]
    assert kinds == ["train_start"] + ["stage_start", "epoch_end", "epoch_end", "stage_end"] * 3 + ["train_end"]
    assert [e[1] for e in events if e[0] == "stage_start"] == [
        ("teacher", "erckit.Supervised.v1"), ("students", "erckit.Distill.v1"), ("fusion", "erckit.Fuse.v1")
    ]
    epoch = next(e[1] for e in events if e[0] == "epoch_end")
    assert epoch[:2] == ("teacher", 1) and "dev/weighted_f1" in epoch[2] and "train/loss" in epoch[2]
    assert events[-1][1] == full_run["result"].test


def test_best_epoch_is_selected_on_dev(full_run: dict) -> None:
    rows = [r for r in read_metrics(full_run["result"].run_dir) if r["stage"] != "final"]
    stage_end = {e[1][0]: e[1][1] for e in full_run["events"] if e[0] == "stage_end"}
    for name in ("teacher", "students", "fusion"):
        mine = [r for r in rows if r["stage"] == name]
        best = max(r["dev/selection"] for r in mine)
        first_best = next(r for r in mine if r["dev/selection"] == best)  # ties keep the earlier epoch
        assert stage_end[name]["epoch"] == first_best["epoch"]
        assert [r["best"] for r in mine][0] is True


def test_model_directory_reloads_with_identical_logits(full_run: dict) -> None:
    from erckit.model import ERCModel
    from erckit.train.frozen import compute_outputs
    from erckit.train.runtime import Runtime

    model = ERCModel.from_pretrained(full_run["result"].model_dir)
    again = ERCModel.from_pretrained(full_run["result"].run_dir)  # a run directory resolves to model/
    assert model.use_fuser and model.labels == ["neutral", "joy", "sadness", "anger"]
    from erckit.data.readers import read_jsonl_dataset
    from erckit.data.types import make_samples

    recipe = load_recipe(full_run["recipe"])
    corpus = read_jsonl_dataset(Path(recipe.data.args["root"]), None)
    samples = make_samples(corpus.split("test"), model.labels)
    runtime = Runtime(torch.device("cpu"), "fp32")
    outs = []
    for m in (model, again):
        outputs = {n: compute_outputs(e, samples, runtime, batch_size=16) for n, e in m.encoders.items()}
        every = torch.arange(len(samples))
        with torch.inference_mode():
            outs.append(m.fuse({n: o.rows(every, torch.device("cpu")) for n, o in outputs.items()}))
    assert torch.equal(outs[0], outs[1])
    predicted = outs[0].argmax(-1).tolist()
    gold = [s.label for s in samples]
    from erckit.metrics import classification_report

    report = classification_report(gold, predicted, model.labels)
    assert report.weighted_f1 == pytest.approx(full_run["result"].test["test/weighted_f1"], abs=1e-9)


def test_frozen_outputs_cached_once_and_reused_by_a_second_run(full_run: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    # First run: distill teacher(train) once; fuse: text(dev), ctx(train), ctx(dev) -- text(train) was
    # already cached by the distill stage with the same weights; final test: text, ctx. Two fuse
    # epochs never re-encode.
    assert full_run["misses"] == 6
    misses = Misses(monkeypatch)
    second = run_training(load_recipe(full_run["recipe"]), full_run["tmp"] / "run2")
    assert misses.count == 0  # same seed -> same weights -> every frozen output is a cache hit
    assert second.test == full_run["result"].test
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("seconds", "train/samples_per_s")} for r in rows]
    assert strip(second.history) == strip(full_run["result"].history)


def test_supervised_stage_with_grad_accumulation_and_bf16(make_recipe, tmp_path: Path) -> None:
    recipe = make_recipe(
        stage("supervised", encoders=["text"], epochs=2, batch_size=4, grad_accum=3, lr=0.01, warmup_steps=2),
        fuser=False,
    )
    result = run_training(recipe, tmp_path / "run", precision="bf16")
    rows = [r for r in result.history if r["stage"] != "final"]
    # 90 samples / 4 = 23 micro-batches -> ceil(23 / 3) = 8 optimiser steps per epoch
    assert [r["step"] for r in rows] == [8, 16]
    assert all(math.isfinite(r["train/loss"]) for r in rows)
    assert "test/weighted_f1" in result.test


def test_early_stopping_on_dev_patience(make_recipe, tmp_path: Path) -> None:
    # lr so small nothing changes: dev never improves after epoch 1, so patience 2 stops after epoch 3.
    recipe = make_recipe(stage("supervised", encoders=["text"], epochs=8, lr=1e-12, patience=2), fuser=False)
    result = run_training(recipe, tmp_path / "run")
    rows = [r for r in result.history if r["stage"] != "final"]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [r["best"] for r in rows] == [True, False, False]


def test_class_weights_are_inverse_frequency(make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``class_weights = true`` builds erckit.WeightedCrossEntropy.v1 with the train split's counts injected."""
    from erckit.train import modules

    seen: list[Any] = []

    class Spy(modules.SupervisedModule):
        def __init__(self, encoders, objective):
            seen.append(objective)
            super().__init__(encoders, objective)

    monkeypatch.setattr(modules, "SupervisedModule", Spy)
    recipe = make_recipe(stage("supervised", encoders=["text"], epochs=1, class_weights=True), fuser=False)
    assert recipe.stages[0].objective.factory == "erckit.WeightedCrossEntropy.v1"
    run_training(recipe, tmp_path / "run")
    weight = seen[0].weight
    assert weight is not None and weight.shape == (4,)
    from erckit.data.readers import read_jsonl_dataset
    from erckit.data.types import make_samples

    corpus = read_jsonl_dataset(Path(recipe.data.args["root"]), None)
    labels = [s.label for s in make_samples(corpus.split("train"), corpus.labels)]
    counts = torch.bincount(torch.tensor(labels), minlength=4).float()
    assert torch.allclose(weight, counts.sum() / (4 * counts))
    assert float((weight * counts).sum()) == pytest.approx(len(labels))  # rare classes up, mean weight 1
    assert weight.argmax() == counts.argmin()


def test_clipping_after_unscaling_under_fp16_amp(make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fp16 is refused on CPU for users; here the runtime is forced to fp16 to check the AMP step order."""
    from erckit.train import engine
    from erckit.train.runtime import Runtime

    monkeypatch.setattr(engine, "setup_runtime", lambda *a, **k: Runtime(torch.device("cpu"), "fp16"))
    log: list[tuple[str, float]] = []
    original_unscale = torch.amp.GradScaler.unscale_
    original_clip = torch.nn.utils.clip_grad_norm_

    def unscale(self, optimizer):
        log.append(("unscale", self.get_scale()))
        return original_unscale(self, optimizer)

    def clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        norm = torch.linalg.vector_norm(torch.stack([p.grad.float().norm() for p in parameters if p.grad is not None]))
        log.append(("clip", float(norm)))
        return original_clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.amp.GradScaler, "unscale_", unscale)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    recipe = make_recipe(stage("supervised", encoders=["text"], epochs=1, max_grad_norm=0.5), fuser=False)
    run_training(recipe, tmp_path / "run")
    assert log and [k for k, _ in log] == ["unscale", "clip"] * (len(log) // 2)
    scale = log[0][1]
    assert scale >= 2**10
    # gradient norms seen by the clipper are the true ones (a CE gradient of a tiny model), not x scale
    assert all(v < 100 for k, v in log if k == "clip")


def test_fp16_on_cpu_is_refused() -> None:
    from erckit.errors import UsageError
    from erckit.train.runtime import setup_runtime

    with pytest.raises(UsageError, match="fp16.*CUDA"):
        setup_runtime("cpu", "fp16")


def test_distill_and_fuse_with_an_audio_student(make_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Media path: a LogMelAudio student on decoded demo audio; the teacher is computed once."""
    stages = (
        stage("supervised", name="teacher", encoders=["text"], epochs=1, lr=0.01)
        + stage("distill", name="students", teacher="text", students=["audio"], epochs=2, lr=0.003,
                losses=[{"factory": "erckit.KLDistill.v1", "temperature": 2.0}])
        + stage("fuse", name="fusion", epochs=2, lr=0.01)
    )
    misses = Misses(monkeypatch)
    result = run_training(make_recipe(stages, encoders=TEXT + AUDIO), tmp_path / "run")
    # teacher(train) + fuse text(dev), audio(train), audio(dev) + test text, audio
    assert misses.count == 6
    rows = [r for r in result.history if r["stage"] != "final"]
    assert [(r["stage"], r["epoch"]) for r in rows] == [("teacher", 1), ("students", 1), ("students", 2), ("fusion", 1), ("fusion", 2)]
    assert all(math.isfinite(r["train/loss"]) for r in rows)
