"""Reading a finished (or partial) run folder back: its metrics rows, test report and recipe."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from ..errors import ErckitError


def is_complete(run_dir: Path) -> bool:
    """A run is complete once its model is written (the last thing a run does)."""
    return (run_dir / "model" / "model.safetensors").is_file()


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ErckitError(f"{run_dir}: no metrics.jsonl (is it a run folder trained with the erckit.JSONL.v1 logger?)") from None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def epoch_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [row for row in rows if row.get("stage") != "final"]


def selected_dev(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The dev metrics of the saved model: the epoch the last stage selected (its last ``best`` row)."""
    epochs = epoch_rows(rows)
    if not epochs:
        return {}
    last_stage = [row for row in epochs if row["stage"] == epochs[-1]["stage"]]
    best = [row for row in last_stage if row.get("best")]
    chosen = (best or last_stage)[-1]
    return {k: float(v) for k, v in chosen.items() if k.startswith("dev/") and isinstance(v, (int, float))}


def test_report(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "test_report.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ErckitError(f"{run_dir}: no test_report.json (the run has not finished, or its data has no test split)") from None


def test_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Weighted F1, macro F1, accuracy and per-class F1 under the names the metrics rows use."""
    metrics = {f"test/{k}": float(report[k]) for k in ("weighted_f1", "macro_f1", "accuracy")}
    for entry in report.get("per_class", []):
        metrics[f"test/f1/{entry['label']}"] = float(entry["f1"])
    return metrics


def read_recipe(run_dir: Path) -> dict[str, Any]:
    try:
        return tomllib.loads((run_dir / "recipe.toml").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ErckitError(f"{run_dir}: no recipe.toml; not an erckit run folder") from None
