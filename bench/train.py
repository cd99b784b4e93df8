"""Training-engine benchmarks, run by hand: ``python -m bench.train [--meld-batches N]``.

Each row compares two ways of doing the same work in one process, side by side:

1. fuse-stage epoch: cached frozen-encoder embeddings vs what TelME's fusion loop does every
   step (decode the batch's media in the DataLoader, re-run the frozen encoders), and, stricter,
   vs re-running the encoders on media decoded once; quick-start TelME models on the demo data.
2. distill-stage epoch: cached teacher outputs vs a teacher forward every step.
3. text stage on MELD train contexts: samples/s with length bucketing vs random batches
   (same batch size, RoBERTa-shaped 4x256 model, max 256 tokens, the same random subset of
   ``--meld-batches`` x 16 contexts batched both ways).

The variants of a row alternate (epoch by epoch, or step by step) and the best of each is
kept, so the ratio holds on a shared machine whose speed drifts.

Numbers are measured, never hard-coded; they depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

# MELD text CSVs: $MELD_DIR, else the shared data folder beside the repository.
MELD = Path(os.environ.get("MELD_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "meld")


def _quickstart(root: Path, cache: Path):
    from erckit.recipe import load_recipe

    os.environ["DEMO_ROOT"] = str(root)  # the recipe reads the demo and its tokenizer from there
    return load_recipe(
        Path(__file__).resolve().parents[1] / "recipes" / "quickstart.toml",
        [f'data.cache_dir="{cache}"', 'data.media_policy="zero"'],
    )


def _trainer(recipe, out: Path):
    from erckit.model import ERCModel
    from erckit.train.engine import Trainer, TrainOptions
    from erckit.train.runtime import setup_runtime

    runtime = setup_runtime("cpu", "fp32")
    from erckit.train.reporter import QuietReporter

    trainer = Trainer(recipe, runtime, out, TrainOptions(progress=False), False, QuietReporter())
    trainer.labels, trainer.splits = trainer.load_data()
    trainer.model = ERCModel.from_recipe(recipe, trainer.labels)
    trainer.model.eval()
    return trainer


def _alternate(variants: dict, rounds: int = 3, lr: float = 1e-3) -> dict[str, float]:
    """Seconds per epoch for each ``name -> (objective, batches)``, the variants' epochs taking
    turns (``best_of_turns``), each variant with its own copy of the engine's optimiser."""
    from erckit.train.optim import adam

    from .timing import best_of_turns

    def epoch(objective, source) -> Callable[[], None]:
        # The engine's own optimiser (AdamW, fused where supported), for every variant alike.
        optimizer = adam(list(objective.named_parameters()), decoupled=True, lr=lr, weight_decay=0.01,
                         betas=(0.9, 0.999), eps=1e-8)

        def run() -> None:
            objective.train()
            for batch in source:
                objective(batch).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

        return run

    return best_of_turns({name: epoch(*variant) for name, variant in variants.items()}, rounds)


def bench_fuse(trainer) -> tuple[float, float, float, int]:
    """Seconds per fuse epoch: cached embeddings; the frozen encoders re-run every step on
    media decoded once (erckit's media cache); and the frozen encoders re-run every step on
    media decoded every step, as TelME's fusion loop does (its DataLoader's collate_fn decodes
    each batch; here erckit's decoder does it, which is faster than TelME's); and the
    optimiser steps in an epoch."""
    from erckit.data.pipeline import MediaResolver
    from erckit.data.batching import BucketBatchSampler, SampleDataset, make_loader
    from erckit.train.engine import IndexSource
    from erckit.nn.losses import CrossEntropy
    from erckit.train.modules import FuseModule

    model, runtime = trainer.model, trainer.runtime
    names = list(model.encoders)
    samples = trainer.usable(trainer.splits.train, names, "train")
    for p in model.parameters():
        p.requires_grad_(False)
    for p in model.fuser.parameters():
        p.requires_grad_(True)
    # cached: encoders run once (timed separately, as the engine does once per stage)
    outputs = {n: trainer.frozen_outputs(n, samples, "train", 16) for n in names}
    labels = torch.tensor([s.label for s in samples])
    source = IndexSource("train", labels, 8, shuffle=True, seed=0, runtime=runtime)

    class Rerun(torch.nn.Module):  # TelME: frozen encoders forward on every step
        def __init__(self) -> None:
            super().__init__()
            self.fuser = model.fuser

        def forward(self, batch):
            with torch.no_grad():
                outs = {n: model.encode(n, batch.features[n], batch.present[n]) for n in names}
            anchor = outs.pop(model.anchor)
            return torch.nn.functional.cross_entropy(self.fuser(anchor, outs), batch.labels)

    def loader(resolver):
        dataset = SampleDataset(samples, dict(model.encoders), resolver)
        return make_loader(dataset, BucketBatchSampler(dataset.lengths(), 8, shuffle=True, seed=0), 0)

    uncached = MediaResolver(None, trainer.resolver.policy, max_duration=trainer.resolver.max_duration)
    seconds = _alternate({"cached": (FuseModule(model.fuser, model.anchor, {"train": outputs}, CrossEntropy()), source),
                          "rerun": (Rerun(), loader(trainer.resolver)),
                          "telme": (Rerun(), loader(uncached))})
    return seconds["cached"], seconds["rerun"], seconds["telme"], len(source)


