"""Training loggers, driven through start/log/finish as the engine drives them, read back with each library's own reader."""

from __future__ import annotations

import inspect
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from erckit import registry
from erckit.builtin.loggers import jsonl_logger, mlflow_logger, tensorboard_logger
from erckit.cli.main import main
from erckit.errors import ErckitError
from erckit.train import RunInfo
from erckit.train.loggers import Logger, flatten_params

PARAMS: dict[str, Any] = {
    "data": {"dataset": "erckit.Demo.v1", "labels": ["neutral", "joy"], "args": {"root": "demo"}},
    "model": {"encoders": {"text": {"factory": "example.BagOfWords.v1", "dim": 16}}, "fuser": None},
    "stages": [{"name": "teacher", "kind": "supervised", "lr": 0.001}, {"name": "fuse", "kind": "fuse", "epochs": 1}],
}

TEACHER_1 = {"stage": "teacher", "epoch": 1, "step": 4, "train/loss": 1.5, "train/samples_per_s": 30.0,
             "dev/weighted_f1": 0.25, "dev/selection": 0.25, "best": True, "seconds": 3.0}
TEACHER_2 = {"stage": "teacher", "epoch": 2, "step": 8, "train/loss": 1.0, "train/samples_per_s": 32.0,
             "dev/weighted_f1": 0.5, "dev/selection": 0.5, "best": True, "seconds": 2.5}
TEACHER_3 = {"stage": "teacher", "epoch": 3, "step": 12, "train/loss": 0.75, "train/samples_per_s": 31.0,
             "dev/weighted_f1": 0.375, "dev/selection": 0.375, "best": False, "seconds": 2.0}
FUSE_0 = {"stage": "fuse", "epoch": 0, "dev/weighted_f1": 0.625, "dev/selection": 0.625}
FINAL = {"stage": "final", "test/weighted_f1": 0.5, "test/accuracy": 0.75}
ROWS = [TEACHER_1, TEACHER_2, TEACHER_3, FUSE_0, FINAL]


def run_info(run_dir: Path) -> RunInfo:
    return RunInfo(directory=run_dir, recipe=None)  # type: ignore[arg-type]  # loggers get the recipe as params


def model_dir(root: Path) -> Path:
    directory = root / "model"
    directory.mkdir()
    (directory / "config.json").write_text('{"format_version": 2}')
    (directory / "weights.safetensors").write_bytes(b"\0" * 64)
    return directory


def drive(logger: Logger, run_dir: Path, rows: list[dict[str, Any]], resumed_rows: int | None = None,
          model: Path | None = None) -> None:
    logger.start(run_info(run_dir), PARAMS, resumed_rows)
    for row in rows:
        logger.log(row)
    logger.finish(model)


# ---------------------------------------------------------------- registry


def test_the_loggers_are_registered_and_listed(capsys):
    assert {"erckit.JSONL.v1", "erckit.TensorBoard.v1", "erckit.MLflow.v1"} <= set(registry.loggers.names())
    assert registry.loggers.get("erckit.JSONL.v1") is jsonl_logger
    assert main(["components", "--kind", "loggers"]) == 0
    out = capsys.readouterr().out
    for name in ("erckit.JSONL.v1", "erckit.TensorBoard.v1", "erckit.MLflow.v1"):
        assert name in out
    assert "erckit.ConcatFuser.v1" not in out


def test_run_dir_is_the_injected_argument():
    assert "run_dir" in registry.loggers.injected
    for factory in (jsonl_logger, tensorboard_logger, mlflow_logger):
        assert next(iter(inspect.signature(factory).parameters)) == "run_dir"


# ---------------------------------------------------------------- JSON lines


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_jsonl_writes_one_row_per_line_as_logged(tmp_path):
    logger = jsonl_logger(tmp_path)
    logger.start(run_info(tmp_path), PARAMS, None)
    logger.log(TEACHER_1)
    # appended and closed per row: readable before the run ends
    assert read_jsonl(tmp_path / "metrics.jsonl") == [TEACHER_1]
    for row in ROWS[1:]:
        logger.log(row)
    logger.finish(None)
    assert read_jsonl(tmp_path / "metrics.jsonl") == ROWS


