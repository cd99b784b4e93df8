"""Run erckit's hand-run benchmarks and print one table: ``python -m bench`` (or ``python bench/run.py``).

    python -m bench                       # data, train, predict benchmarks
    python -m bench --only train predict  # a subset
    python -m bench --only distill_scale  # distillation at TelME's real model sizes (slow: ~1 min per batch)
    python -m bench --meld-text --limit-train 800 --epochs 1   # also the MELD text erckit-vs-baseline run (slow)

Each benchmark lives in its own module (``bench/data.py``, ``bench/train.py``,
``bench/predict.py``, ``bench/meld_text.py``), imported lazily: a module that is
missing or fails is reported as a row, never a crash of the whole run. A module
may expose ``rows(argv) -> list[dict]`` (keys: ``what``, ``baseline``,
``erckit``, optional ``ratio``, ``unit``, ``target``), ``run(...) -> dict``, or
``main(argv)`` (its own printed output is kept; the row then says "see above").
Peak RSS is measured per benchmark (VmHWM, reset before each where Linux allows).
Never run in CI.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if not __package__:  # run as a script: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "bench"

from .meld_text import comparison_rows, machine_info, peak_rss_mb, reset_peak_rss

SUITE = ("data", "train", "predict")
# Run only when asked for: too slow for the default suite.
EXTRA = ("distill_scale",)


def _call(module: Any, argv: list[str]) -> list[dict]:
    """Run one benchmark module; return its rows (possibly a single 'see above' row)."""
    if hasattr(module, "rows"):
        return list(module.rows(argv))
    if hasattr(module, "main"):
        parameters = inspect.signature(module.main).parameters
        saved = sys.argv
        try:
            sys.argv = [f"bench.{module.__name__.rsplit('.', 1)[-1]}", *argv]
            returned = module.main(argv) if parameters else module.main()
        finally:
            sys.argv = saved
        if isinstance(returned, list) and all(isinstance(r, dict) for r in returned):
            return returned
        return [{"what": "(table printed above)"}]
    raise AttributeError(f"{module.__name__} has neither rows(argv) nor main()")


def run_one(name: str, argv: list[str]) -> list[dict]:
    try:
        module = importlib.import_module(f"bench.{name}")
    except ModuleNotFoundError as error:
        if error.name == f"bench.{name}":
            return [{"bench": name, "what": f"MISSING: bench/{name}.py does not exist (not run)"}]
        raise
    reset = reset_peak_rss()
    began = time.perf_counter()
    try:
        rows = _call(module, argv)
    except SystemExit as exit_:  # argparse inside a module
        rows = [{"what": f"exited with {exit_.code}"}]
    except Exception as error:  # one failing benchmark must not hide the others
        traceback.print_exc()
        rows = [{"what": f"FAILED: {type(error).__name__}: {error}"}]
    seconds = time.perf_counter() - began
    peak = peak_rss_mb()
    for row in rows:
        row.setdefault("bench", name)
        row.setdefault("peak_rss_mb", peak if reset else None)
        row.setdefault("seconds", seconds)
    return rows


def meld_text_rows(args: argparse.Namespace) -> list[dict]:
    from . import meld_text, meld_text_baseline

    settings = dict(context_tokens=args.context_tokens, epochs=args.epochs, limit_train=args.limit_train,
                    limit_eval=args.limit_eval)
    reset_peak_rss()
    ours = meld_text.run(**settings, output=args.output)
    ours_peak = peak_rss_mb()
    print(meld_text.format_result(ours))
    reset_peak_rss()
    base = meld_text_baseline.run(**settings)
    base_peak = peak_rss_mb()
    print(meld_text.format_result(base))
    rows = [
        {"bench": "meld_text", "what": f"MELD text teacher: {label}", "erckit": a, "baseline": b, "ratio": r}
        for label, a, b, r in comparison_rows(ours, base)
    ]
    rows.append({"bench": "meld_text", "what": "peak RSS, train (MB)", "erckit": ours["train/peak_rss_mb"],
                 "baseline": base["train/peak_rss_mb"]})
    rows.append({"bench": "meld_text", "what": "peak RSS, predict (MB)", "erckit": ours.get("predict/peak_rss_mb"),
                 "baseline": None})
    rows.append({"bench": "meld_text", "what": "peak RSS, whole run (MB)", "erckit": ours_peak, "baseline": base_peak})
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def print_table(rows: list[dict], info: dict) -> None:
    print()
    print(f"machine: {info['cpu']} | {info['cores']} cores | torch {info['torch']} "
          f"({info['torch_threads']} threads) | python {info['python']}")
    header = ("bench", "what", "baseline", "erckit", "ratio", "peak RSS MB", "s")
    table = [header]
    for row in rows:
        ratio = row.get("ratio")
        if ratio is None and isinstance(row.get("baseline"), (int, float)) and isinstance(row.get("erckit"), (int, float)) \
                and row["baseline"]:
            ratio = row["erckit"] / row["baseline"]
        unit = f" {row['unit']}" if row.get("unit") else ""
        table.append((
            str(row.get("bench", "")), str(row.get("what", "")),
            _fmt(row.get("baseline")) + unit if row.get("baseline") is not None else "-",
            _fmt(row.get("erckit")) + unit if row.get("erckit") is not None else "-",
            f"{ratio:.2f}x" if isinstance(ratio, (int, float)) else "-",
            _fmt(row.get("peak_rss_mb")), _fmt(row.get("seconds")),
        ))
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for n, r in enumerate(table):
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=SUITE + EXTRA, help=f"run only these (default: {' '.join(SUITE)})")
    parser.add_argument("--meld-text", action="store_true", help="also run the MELD text erckit-vs-baseline training (slow)")
    parser.add_argument("--context-tokens", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=1, help="MELD text epochs (default 1 here; 3 for the full run)")
    parser.add_argument("--limit-train", type=int, default=800, help="MELD text: first N train rows (default 800)")
    parser.add_argument("--limit-eval", type=int, default=400, help="MELD text: first N dev/test rows (default 400)")
    parser.add_argument("--output", default="runs/bench_meld_text", help="MELD text erckit run directory (overwritten)")
    args = parser.parse_args(argv)

    info = machine_info()
    rows: list[dict] = []
    for name in args.only or SUITE:
        print(f"== bench.{name}", flush=True)
        rows.extend(run_one(name, []))
    if args.meld_text:
        print("== bench.meld_text", flush=True)
        rows.extend(meld_text_rows(args))
    print_table(rows, info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