def bench_distill(trainer) -> dict[tuple[str, ...], tuple[float, float]]:
    """Seconds per distill epoch, cached teacher vs teacher forward every step, for each student
    alone (TelME distils its audio and visual students in two separate loops) and for both in one
    stage (the quick-start recipe): ``{students: (cached, live)}``."""
    from erckit import registry

    model = trainer.model
    from types import SimpleNamespace

    table = next(s for s in trainer.recipe.stages if s.kind == "erckit.Distill.v1").args
    stage = SimpleNamespace(students=table["students"], teacher=table["teacher"], losses=table["losses"])
    all_students = {n: model.encoders[n] for n in stage.students}
    # TelME's teacher (RoBERTa-large, 355M) is 1.6x its two students together (216M); the
    # quick-start teacher is smaller than its students, which would understate what caching
    # saves. Use a teacher with TelME's proportions (2x128 RoBERTa, about 1.9x the students).
    torch.manual_seed(0)
    teacher = registry.encoders.get("telme.RobertaTeacher.v1")(
        num_classes=len(trainer.labels), tokenizer=model.encoders[stage.teacher].tokenizer.name_or_path,
        max_length=128, embedding_dim=model.encoders[stage.teacher].dim,
        config={"model_type": "roberta", "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 512, "max_position_embeddings": 514, "vocab_size": 270},
    ).eval()
    model.encoders[stage.teacher] = teacher
    sizes = {n: sum(p.numel() for p in e.parameters()) for n, e in {stage.teacher: teacher, **all_students}.items()}
    print("distill benchmark parameters:", ", ".join(f"{n} {c / 1e6:.2f}M" for n, c in sizes.items()))
    samples = trainer.usable(trainer.splits.train, [*stage.students, stage.teacher], "train")
    distillers = [(l["weight"], stage.teacher, trainer.create("distillers", l, reserved=("weight", "teacher")))
                  for l in stage.losses]
    outputs = trainer.frozen_outputs(stage.teacher, samples, "train", 16)
    results = {}
    for names in [*([n] for n in stage.students), list(stage.students)]:
        students = {n: all_students[n] for n in names}
        for p in model.parameters():
            p.requires_grad_(False)
        for s in students.values():
            for p in s.parameters():
                p.requires_grad_(True)
        results[tuple(names)] = _distill_epochs(teacher, stage.teacher, students, distillers, outputs, samples, trainer.resolver)
    return results


def _distill_epochs(teacher, teacher_name, students, distillers, outputs, samples, resolver) -> tuple[float, float]:
    from erckit.data.batching import BucketBatchSampler, SampleDataset, make_loader
    from erckit.train.frozen import Outputs
    from erckit.nn.losses import CrossEntropy
    from erckit.train.modules import DistillModule

    # The engine's cached stage featurises and collates the students only; the live variant also the teacher.
    student_data = SampleDataset(samples, students, resolver)
    dataset = SampleDataset(samples, {**students, teacher_name: teacher}, resolver)

    def loader(data):
        return make_loader(data, BucketBatchSampler(dataset.lengths(), 8, shuffle=True, seed=0), 0)


    class Live(DistillModule):  # teacher forward every step
        def forward(self, batch):
            with torch.no_grad():
                out = teacher(batch.features[teacher_name])
            n = len(samples)
            emb = torch.zeros(n, out.embedding.shape[1])
            logits = torch.zeros(n, out.logits.shape[1])
            emb[batch.indices], logits[batch.indices] = out.embedding, out.logits
            self.teachers = {teacher_name: Outputs(emb, logits, torch.ones(n, dtype=torch.bool))}
            return super().forward(batch)

    teachers = {teacher_name: outputs}
    seconds = _alternate({"cached": (DistillModule(students, CrossEntropy(), distillers, teachers, 1.0), loader(student_data)),
                          "live": (Live(students, CrossEntropy(), distillers, teachers, 1.0), loader(dataset))}, rounds=2)
    return seconds["cached"], seconds["live"]


def bench_bucketing(batches: int, batch_size: int = 16) -> tuple[float, float]:
    """Samples/s of a text training step on the same MELD train contexts, batched by length
    vs at random. One random subset of ``batches * batch_size`` samples feeds both, so both
    process the same real tokens; batches are collated beforehand (the engine's DataLoader
    workers do that beside the model) and the two kinds alternate step by step."""
    from erckit import registry
    from erckit.data.types import make_samples
    from erckit.data.batching import BucketBatchSampler, SampleDataset, make_loader
    from erckit.nn.losses import CrossEntropy
    from erckit.train.modules import SupervisedModule

    corpus = registry.datasets.get("erckit.MELD.v1")(root=str(MELD))
    samples = make_samples(corpus.split("train"), list(corpus.labels))
    subset = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0))[: batches * batch_size]
    torch.manual_seed(0)
    encoder = registry.encoders.get("telme.RobertaTeacher.v1")(
        num_classes=len(corpus.labels), tokenizer="erckit:bytes", max_length=256, embedding_dim=256,
        config={"model_type": "roberta", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                "intermediate_size": 1024, "max_position_embeddings": 514, "vocab_size": 270},
    )
    dataset = SampleDataset([samples[i] for i in subset.tolist()], {"text": encoder})
    kinds = {
        bucket: list(make_loader(dataset, BucketBatchSampler(dataset.lengths(), batch_size, shuffle=True, seed=0, bucket=bucket), 0))
        for bucket in (True, False)
    }
    objective = SupervisedModule({"text": encoder}, CrossEntropy())
    optimizer = torch.optim.AdamW(objective.parameters(), lr=1e-4)
    objective.train()
    seconds = {True: 0.0, False: 0.0}
    for step in range(len(kinds[True])):
        for bucket, collated in kinds.items():
            started = time.perf_counter()
            objective(collated[step]).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            seconds[bucket] += time.perf_counter() - started
    return len(dataset) / seconds[True], len(dataset) / seconds[False]