def test_jsonl_other_file_name_and_non_finite_values(tmp_path):
    logger = jsonl_logger(tmp_path, file="history.jsonl")
    drive(logger, tmp_path, [{"stage": "teacher", "epoch": 1, "train/loss": math.nan, "train/samples_per_s": math.inf}])
    assert not (tmp_path / "metrics.jsonl").exists()
    text = (tmp_path / "history.jsonl").read_text()
    assert "NaN" in text and "Infinity" in text  # Python's json writes and reads these
    (row,) = read_jsonl(tmp_path / "history.jsonl")
    assert math.isnan(row["train/loss"]) and row["train/samples_per_s"] == math.inf


def test_jsonl_resume_keeps_only_the_checkpoints_rows(tmp_path):
    drive(jsonl_logger(tmp_path), tmp_path, ROWS[:3])  # the checkpoint was written after row 2, then a crash
    drive(jsonl_logger(tmp_path), tmp_path, [TEACHER_3, FUSE_0, FINAL], resumed_rows=2)
    assert read_jsonl(tmp_path / "metrics.jsonl") == ROWS
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no staging file left


def test_jsonl_resume_with_fewer_rows_on_disk_keeps_them(tmp_path):
    drive(jsonl_logger(tmp_path), tmp_path, [TEACHER_1])
    drive(jsonl_logger(tmp_path), tmp_path, [TEACHER_2], resumed_rows=5)
    assert read_jsonl(tmp_path / "metrics.jsonl") == [TEACHER_1, TEACHER_2]


def test_jsonl_fresh_start_forgets_rows_of_a_run_that_never_checkpointed(tmp_path):
    drive(jsonl_logger(tmp_path), tmp_path, [TEACHER_1, TEACHER_2])
    drive(jsonl_logger(tmp_path), tmp_path, [TEACHER_1], resumed_rows=None)
    assert read_jsonl(tmp_path / "metrics.jsonl") == [TEACHER_1]


def test_jsonl_write_failure_is_one_line_naming_the_file(tmp_path):
    (tmp_path / "metrics.jsonl").mkdir()  # a directory where the file belongs
    logger = jsonl_logger(tmp_path)
    with pytest.raises(ErckitError, match="cannot (read|write) .*metrics.jsonl") as info:
        logger.start(run_info(tmp_path), PARAMS, None)
        logger.log(TEACHER_1)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- missing extras


