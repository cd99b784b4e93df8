"""Built-in training loggers and their registration. Imports without torch.

Each factory's signature is its recipe schema (``[[loggers]]``); ``run_dir``, the
run directory, is injected by erckit. Relative paths are inside the run directory.
TensorBoard and MLflow are optional extras: their factories fail in one line naming
``pip install "erckit[tensorboard]"`` / ``"erckit[mlflow]"`` when the library is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..plugins import hookimpl


def jsonl_logger(run_dir: Path, file: str = "metrics.jsonl") -> Any:
    """One JSON object per metrics row, appended to a file in the run directory (the default logger)."""
    from ..train.loggers import JSONLinesLogger

    return JSONLinesLogger(Path(run_dir) / file)


def tensorboard_logger(run_dir: Path, log_dir: str = "tensorboard") -> Any:
    """TensorBoard event files: scalars named stage/key, the step is the row's number in the run.

    Needs ``pip install "erckit[tensorboard]"``; view with ``tensorboard --logdir RUN_DIR/tensorboard``.
    """
    from ..train.loggers import TensorBoardLogger

    return TensorBoardLogger(Path(run_dir) / log_dir)


def mlflow_logger(
    run_dir: Path,
    tracking_uri: str | None = None,
    experiment: str = "erckit",
    run_name: str | None = None,
) -> Any:
    """An MLflow run: params = the resolved recipe, metrics per row, the model directory as artifacts.

    tracking_uri: any MLflow tracking URI (``http://host:5000``, ``sqlite:///path.db``,
    ``databricks``...); by default a SQLite store in the run directory (``mlflow/mlflow.db``).
    experiment: created when missing. run_name: default the run directory's name.
    Needs ``pip install "erckit[mlflow]"``.
    """
    from ..train.loggers import MLflowLogger

    return MLflowLogger(Path(run_dir), tracking_uri=tracking_uri, experiment=experiment, run_name=run_name)


LOGGERS: dict[str, Callable[..., Any]] = {
    "erckit.JSONL.v1": jsonl_logger,
    "erckit.TensorBoard.v1": tensorboard_logger,
    "erckit.MLflow.v1": mlflow_logger,
}


@hookimpl
def register_components(register: Callable[..., None]) -> None:
    for name, factory in LOGGERS.items():
        register("loggers", name, factory)
