"""``erckit train --seeds``: one run folder per seed, then the mean ± std over the seeds.

ERC scores move by a point or two between seeds, so the honest number is a mean over
several runs. Each seed is a normal run (``<run dir>/seed-<n>``) and resumes on its own:
``--resume`` skips the seeds that finished, continues the one that was interrupted and
starts the rest.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import UsageError
from ..fileio import atomic_write_text
from . import runs

SUMMARY = "summary.json"


def parse_seeds(text: str) -> list[int]:
    """``"5"`` -> seeds 0..4; ``"0,3,7"`` -> those seeds (a trailing comma makes one seed a list: ``"7,"``)."""
    parts = [part.strip() for part in text.split(",")]
    try:
        numbers = [int(part) for part in parts if part]
    except ValueError:
        raise UsageError(f"--seeds expects a count (5) or a comma-separated list of seeds (0,1,2), got {text!r}") from None
    if not numbers:
        raise UsageError(f"--seeds expects a count (5) or a comma-separated list of seeds (0,1,2), got {text!r}")
    if "," not in text:
        if numbers[0] < 1:
            raise UsageError(f"--seeds {text}: a count of seeds must be at least 1")
        return list(range(numbers[0]))
    if len(set(numbers)) != len(numbers):
        raise UsageError(f"--seeds {text}: a seed is listed twice")
    return numbers


def seed_dir(base: Path, seed: int) -> Path:
    return Path(base) / f"seed-{seed}"


def check_seed_dirs(base: Path, seeds: Sequence[int], *, resume: bool, overwrite: bool) -> None:
    """Refuse before the first seed trains, not after it, when a later seed's folder is taken."""
    if resume or overwrite:
        return
    taken = [seed_dir(base, s) for s in seeds if seed_dir(base, s).exists() and any(seed_dir(base, s).iterdir())]
    if taken:
        names = ", ".join(p.name for p in taken)
        raise UsageError(f"{base} already holds {names}; pass --resume to continue those seeds or --overwrite to start again")


def train_seeds(
    load: Callable[[int], Any], recipe_name: str, seeds: Sequence[int], base: Path, options: Any,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``load(seed)`` (a recipe) for each seed into ``base/seed-<n>``; write and return the summary."""
    from ..train import train

    # Under torchrun every rank runs this loop (each seed is one DDP run); only rank 0 owns the files.
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if main_rank:
        check_seed_dirs(base, seeds, resume=options.resume, overwrite=options.overwrite)
    for number, seed in enumerate(seeds, 1):
        directory = seed_dir(base, seed)
        if options.resume and runs.is_complete(directory):
            say(f"seed {seed} ({number}/{len(seeds)}): finished earlier in {directory}; kept")
            continue
        say(f"seed {seed} ({number}/{len(seeds)}) into {directory}")
        # --resume only where there is something to resume; a seed never started starts now.
        resume = options.resume and directory.exists() and any(directory.iterdir())
        train(load(seed), f"{recipe_name} seed {seed}", replace(options, output=directory, resume=resume))
    summary = summarize({seed: seed_dir(base, seed) for seed in seeds}, recipe_name)
    if main_rank:
        atomic_write_text(Path(base) / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def summarize(run_dirs: dict[int, Path], recipe_name: str = "") -> dict[str, Any]:
    """Per metric: every seed's value, their mean and sample standard deviation (n - 1; None for one seed).

    Test metrics come from each run's test_report.json: the model selected on dev, tested once.
    """
    values: dict[str, dict[str, float]] = {}
    for seed, directory in run_dirs.items():
        # dev metrics need metrics.jsonl (the default logger); the test report is always written
        rows = runs.read_rows(directory) if (directory / "metrics.jsonl").is_file() else []
        metrics = {**runs.selected_dev(rows), **runs.test_metrics(runs.test_report(directory))}
        for name, value in metrics.items():
            if name.startswith("dev/f1/") or name == "dev/selection":
                continue
            values.setdefault(name, {})[str(seed)] = value
    ordered = sorted(values, key=_metric_order)
    return {
        "recipe": recipe_name,
        "seeds": list(run_dirs),
        "runs": {str(seed): str(Path(d).name) for seed, d in run_dirs.items()},
        "std": "sample standard deviation (n - 1); null for a single seed",
        "metrics": {name: _stats(values[name]) for name in ordered},
    }


def _stats(per_seed: dict[str, float]) -> dict[str, Any]:
    numbers = list(per_seed.values())
    std = statistics.stdev(numbers) if len(numbers) > 1 else None
    return {"mean": statistics.fmean(numbers), "std": std, "values": per_seed}


def _metric_order(name: str) -> tuple[int, str]:
    first = ["test/weighted_f1", "test/macro_f1", "test/accuracy", "dev/weighted_f1", "dev/macro_f1", "dev/accuracy"]
    return (first.index(name), "") if name in first else (len(first) + name.startswith("test/f1/"), name)


def summary_table(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    seeds = [str(s) for s in summary["seeds"]]
    table = Table(title=f"{summary['recipe']}: {len(seeds)} seeds (test: the dev-selected model)")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for seed in seeds:
        table.add_column(f"seed {seed}", justify="right")
    for name, stats in summary["metrics"].items():
        spread = "n/a" if stats["std"] is None else f"{stats['std']:.4f}"
        cells = [f"{stats['values'][s]:.4f}" if s in stats["values"] else "" for s in seeds]
        table.add_row(name, f"{stats['mean']:.4f} ± {spread}", *cells)
    return table
