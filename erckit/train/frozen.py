"""Outputs of frozen encoders, computed once and cached on disk.

A frozen encoder's embedding of a sample never changes, so a distill stage
computes the teacher once and a fuse stage computes every encoder once; the
cache key covers the encoder's weights, its featurisation settings, and the
exact samples (text, speakers, media files with size and mtime), so any change
to one of them is a miss, never a stale hit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from ..components import Encoder, ModalityOutput
from ..data.cache import file_identity
from ..data.types import Sample, Window
from ..data.batching import BucketBatchSampler, SampleDataset, make_loader
from .runtime import Runtime, eval_mode, preserved_rng


@dataclass
class Outputs:
    """One encoder's outputs for every sample of a split (CPU, float32)."""

    embedding: Tensor  # [N, D]
    logits: Tensor  # [N, C]
    present: Tensor  # [N] bool

    def rows(self, indices: Tensor, device: torch.device) -> ModalityOutput:
        return ModalityOutput(
            self.embedding[indices].to(device), self.logits[indices].to(device), self.present[indices].to(device)
        )


def weights_digest(module: torch.nn.Module) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def samples_digest(samples: Sequence[Sample]) -> str:
    """What the samples' encoder outputs depend on: keys, contexts, speakers, media files.

    A context that is a window onto its dialogue (as ``make_samples`` makes
    them) is hashed as (its dialogue, start, stop), each dialogue once, so the
    digest is linear in the data however long the dialogues.
    """
    digest = hashlib.blake2b(digest_size=16)
    sources: dict[int, int] = {}  # id of a shared utterance/speaker sequence -> its number in this digest

    def window(sequence: Any, describe: Any) -> Any:
        if not isinstance(sequence, Window):
            return [describe(item) for item in sequence]
        number = sources.get(id(sequence.source))
        if number is None:
            number = sources[id(sequence.source)] = len(sources)
            digest.update(json.dumps(["source", number, [describe(item) for item in sequence.source]], default=str).encode())
        return ["window", number, sequence.start, sequence.stop]

    for sample in samples:
        parts: list[Any] = [
            sample.key,
            window(sample.speaker_ids, int),
            window(sample.context, lambda u: [u.text, u.start, u.end, u.audio_whole]),
        ]
        for path in (sample.target.audio, sample.target.video):
            parts.append(_file_identity(path))
        digest.update(json.dumps(parts, default=str).encode())
    return digest.hexdigest()


def _file_identity(path: Any) -> Any:
    """The media cache's file identity (path, size, mtime); a missing file is named, not an error."""
    if path is None:
        return None
    try:
        return file_identity(path)
    except OSError:
        return {"path": str(path), "missing": True}


def compute_outputs(
    encoder: Encoder,
    samples: Sequence[Sample],
    runtime: Runtime,
    *,
    batch_size: int,
    resolver: Any = None,
    cache: Any = None,
    data_digest: str | None = None,
    num_workers: int = 0,
    description: str = "encoding",
    progress: Any = None,
) -> Outputs:
    """Run a frozen encoder over ``samples`` (sharded across ranks), or read the result from ``cache``."""
    key_parts = None
    if cache is not None:
        key_parts = {
            "kind": "encoder-outputs",
            "weights": weights_digest(encoder),
            "fingerprint": encoder.fingerprint(),
            "samples": data_digest or samples_digest(samples),
            "policy": getattr(resolver, "policy", None),
        }
        from ..data.cache import cache_key

        key = cache_key(key_parts)
        hit = cache.get(key)
        if hit is not None:
            return Outputs(hit["embedding"], hit["logits"], hit["present"].bool())
    dataset = SampleDataset(samples, {"x": encoder}, resolver)
    order = list(range(len(samples)))[runtime.rank :: runtime.world_size]
    lengths = dataset.lengths()
    sampler = BucketBatchSampler([lengths[i] for i in order], batch_size, shuffle=False)
    loader = make_loader(dataset, _Remap(sampler, order), num_workers)
    embedding = torch.zeros(len(samples), encoder.dim)
    logits = torch.zeros(len(samples), encoder.num_classes)
    present = torch.zeros(len(samples), dtype=torch.bool)
    task = progress.add_task(description, total=len(sampler)) if progress is not None else None
    # A cache miss must not consume any training RNG stream (the DataLoader draws a
    # seed from torch's), or a run's results would depend on what the cache held.
    with preserved_rng(), eval_mode(encoder), torch.inference_mode(), runtime.autocast():
        for batch in loader:
            batch = batch.to(runtime.device)
            out = encoder(batch.features["x"])
            embedding[batch.indices] = out.embedding.float().cpu()
            logits[batch.indices] = out.logits.float().cpu()
            present[batch.indices] = batch.present["x"].cpu()
            if task is not None:
                progress.advance(task)
    if task is not None:
        progress.remove_task(task)
    if runtime.distributed:
        embedding, logits, present = _gather_rows(runtime, order, embedding, logits, present)
    result = Outputs(embedding, logits, present)
    if cache is not None and runtime.is_main:
        cache.put(key, {"embedding": embedding, "logits": logits, "present": present.to(torch.uint8)})
    return result


class _Remap(torch.utils.data.Sampler):
    """Batches over a shard, expressed as indices of the full dataset."""

    def __init__(self, sampler: BucketBatchSampler, order: list[int]):
        self.sampler, self.order = sampler, order

    def __iter__(self):
        for batch in self.sampler:
            yield [self.order[i] for i in batch]

    def __len__(self) -> int:
        return len(self.sampler)


def _gather_rows(runtime: Runtime, order: list[int], *tensors: Tensor) -> tuple[Tensor, ...]:
    import torch.distributed as dist

    mine = [t[order] for t in tensors]
    gathered: list[Any] = [None] * runtime.world_size
    dist.all_gather_object(gathered, (order, mine))
    full = [t.clone() for t in tensors]
    for rank_order, rank_tensors in gathered:
        for target, values in zip(full, rank_tensors):
            target[rank_order] = values
    return tuple(full)
