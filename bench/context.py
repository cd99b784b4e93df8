"""Prediction cost against dialogue length, run by hand: ``python -m bench.context``.

    python -m bench.context                                   # 500, 2,000, 8,000 utterances, both models
    python -m bench.context --sizes 500 2000 --models text
    python -m bench.context --old-tree /tmp/erckit-old --old-sizes 500 2000   # before/after in one run
    # an older tree: mkdir /tmp/erckit-old && git archive COMMIT | tar -x -C /tmp/erckit-old

Predicts ONE dialogue of each size (MELD-like utterances of 4-20 words, five
speakers) with

* ``text``: the quick start's text teacher alone (``telme.RobertaTeacher.v1``,
  tiny random RoBERTa, 128 tokens, a word-level tokenizer fit to the texts);
* ``quickstart``: the whole quick-start model (teacher, data2vec and
  TimeSformer students, ASF fuser) built from ``recipes/quickstart.toml`` with
  random weights; the utterances carry no media files, so the students run on
  the media policy's silent/black stand-ins (decoding would add a constant per
  utterance).

Each measurement runs in its own process (so peak RSS is that run's own) after
a warm-up on a short dialogue, and reports seconds per utterance and peak RSS,
total and per utterance above the warmed-up process. Target: the per-utterance
time of 8,000 utterances is at most 1.5x that of 500. ``--old-tree`` points at
another erckit source tree (e.g. ``git archive`` of an older commit) measured
the same way, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SPEAKERS = ("Ross", "Rachel", "Monica", "Chandler", "Joey")
WORDS = ("I", "you", "we", "really", "think", "that", "this", "is", "not", "so", "what", "oh", "my", "god",
         "okay", "no", "yes", "well", "just", "know", "about", "going", "to", "the", "a", "it", "was", "great")


def dialogue(turns: int) -> Any:
    import random

    from erckit.data.types import Dialogue, Utterance

    rng = random.Random(turns)
    return Dialogue(f"d{turns}", tuple(
        Utterance(SPEAKERS[rng.randrange(len(SPEAKERS))], " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 20))))
        for _ in range(turns)
    ))


def build_model(kind: str, assets: Path) -> Any:
    import torch

    from erckit.data.demo import DEMO_LABELS
    from erckit.hf import word_tokenizer
    from erckit.model import ERCModel
    from erckit.recipe import load_recipe
    from erckit.recipe.load import validate

    word_tokenizer([" ".join(WORDS)]).save_pretrained(str(assets / "tokenizer"))
    os.environ["DEMO_ROOT"] = str(assets)  # the quick start reads its tokenizer from there
    recipe = load_recipe(REPO / "recipes" / "quickstart.toml")
    torch.manual_seed(0)
    if kind == "text":
        raw = {"data": {"dataset": "erckit.DialogueJSONL.v1", "root": str(assets)},
               "model": {"encoders": {"text": {"factory": recipe.model.encoders["text"].factory,
                                               **recipe.model.encoders["text"].args}}},
               "stages": [{"kind": "supervised", "encoders": ["text"]}]}
        return ERCModel.from_recipe(validate(raw, "bench.context"), list(DEMO_LABELS)).eval()
    model = ERCModel.from_recipe(recipe, list(DEMO_LABELS)).eval()
    model.use_fuser = True
    return model


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(kind: str, turns: int, batch_size: int) -> dict[str, float]:
    """One measurement in this process: build, warm up, predict one dialogue of ``turns`` utterances."""
    import time

    import torch

    from erckit.predict import Predictor, predict_with

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    with tempfile.TemporaryDirectory() as assets:
        model = build_model(kind, Path(assets))
        predictor = Predictor(model, batch_size=batch_size)
        predict_with(predictor, [dialogue(50)])  # warm-up: allocator, kernels, thread pool
        data = dialogue(turns)
        before = peak_rss_mb()
        started = time.perf_counter()
        results = predict_with(predictor, [data])
        seconds = time.perf_counter() - started
        assert len(results[0].utterances) == turns
    peak = peak_rss_mb()
    return {"seconds": seconds, "peak_rss_mb": peak, "rss_per_utterance_kb": max(peak - before, 0.0) * 1024 / turns}


def measure(tree: Path, kind: str, turns: int, batch_size: int, timeout: float) -> dict[str, float] | None:
    """``worker`` in a fresh interpreter importing erckit from ``tree`` (the bench code from this repository)."""
    # Run as a script, not as bench.context: another tree has a bench package of its own.
    paths = [tree, tree / "plugins" / "telme", tree / "plugins" / "example"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths)), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, str(turns), str(batch_size)]
    try:
        done = subprocess.run(command, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise SystemExit(f"worker {kind} {turns} ({tree}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.context", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 8000], help="utterances in the one dialogue")
    parser.add_argument("--models", nargs="+", choices=("text", "quickstart"), default=["text", "quickstart"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--old-tree", type=Path, help="another erckit source tree to measure side by side")
    parser.add_argument("--old-sizes", type=int, nargs="+", help="sizes for --old-tree (default: --sizes)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a measurement is abandoned")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per measurement (default 2)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of all sizes taking turns; each size keeps its best")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "UTTERANCES", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # one measurement, as a JSON line (see measure)
        kind, turns, batch = args.worker
        print(json.dumps(worker(kind, int(turns), int(batch))))
        return 0
    os.environ["BENCH_THREADS"] = str(args.threads)

    from rich.console import Console
    from rich.table import Table

    trees = [("erckit", REPO)] + ([("old", args.old_tree.resolve())] if args.old_tree else [])
    table = Table(title=f"predict on one dialogue, batch {args.batch_size}, {args.threads} thread(s), best of {args.repeats}")
    for column in ("model", "code", "utterances", "seconds", "ms / utterance", "peak RSS MB", "KB / utterance"):
        table.add_column(column, justify="left" if column in ("model", "code") else "right")
    summary = []
    for kind in args.models:
        per_utterance: dict[str, dict[int, float]] = {}
        best: dict[tuple[int, str], dict[str, float] | None] = {}
        # Rounds of every size taking turns: a slow spell of a shared machine hits them alike; each keeps its best.
        for _ in range(args.repeats):
            for turns in args.sizes:
                for name, tree in trees:
                    if name == "old" and args.old_sizes and turns not in args.old_sizes:
                        continue
                    result = measure(tree, kind, turns, args.batch_size, args.timeout)
                    kept = best.get((turns, name))
                    if result is not None and (kept is None or result["seconds"] < kept["seconds"]):
                        best[(turns, name)] = result
                    else:
                        best.setdefault((turns, name), None)
        for (turns, name), result in best.items():
            if result is None:
                table.add_row(kind, name, f"{turns:,}", f"> {args.timeout:.0f}", "", "", "")
                continue
            per_utterance.setdefault(name, {})[turns] = result["seconds"] / turns
            table.add_row(kind, name, f"{turns:,}", f"{result['seconds']:.1f}", f"{1000 * result['seconds'] / turns:.2f}",
                          f"{result['peak_rss_mb']:.0f}", f"{result['rss_per_utterance_kb']:.1f}")
        for name, times in per_utterance.items():
            if len(times) >= 2:
                small, large = min(times), max(times)
                ratio = times[large] / times[small]
                target = " (target <= 1.5: " + ("ok)" if ratio <= 1.5 else "MISSED)") if name == "erckit" else ""
                summary.append(f"{kind} / {name}: time per utterance at {large:,} vs {small:,} utterances: {ratio:.2f}x{target}")
    console = Console(width=110)
    console.print(table)
    for line in summary:
        console.print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
