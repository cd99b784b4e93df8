"""Where training metrics go: the ``Logger`` interface and the built-in JSON lines, TensorBoard and MLflow loggers.

The engine drives every logger of a run the same way, on rank 0 only::

    logger.start(run, params, resumed_rows)   # once, before the first row
    logger.log(row)                           # once per metrics row (an epoch, a stage, the final test)
    logger.finish(model_dir)                  # once; model_dir is None when training failed

Loggers are created by factories registered in ``erckit.registry.loggers``
(``erckit.builtin.loggers``); the factories get ``run_dir`` injected. This module
imports neither torch nor the optional libraries at import time: each logger
imports its library when it is created, so a missing extra is an ``ErckitError``
naming the ``pip install`` that fixes it.

Step: TensorBoard and MLflow need one step that grows through the whole run, while a
row's own ``step`` (optimiser steps) and ``epoch`` restart with every stage. Both use the
row's number in the run (1 for the first row logged, counting rows kept from before a
resume), i.e. epochs counted across stages; the row's ``epoch`` and ``step`` are logged as
the values ``<stage>/epoch`` and ``<stage>/step``.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import ErckitError, WriteError
from ..fileio import atomic_write_text, describe

__all__ = [
    "JSONLinesLogger",
    "Logger",
    "MLflowLogger",
    "TensorBoardLogger",
    "flatten_params",
    "require_extra",
    "scalars_of",
]


class Logger:
    """Where training metrics go. One instance per run, created by a registered factory."""

    def start(self, run: Any, params: Mapping[str, Any], resumed_rows: int | None) -> None:
        """Training begins.

        ``run`` is an ``erckit.train.RunInfo`` (directory, recipe, rank, world_size);
        ``params`` the resolved recipe as a plain JSON-able nested dict; ``resumed_rows``
        None for a fresh run, or on ``--resume`` the number of rows logged when the
        checkpoint being resumed was written: rows logged after it are to be forgotten.
        """

    def log(self, row: Mapping[str, Any]) -> None:
        """One metrics row: ``{"stage": "teacher", "epoch": 1, "step": 12, "train/loss": 1.2, ...}``,
        a stage with nothing to train ``{"stage": name, "epoch": 0, "dev/...": ...}``, or the
        final ``{"stage": "final", "test/weighted_f1": ...}``."""

    def finish(self, model_dir: Path | None) -> None:
        """Training ended: ``model_dir`` was written, or None when training failed."""


def require_extra(module: str, extra: str) -> Any:
    """Import ``module`` (an optional dependency) or say which erckit extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ErckitError(
            f"this logger needs the optional package {module!r}: pip install \"erckit[{extra}]\""
        ) from None


def scalars_of(row: Mapping[str, Any]) -> Iterator[tuple[str, float]]:
    """``(stage/key, value)`` for every number of a row (``best`` counts as 0 or 1)."""
    stage = str(row.get("stage", "run"))
    for key, value in row.items():
        if key == "stage" or not isinstance(value, (int, float)):
            continue
        yield f"{stage}/{key}", float(value)


# ------------------------------------------------------------------ JSON lines


class JSONLinesLogger(Logger):
    """One JSON object per row, appended to ``path`` (the run's ``metrics.jsonl`` by default).

    Each row is appended and the file closed again, so a row survives a crash of the
    process right after it. Non-finite numbers are written as ``NaN`` / ``Infinity`` /
    ``-Infinity`` as Python's ``json`` does (Python and pandas read them back; strict
    JSON parsers such as jq do not).
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def start(self, run: Any, params: Mapping[str, Any], resumed_rows: int | None) -> None:
        # A fresh start into a directory with rows (a run that stopped before its first
        # checkpoint) begins the file anew, as resuming keeps only the checkpoint's rows.
        self._keep_rows(0 if resumed_rows is None else resumed_rows)

    def log(self, row: Mapping[str, Any]) -> None:
        line = json.dumps(dict(row)) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError as error:
            raise WriteError(self.path, describe(error, self.path.parent)) from None

    def _keep_rows(self, rows: int) -> None:
        """Drop the rows after the first ``rows`` (written after the checkpoint we resume from), atomically."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError) as error:
            cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise ErckitError(f"cannot read {self.path}: {cause}") from None
        lines = text.splitlines(keepends=True)
        if len(lines) > rows:
            atomic_write_text(self.path, "".join(lines[:rows]))


# ------------------------------------------------------------------ TensorBoard