def eager_floor_ms(steps: int = 500, batch: int = 8, dim: int = 64, tokens: int = 2, classes: int = 4) -> float:
    """Milliseconds per training step of the smallest module shaped like ASF (one attention
    projection, no masks, two linears, two norms, a classifier) with fused AdamW: about the
    least an eager PyTorch step of the fuse stage can cost on this machine."""
    import torch.nn.functional as F
    from torch import nn

    from .timing import best_of_turns

    class Minimal(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.qkv, self.out, self.norm1 = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), nn.LayerNorm(dim)
            self.gate, self.shift = nn.Linear(2 * dim, dim), nn.Linear(dim, dim)
            self.norm2, self.classifier = nn.LayerNorm(dim), nn.Linear(dim, classes)

        def forward(self, t, x, y):
            q, k, v = self.qkv(x).view(batch, tokens, 3, 2, dim // 2).permute(2, 0, 3, 1, 4)
            a = self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, dim))
            av = self.norm1(a + x).mean(1)
            h = torch.relu(self.gate(torch.cat([av, t], -1))) * self.shift(av)
            alpha = (t.norm(dim=-1, keepdim=True) / (h.norm(dim=-1, keepdim=True) + 1e-6)).clamp(max=1)
            return F.cross_entropy(self.classifier(F.dropout(self.norm2(t + alpha * h), 0.2)), y)

    module = Minimal()
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3, fused=True)
    t, x, y = torch.randn(batch, dim), torch.randn(batch, tokens, dim), torch.randint(0, classes, (batch,))
    def train() -> None:
        for _ in range(steps):
            module(t, x, y).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    return best_of_turns({"floor": train}, 3)["floor"] / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meld-batches", type=int, default=30)
    parser.add_argument("--skip-meld", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trainer = _trainer(_quickstart(tmp / "demo", tmp / "cache"), tmp / "run")
        cached_fuse, rerun, telme, steps = bench_fuse(trainer)
        rows.append(("fuse epoch (s): cached vs decode + encoders every step", cached_fuse, telme, telme / cached_fuse))
        rows.append(("  (stricter) cached vs encoders every step on cached media", cached_fuse, rerun, rerun / cached_fuse))
        for names, (cached, live) in bench_distill(trainer).items():
            rows.append((f"distill epoch (s), {' + '.join(names)}: cached teacher vs teacher every step",
                         cached, live, live / cached))
    if not args.skip_meld and MELD.exists():
        bucketed, random_ = bench_bucketing(args.meld_batches)
        rows.append(("MELD text samples/s: bucketed vs random", bucketed, random_, bucketed / random_))
    print(f"{'benchmark':58s} {'erckit':>10s} {'baseline':>10s} {'speed-up':>9s}")
    for name, ours, theirs, ratio in rows:
        print(f"{name:58s} {ours:10.3f} {theirs:10.3f} {ratio:8.1f}x")
    print(f"fuse step floor here: a minimal ASF-shaped module trains at {eager_floor_ms():.2f} ms per step "
          f"in eager PyTorch; ASF's cached epoch above is {cached_fuse / steps * 1000:.2f} ms per step")


if __name__ == "__main__":
    main()