@pytest.mark.parametrize("factory, module, extra", [
    (tensorboard_logger, "tensorboard", "tensorboard"),
    (mlflow_logger, "mlflow", "mlflow"),
])
def test_a_missing_extra_names_the_pip_install(tmp_path, monkeypatch, factory, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what an uninstalled package looks like to import
    with pytest.raises(ErckitError) as info:
        factory(tmp_path)
    message = str(info.value)
    assert f'pip install "erckit[{extra}]"' in message and "\n" not in message


# ---------------------------------------------------------------- TensorBoard


def read_tensorboard(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    accumulator = event_accumulator.EventAccumulator(str(log_dir), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_tensorboard_event_files_hold_every_scalar_by_stage(tmp_path):
    pytest.importorskip("tensorboard")
    drive(tensorboard_logger(tmp_path), tmp_path, ROWS, model=model_dir(tmp_path))
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    scalars = read_tensorboard(tmp_path / "tensorboard")
    # the step is the row's number in the run: teacher epochs 1-3, then the fuse row, then the test row
    assert scalars["teacher/dev/weighted_f1"] == [(1, 0.25), (2, 0.5), (3, 0.375)]
    assert scalars["teacher/train/loss"] == [(1, 1.5), (2, 1.0), (3, 0.75)]
    assert scalars["teacher/step"] == [(1, 4.0), (2, 8.0), (3, 12.0)]
    assert scalars["teacher/best"] == [(1, 1.0), (2, 1.0), (3, 0.0)]
    assert scalars["fuse/dev/weighted_f1"] == [(4, 0.625)]
    assert scalars["fuse/epoch"] == [(4, 0.0)]
    assert scalars["final/test/weighted_f1"] == [(5, 0.5)]
    assert scalars["final/test/accuracy"] == [(5, 0.75)]
    assert not any(tag.endswith("/stage") for tag in scalars)


def test_tensorboard_resume_hides_the_rows_after_the_checkpoint(tmp_path):
    pytest.importorskip("tensorboard")
    stale = {**TEACHER_3, "dev/weighted_f1": 0.125}  # logged, then the process died before its checkpoint
    drive(tensorboard_logger(tmp_path), tmp_path, [TEACHER_1, TEACHER_2, stale])
    drive(tensorboard_logger(tmp_path), tmp_path, [TEACHER_3, FUSE_0, FINAL], resumed_rows=2)
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 2
    scalars = read_tensorboard(tmp_path / "tensorboard")
    assert scalars["teacher/dev/weighted_f1"] == [(1, 0.25), (2, 0.5), (3, 0.375)]
    assert scalars["final/test/weighted_f1"] == [(5, 0.5)]


def test_tensorboard_fresh_start_hides_events_of_a_run_that_never_checkpointed(tmp_path):
    pytest.importorskip("tensorboard")
    drive(tensorboard_logger(tmp_path), tmp_path, [{**TEACHER_1, "dev/weighted_f1": 0.125}, TEACHER_2])
    drive(tensorboard_logger(tmp_path), tmp_path, [TEACHER_1])
    assert read_tensorboard(tmp_path / "tensorboard")["teacher/dev/weighted_f1"] == [(1, 0.25)]


def test_tensorboard_log_dir_option(tmp_path):
    pytest.importorskip("tensorboard")
    drive(tensorboard_logger(tmp_path, log_dir="tb/run"), tmp_path, [TEACHER_1])
    assert read_tensorboard(tmp_path / "tb" / "run")["teacher/train/loss"] == [(1, 1.5)]


# ---------------------------------------------------------------- MLflow


@pytest.fixture(scope="module")
def mlflow_client_class():
    """MLflow imported once for every test here (its import takes about a second)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # read at import: no usage reports from tests
        pytest.importorskip("mlflow")
        pytest.importorskip("sqlalchemy")  # the default store is SQLite
        from mlflow.tracking import MlflowClient
    return MlflowClient


def only_run(client: Any, experiment: str = "erckit") -> Any:
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    (run,) = client.search_runs([found.experiment_id])
    return run


def history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))]


def test_mlflow_run_in_the_run_directory(tmp_path, mlflow_client_class):
    run_dir = tmp_path / "runs" / "quick"
    run_dir.mkdir(parents=True)
    logger = mlflow_logger(run_dir)
    drive(logger, run_dir, ROWS, model=model_dir(tmp_path))
    assert (run_dir / "mlflow" / "mlflow.db").is_file()
    client = mlflow_client_class(tracking_uri=f"sqlite:///{run_dir / 'mlflow' / 'mlflow.db'}")
    run = only_run(client)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "quick"
    assert run.data.tags["erckit.run_dir"] == str(run_dir.absolute())
    params = run.data.params
    assert params["data.dataset"] == "erckit.Demo.v1"
    assert json.loads(params["data.labels"]) == ["neutral", "joy"]
    assert params["data.args.root"] == "demo"
    assert params["model.encoders.text.dim"] == "16"
    assert params["model.fuser"] == "null"
    assert params["stages.0.name"] == "teacher" and params["stages.1.kind"] == "fuse"
    assert params["stages.0.lr"] == "0.001"
    run_id = run.info.run_id
    assert history(client, run_id, "teacher/dev/weighted_f1") == [(1, 0.25), (2, 0.5), (3, 0.375)]
    assert history(client, run_id, "teacher/best") == [(1, 1.0), (2, 1.0), (3, 0.0)]
    assert history(client, run_id, "fuse/dev/weighted_f1") == [(4, 0.625)]
    assert history(client, run_id, "final/test/weighted_f1") == [(5, 0.5)]
    model_files = {Path(f.path).name for f in client.list_artifacts(run_id, "model")}
    assert model_files == {"config.json", "weights.safetensors"}
    recipe = Path(client.download_artifacts(run_id, "recipe.json", str(tmp_path)))
    assert json.loads(recipe.read_text()) == PARAMS
    # the artifacts live in the run directory too, not in the working directory
    assert (run_dir / "mlflow" / "artifacts").is_dir()


def test_mlflow_failed_training_ends_the_run_failed_and_a_fresh_start_makes_a_new_run(tmp_path, mlflow_client_class):
    drive(mlflow_logger(tmp_path, experiment="tries", run_name="broken"), tmp_path, [TEACHER_1], model=None)
    drive(mlflow_logger(tmp_path, experiment="tries"), tmp_path, [TEACHER_2], model=None)  # resumed_rows None
    client = mlflow_client_class(tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tries")
    first, second = sorted(client.search_runs([experiment.experiment_id]), key=lambda r: r.info.start_time)
    assert first.info.status == "FAILED" and first.info.run_name == "broken"
    assert first.data.metrics["teacher/train/loss"] == 1.5
    assert second.info.status == "FAILED" and second.info.run_name == tmp_path.name
    assert history(client, second.info.run_id, "teacher/train/loss") == [(1, 1.0)]


def test_mlflow_given_tracking_uri_and_resume_continues_the_same_run(tmp_path, mlflow_client_class, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a new experiment in a given local database keeps its artifacts in ./mlruns (MLflow's default)
    uri = f"sqlite:///{tmp_path / 'shared.db'}"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = {**TEACHER_3, "dev/weighted_f1": 0.125}
    drive(mlflow_logger(run_dir, tracking_uri=uri), run_dir, [TEACHER_1, TEACHER_2, stale], model=None)
    changed = {**PARAMS, "data": {**PARAMS["data"], "dataset": "erckit.MELD.v1"}}
    logger = mlflow_logger(run_dir, tracking_uri=uri)
    logger.start(run_info(run_dir), changed, 2)
    for row in [TEACHER_3, FUSE_0, FINAL]:
        logger.log(row)
    logger.finish(model_dir(tmp_path))
    assert not (run_dir / "mlflow").exists()  # the given store was used
    assert (tmp_path / "mlruns").is_dir()
    client = mlflow_client_class(tracking_uri=uri)
    run = only_run(client)  # one run, continued
    assert run.info.status == "FINISHED"
    assert run.data.params["data.dataset"] == "erckit.Demo.v1"  # MLflow params cannot change...
    assert run.data.tags["resumed.data.dataset"] == "erckit.MELD.v1"  # ...the resumed value is a tag
    # the stale value stays (MLflow deletes no metric value); the resumed one follows it at the same step
    assert history(client, run.info.run_id, "teacher/dev/weighted_f1") == [(1, 0.25), (2, 0.5), (3, 0.125), (3, 0.375)]
    assert run.data.metrics["teacher/dev/weighted_f1"] == 0.375
    assert history(client, run.info.run_id, "final/test/weighted_f1") == [(5, 0.5)]
    assert {Path(f.path).name for f in client.list_artifacts(run.info.run_id, "model")} == {"config.json", "weights.safetensors"}


def test_mlflow_unusable_tracking_uri_is_one_line(tmp_path, mlflow_client_class):
    logger = mlflow_logger(tmp_path, tracking_uri="nosuchscheme://nowhere")
    with pytest.raises(ErckitError, match="MLflow \\(nosuchscheme://nowhere\\): cannot open the tracking store") as info:
        logger.start(run_info(tmp_path), PARAMS, None)
    assert "\n" not in str(info.value)
    logger.finish(None)  # after a failed start there is no run to end


def test_flatten_params_keys_values_and_limits():
    flat = flatten_params({
        "a": {"b": 1, "c": [1, 2], "d": True, "e": {}},
        "stages": [{"name": "x"}, [3]],
        "weird key!": "v",
        "long": "x" * 7000,
    })
    assert flat["a.b"] == "1" and flat["a.c"] == "[1, 2]" and flat["a.d"] == "true" and flat["a.e"] == "{}"
    assert flat["stages.0.name"] == "x" and flat["stages.1"] == "[3]"
    assert flat["weird key_"] == "v"
    assert len(flat["long"]) == 6000 and flat["long"].endswith("...")