class TensorBoardLogger(Logger):
    """Scalars ``<stage>/<key>`` (e.g. ``teacher/dev/weighted_f1``) in TensorBoard event files in ``log_dir``.

    Written with ``torch.utils.tensorboard.SummaryWriter`` and flushed after every row.
    The step is the row's number in the run (see the module docstring). On resume the
    new writer starts with TensorBoard's ``purge_step`` at the first row not kept, so
    TensorBoard hides the events of rows logged after the checkpoint (they stay in the
    older event file; TensorBoard's readers drop them).
    """

    def __init__(self, log_dir: Path):
        require_extra("tensorboard", "tensorboard")
        self.log_dir = Path(log_dir)
        self._writer: Any = None
        self._rows = 0
        self._last_wall = 0.0

    def start(self, run: Any, params: Mapping[str, Any], resumed_rows: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._rows = resumed_rows or 0
        try:
            # purge_step on a fresh start too: a run restarted before its first checkpoint hides its old events.
            self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=self._rows + 1)
        except OSError as error:
            raise WriteError(self.log_dir, describe(error, self.log_dir.parent)) from None

    def log(self, row: Mapping[str, Any]) -> None:
        if self._writer is None:
            raise ErckitError("TensorBoard logger: log() before start()")
        self._rows += 1
        # One wall time per row, strictly increasing, so a row's scalars belong together.
        wall = max(time.time(), self._last_wall + 1e-3)
        self._last_wall = wall
        try:
            for tag, value in scalars_of(row):
                self._writer.add_scalar(tag, value, global_step=self._rows, walltime=wall)
            self._writer.flush()
        except OSError as error:
            raise WriteError(self.log_dir, describe(error, self.log_dir)) from None

    def finish(self, model_dir: Path | None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# ------------------------------------------------------------------ MLflow

# MLflow's own limits (mlflow.utils.validation in MLflow 2 and 3).
MLFLOW_PARAM_VALUE_LIMIT = 6000
MLFLOW_KEY_LIMIT = 250
MLFLOW_PARAMS_PER_BATCH = 100
MLFLOW_METRICS_PER_BATCH = 1000
_MLFLOW_KEY_CHARACTERS = re.compile(r"[^\w./\- :]")  # what MLflow accepts in param, metric and tag keys
RUNS_FILE = "mlflow_runs.json"


def mlflow_key(key: str) -> str:
    """``key`` with the characters MLflow refuses replaced by ``_``, cut to MLflow's key length."""
    return _MLFLOW_KEY_CHARACTERS.sub("_", key)[:MLFLOW_KEY_LIMIT]


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if len(text) > MLFLOW_PARAM_VALUE_LIMIT:
        text = text[: MLFLOW_PARAM_VALUE_LIMIT - 3] + "..."
    return text


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested recipe as MLflow parameters: dotted keys, list items by index, values as text.

    ``{"model": {"encoders": {"text": {"factory": "x"}}}, "stages": [{"name": "t"}], "labels": ["a", "b"]}``
    -> ``{"model.encoders.text.factory": "x", "stages.0.name": "t", "labels": '["a", "b"]'}``.
    A list of plain values is one parameter (JSON); values are cut to 6000 characters
    (the full recipe is also logged as the artifact ``recipe.json``).
    """
    flat: dict[str, str] = {}

    def visit(value: Any, key: str) -> None:
        if isinstance(value, Mapping) and value:
            for name, item in value.items():
                visit(item, f"{key}.{name}" if key else str(name))
        elif isinstance(value, (list, tuple)) and any(isinstance(item, (Mapping, list, tuple)) for item in value):
            for index, item in enumerate(value):
                visit(item, f"{key}.{index}" if key else str(index))
        elif key:
            flat[mlflow_key(key)] = _param_value(list(value) if isinstance(value, tuple) else value)

    visit(params, prefix)
    return flat


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class MLflowLogger(Logger):
    """One MLflow run per training run: params = the resolved recipe, metrics per row, the model as artifacts.

    ``tracking_uri`` None keeps everything in the run directory: a SQLite store
    ``mlflow/mlflow.db`` with artifacts in ``mlflow/artifacts`` (MLflow 3 refuses its old
    ``./mlruns`` file store unless ``MLFLOW_ALLOW_FILE_STORE=true``). Metrics are named
    ``<stage>/<key>`` with the row's number in the run as step; ``finish`` logs the model
    directory under the artifact path ``model`` and ends the run FINISHED, or FAILED when
    training failed.

    The run id is kept in ``<run_dir>/mlflow_runs.json``; ``--resume`` continues that run.
    MLflow cannot delete metric values, so the values of rows logged after the checkpoint
    stay in the run's history, and the resumed run logs those steps again after them. A
    recipe value changed on resume (MLflow parameters cannot change) is logged as the tag
    ``resumed.<key>``.
    """

    def __init__(self, run_dir: Path, tracking_uri: str | None = None, experiment: str = "erckit", run_name: str | None = None):
        require_extra("mlflow", "mlflow")
        self.run_dir = Path(run_dir)
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.run_id: str | None = None
        self._client: Any = None
        self._rows = 0

    @property
    def store_dir(self) -> Path:
        return self.run_dir.absolute() / "mlflow"

    @property
    def uri(self) -> str:
        """The tracking URI in use."""
        return self.tracking_uri or f"sqlite:///{self.store_dir / 'mlflow.db'}"

    def start(self, run: Any, params: Mapping[str, Any], resumed_rows: int | None) -> None:
        self._rows = resumed_rows or 0
        self._client = self._call("open the tracking store", self._open_client)
        run_id = self._stored_run_id() if resumed_rows is not None else None
        if run_id is not None and self._call("look up the run to resume", self._run_exists, run_id):
            self.run_id = run_id
            self._call("mark the run as running", self._client.update_run, run_id, "RUNNING")
            self._call("log the recipe", self._log_resumed_params, params)
        else:
            self.run_id = self._call("create a run", self._create_run, run)
            self._call("log the recipe", self._log_params, flatten_params(params))
            self._store_run_id()
        self._call("log the recipe", self._client.log_dict, self.run_id, dict(params), "recipe.json")

    def log(self, row: Mapping[str, Any]) -> None:
        if self.run_id is None:
            raise ErckitError("MLflow logger: log() before start()")
        from mlflow.entities import Metric

        self._rows += 1
        stamp = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(key), value, stamp, self._rows) for key, value in scalars_of(row)]
        for first in range(0, len(metrics), MLFLOW_METRICS_PER_BATCH):
            self._call("log metrics", self._client.log_batch, self.run_id, metrics=metrics[first : first + MLFLOW_METRICS_PER_BATCH])

    def finish(self, model_dir: Path | None) -> None:
        if self.run_id is None:
            return
        run_id, self.run_id = self.run_id, None
        if model_dir is None:
            self._call("end the run", self._client.set_terminated, run_id, "FAILED")
            return
        try:
            self._call("log the model directory", self._client.log_artifacts, run_id, str(model_dir), "model")
        except ErckitError:
            self._client.set_terminated(run_id, "FAILED")
            raise
        self._call("end the run", self._client.set_terminated, run_id, "FINISHED")

    # -------------------------------------------------------------- internals

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """MLflow's errors (a refused store, an unreachable server) as one-line ErckitErrors."""
        from mlflow.exceptions import MlflowException

        try:
            return function(*args, **kwargs)
        except (MlflowException, OSError) as error:  # requests' errors are OSErrors
            raise ErckitError(f"MLflow ({self.uri}): cannot {what}: {_one_line(error)}") from None

    def _open_client(self) -> Any:
        from mlflow.tracking import MlflowClient

        if self.tracking_uri is None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
        # Creating a SQLite store logs its table migrations at INFO; training output stays quiet.
        quiet = logging.getLogger("mlflow")
        level = quiet.level
        quiet.setLevel(max(level, logging.WARNING))
        try:
            client = MlflowClient(tracking_uri=self.uri)  # opens (and creates) the store now
        finally:
            quiet.setLevel(level)
        return client

    def _create_run(self, run: Any) -> str:
        from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

        from .. import __version__

        experiment = self._client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            location = (self.store_dir / "artifacts").as_uri() if self.tracking_uri is None else None
            experiment_id = self._client.create_experiment(self.experiment, artifact_location=location)
        directory = Path(getattr(run, "directory", self.run_dir))
        tags = {
            MLFLOW_RUN_NAME: self.run_name or directory.name,
            "erckit.version": __version__,
            "erckit.run_dir": str(directory.absolute()),
            "erckit.world_size": str(getattr(run, "world_size", 1)),
        }
        return self._client.create_run(experiment_id, tags=tags).info.run_id

    def _run_exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_run(run_id)
        except MlflowException as error:
            if getattr(error, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return True

    def _log_params(self, flat: Mapping[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value) for key, value in flat.items()]
        for first in range(0, len(items), MLFLOW_PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, params=items[first : first + MLFLOW_PARAMS_PER_BATCH])

    def _log_resumed_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        logged = self._client.get_run(self.run_id).data.params
        flat = flatten_params(params)
        self._log_params({key: value for key, value in flat.items() if key not in logged})
        changed = [RunTag(mlflow_key(f"resumed.{key}"), value) for key, value in flat.items() if key in logged and logged[key] != value]
        for first in range(0, len(changed), MLFLOW_PARAMS_PER_BATCH):
            self._client.log_batch(self.run_id, tags=changed[first : first + MLFLOW_PARAMS_PER_BATCH])

    def _runs_file(self) -> Path:
        return self.run_dir / RUNS_FILE

    def _stored_runs(self) -> list[dict[str, Any]]:
        try:
            stored = json.loads(self._runs_file().read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as error:
            raise ErckitError(f"cannot read {self._runs_file()}: {error}; delete it to start a new MLflow run") from None
        runs = stored.get("runs") if isinstance(stored, dict) else None
        return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []

    def _same_target(self, entry: Mapping[str, Any]) -> bool:
        return entry.get("tracking_uri") == self.tracking_uri and entry.get("experiment") == self.experiment

    def _stored_run_id(self) -> str | None:
        for entry in self._stored_runs():
            if self._same_target(entry) and isinstance(entry.get("run_id"), str):
                return entry["run_id"]
        return None

    def _store_run_id(self) -> None:
        # tracking_uri None (the run directory's own store) is stored as None, so a moved run directory still resumes.
        runs = [entry for entry in self._stored_runs() if not self._same_target(entry)]
        runs.append({"tracking_uri": self.tracking_uri, "experiment": self.experiment, "run_id": self.run_id})
        atomic_write_text(self._runs_file(), json.dumps({"runs": runs}, indent=2) + "\n")
