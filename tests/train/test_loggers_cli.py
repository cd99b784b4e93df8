"""`erckit train --logger tensorboard --logger mlflow`: a real run, read back by the libraries' own readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from erckit.cli.main import main

from .conftest import stage


def test_train_with_tensorboard_and_mlflow_from_the_command_line(make_recipe, tmp_path: Path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("sqlalchemy")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow_tracking = pytest.importorskip("mlflow.tracking")
    from tensorboard.backend.event_processing import event_accumulator

    make_recipe(stage("supervised", name="teacher", encoders=["text"], epochs=2, lr=0.01), fuser=False)
    run = tmp_path / "run"
    args = ["train", str(tmp_path / "recipe.toml"), "-o", str(run), "--device", "cpu", "--no-progress",
            "--logger", "tensorboard", "--logger", "mlflow"]
    assert main(args) == 0

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]  # the default stays
    assert [r["stage"] for r in rows] == ["teacher", "teacher", "final"]

    events = event_accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={event_accumulator.SCALARS: 0})
    events.Reload()
    losses = [e.value for e in events.Scalars("teacher/train/loss")]
    assert losses == pytest.approx([r["train/loss"] for r in rows[:2]])

    client = mlflow_tracking.MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow' / 'mlflow.db'}")
    (found,) = client.search_runs([client.get_experiment_by_name("erckit").experiment_id])
    assert found.info.status == "FINISHED"
    history = sorted(client.get_metric_history(found.info.run_id, "teacher/dev/weighted_f1"), key=lambda m: m.step)
    assert [m.value for m in history] == pytest.approx([r["dev/weighted_f1"] for r in rows[:2]])
    assert found.data.params["stages.0.optimizer.factory"] == "erckit.AdamW.v1"
    artifacts = {a.path for a in client.list_artifacts(found.info.run_id, "model")}
    assert "model/config.json" in artifacts and "model/model.safetensors" in artifacts
