"""The pluggy half of the example plugin: a CLI command and a training-event logger."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import erckit

LOG_ENV = "ERCKIT_EXAMPLE_EVENTS"


@erckit.hookimpl
def register_commands(add_command: Any) -> None:
    def configure(parser: Any) -> None:
        parser.add_argument("--name", default="world", help="who to greet")

    def run(args: Any) -> int:
        print(f"hello {args.name} from erckit-example")
        return 0

    add_command("example-info", "say hello from the example plugin", configure, run)


def _log(event: str, **payload: Any) -> None:
    """Append one JSON line per event to $ERCKIT_EXAMPLE_EVENTS, if set."""
    path = os.environ.get(LOG_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, **payload}, default=str) + "\n")


@erckit.hookimpl
def on_train_start(run: Any) -> None:
    _log("train_start", directory=str(run.directory))


@erckit.hookimpl
def on_stage_start(run: Any, stage: str, kind: str) -> None:
    _log("stage_start", stage=stage, kind=kind)


@erckit.hookimpl
def on_epoch_end(run: Any, stage: str, epoch: int, metrics: Mapping[str, float]) -> None:
    _log("epoch_end", stage=stage, epoch=epoch, metrics=dict(metrics))


@erckit.hookimpl
def on_stage_end(run: Any, stage: str, metrics: Mapping[str, float]) -> None:
    _log("stage_end", stage=stage, metrics=dict(metrics))


@erckit.hookimpl
def on_train_end(run: Any, metrics: Mapping[str, float]) -> None:
    _log("train_end", metrics=dict(metrics))
