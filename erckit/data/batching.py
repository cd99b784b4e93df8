"""From samples to padded batches: featurisation, media filling, length bucketing."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .types import Sample

if TYPE_CHECKING:  # encoders are above the data layer: duck-typed here, named for readers
    from ..components import Encoder, Features


@dataclass
class Batch:
    indices: Tensor  # [B] positions in the stage's sample list
    features: dict[str, Features]
    present: dict[str, Tensor]  # name -> [B] bool
    labels: Tensor | None  # [B] long, None when any sample is unlabelled

    def to(self, device: torch.device) -> "Batch":
        return Batch(
            self.indices,
            {n: {k: v.to(device, non_blocking=True) for k, v in f.items()} for n, f in self.features.items()},
            {n: p.to(device) for n, p in self.present.items()},
            None if self.labels is None else self.labels.to(device),
        )


class SampleDataset(Dataset):
    """Featurises samples for a set of encoders.

    Text-like encoders (no media) are featurised once up front and kept in
    memory, so tokenisation never repeats across epochs; media encoders are
    featurised lazily in DataLoader workers from the decoded-media cache.
    """

    def __init__(self, samples: Sequence[Sample], encoders: Mapping[str, Encoder], resolver: Any = None):
        self.samples = list(samples)
        self.encoders = dict(encoders)
        self.resolver = resolver
        self.eager = {name: [e.featurize(s) for s in self.samples] for name, e in self.encoders.items() if e.media is None}
        self.specs = sorted({e.media for e in self.encoders.values() if e.media is not None}, key=repr)

    def __len__(self) -> int:
        return len(self.samples)

    def lengths(self) -> list[int]:
        if not self.eager:
            return [1] * len(self.samples)
        return [
            max(self.encoders[name].length(feats[i]) for name, feats in self.eager.items())
            for i in range(len(self.samples))
        ]

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        if self.specs:
            sample = copy.copy(sample)  # fill() sets media fields; keep the shared list pristine
            sample.present = {}
            self.resolver.fill(sample, self.specs)
        features: dict[str, Features] = {}
        present: dict[str, bool] = {}
        for name, encoder in self.encoders.items():
            if name in self.eager:
                features[name] = self.eager[name][index]
                present[name] = True
            else:
                features[name] = encoder.featurize(sample)
                present[name] = bool(sample.present.get(encoder.media.modality, True))
        return {"index": index, "features": features, "present": present, "label": sample.label}


class Collator:
    def __init__(self, encoders: Mapping[str, Encoder]):
        self.encoders = dict(encoders)

    def __call__(self, items: list[dict[str, Any]]) -> Batch:
        labels = [item["label"] for item in items]
        return Batch(
            indices=torch.tensor([item["index"] for item in items], dtype=torch.long),
            features={n: e.collate([item["features"][n] for item in items]) for n, e in self.encoders.items()},
            present={n: torch.tensor([item["present"][n] for item in items], dtype=torch.bool) for n in self.encoders},
            labels=None if any(label is None for label in labels) else torch.tensor(labels, dtype=torch.long),
        )


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length, to cut padding.

    Training: shuffle, cut into pools of ``pool_batches`` batches, sort each pool
    by length, batch, shuffle the batches; seeded by (seed, epoch) so a resumed
    run sees the same order. Evaluation (``shuffle=False``): sorted by length.
    Under DDP each global batch is split across ranks (rank r takes every
    world-th item), so the global batch matches a single-process run.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        bucket: bool = True,
        rank: int = 0,
        world_size: int = 1,
        pool_batches: int = 50,
    ):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle, self.seed, self.bucket = shuffle, seed, bucket
        self.rank, self.world_size, self.pool_batches = rank, world_size, pool_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            order = sorted(range(n), key=lambda i: self.lengths[i]) if self.bucket else list(range(n))
            return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=generator).tolist()
        batches: list[list[int]] = []
        pool = self.batch_size * self.pool_batches
        for start in range(0, n, pool):
            chunk = order[start : start + pool]
            if self.bucket:
                chunk.sort(key=lambda i: self.lengths[i])
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        permutation = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in permutation]

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            if self.world_size == 1:
                yield batch
                continue
            while len(batch) < self.world_size:  # every rank needs a non-empty share
                batch = batch + batch[: self.world_size - len(batch)]
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size


def padding_bounded_batches(lengths: Sequence[int], batch_size: int, slack: float) -> list[list[int]]:
    """Length-sorted batches of at most ``batch_size``, each closed before its padded size
    (longest length x count) would pass ``slack`` x its real size.

    For a set of samples that is already one batch's worth (a server's micro-batch: whatever
    requests are waiting, short and long contexts mixed), cutting it where padding would pay
    more than a larger batch gains. Longest first, so the first sample of a batch is its longest.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order:
        if current and (len(current) >= batch_size
                        or lengths[current[0]] * (len(current) + 1) > slack * (real + lengths[index])):
            batches.append(current)
            current, real = [], 0
        current.append(index)
        real += lengths[index]
    if current:
        batches.append(current)
    return batches


def make_loader(dataset: SampleDataset, sampler: Sampler | Sequence[list[int]], num_workers: int) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=Collator(dataset.encoders),
        num_workers=num_workers,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )
