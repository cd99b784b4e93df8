"""The interfaces every component implements, and the tensors they exchange.

Three roles, each an ``nn.Module`` returned by a registered factory:

* ``Encoder``: one modality. ``featurize(sample)`` turns a ``Sample`` into
  tensors (runs in data-loader workers, must be deterministic so results can be
  cached; a context-reading encoder should read ``sample.context`` from the end
  and only as far as it needs, see ``erckit.data.context``);
  ``collate(features)`` pads a list of those into a batch;
  ``forward(batch)`` returns a ``ModalityOutput`` (embedding [B, dim], logits
  [B, num_classes]).
* ``Distiller``: ``forward(student, teacher)`` -> scalar loss. The engine passes
  only rows where the student's modality is present, and a detached teacher.
* ``Objective``: ``forward(output, labels, teachers)`` -> scalar training loss
  of one head (cross-entropy, focal, ...), see the class.
* ``Fuser``: ``forward(anchor, others)`` -> logits [B, C]. ``anchor`` is the
  teacher's output; ``others`` maps modality names to outputs whose ``mask``
  marks the rows where that modality is present. A fuser must give finite
  logits when every other modality is absent for a row.

Factories receive *injected* arguments when their signature asks for them:
``num_classes`` (size of the label set) for every role, and for fusers
``input_dims`` (modality name -> embedding dim, anchor first) and ``anchor``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Mapping, Sequence

import torch
from torch import Tensor, nn

from .data.types import MediaSpec

if TYPE_CHECKING:
    from .data.types import Sample

Features = dict[str, Tensor]


@dataclass
class ModalityOutput:
    """What an encoder produces for a batch.

    embedding: [B, D] float; logits: [B, C] float; mask: [B] bool, True where the
    modality was actually present (None means present for every row).
    """

    embedding: Tensor
    logits: Tensor
    mask: Tensor | None = None

    def present(self) -> Tensor:
        """[B] bool mask, materialised."""
        if self.mask is None:
            return torch.ones(self.embedding.shape[0], dtype=torch.bool, device=self.embedding.device)
        return self.mask

    def select(self, rows: Tensor) -> "ModalityOutput":
        """The rows picked by a bool mask or an index tensor."""
        return ModalityOutput(
            self.embedding[rows], self.logits[rows], None if self.mask is None else self.mask[rows]
        )

    def detach(self) -> "ModalityOutput":
        return replace(self, embedding=self.embedding.detach(), logits=self.logits.detach())

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "ModalityOutput":
        def move(t: Tensor) -> Tensor:
            t = t.to(device)
            return t.to(dtype) if dtype is not None and t.is_floating_point() else t

        return ModalityOutput(move(self.embedding), move(self.logits), None if self.mask is None else self.mask.to(device))


class Encoder(nn.Module):
    """One modality: sample -> features -> batch -> ``ModalityOutput``.

    Subclasses set ``modality`` ('text', 'audio', 'visual' or a name of their
    own), ``dim`` (embedding size) and ``num_classes``, and ``media`` if they
    need decoded audio (``AudioSpec``) or frames (``VideoSpec``), or decode
    their own (``DecoderSpec``): the data pipeline then fills ``sample.audio``
    / ``sample.frames`` before ``featurize`` is called. When the media is
    absent (policy ``zero``) the pipeline passes a silent/black stand-in
    (an empty tensor for a ``DecoderSpec``) with ``sample.present`` False and
    masks the output, so ``featurize`` always receives a tensor.
    """

    modality: ClassVar[str] = "text"
    media: MediaSpec | None = None
    dim: int
    num_classes: int

    def featurize(self, sample: "Sample") -> Features:
        raise NotImplementedError

    def collate(self, features: Sequence[Features]) -> Features:
        """Default ``pad_features``: pad every key along its first dim (0-fill) and add ``<key>_mask``."""
        return pad_features(features)

    def forward(self, batch: Features) -> ModalityOutput:  # type: ignore[override]
        raise NotImplementedError

    def length(self, features: Features) -> int:
        """Size used for length-bucketed batching (e.g. token count); 1 by default."""
        return 1

    def context_window(self) -> int | None:
        """The most utterances (target included) ``featurize`` reads from the end of ``sample.context``.

        A live stream keeps only that many per dialogue, so its memory stays
        bounded. None (the default) means "possibly all of them"; media encoders
        that look at the target only return 1, a text encoder with a token
        budget the number of utterances that can fill it (see
        ``erckit.data.context``).
        """
        return None

    def fingerprint(self) -> str:
        """What determines ``featurize``'s output (tokenizer, rate, frames...). Part of cache keys."""
        return f"{type(self).__module__}.{type(self).__qualname__}:{self.media!r}"

    def save_assets(self, directory: Path) -> None:
        """Write non-weight files needed to rebuild this encoder offline (tokenizer, HF config)."""

    def frozen_copy_safe(self) -> bool:
        """Whether outputs may be cached when frozen (False for encoders with randomness in eval)."""
        return True


class Distiller(nn.Module):
    """A loss between a student's and a (detached) teacher's outputs on the same rows."""

    def forward(self, student: ModalityOutput, teacher: ModalityOutput) -> Tensor:  # type: ignore[override]
        raise NotImplementedError


class Objective(nn.Module):
    """A training loss on one head: ``forward(output, labels, teachers)`` -> scalar.

    ``output`` is the head's ``ModalityOutput`` on the rows being trained (for a fuse
    stage: the fused logits, embedding = the anchor's), ``labels`` their class indices
    [B] long, ``teachers`` the detached outputs of the stage's teachers on the same
    rows, by encoder name (empty when the stage has none). Factories may ask for the
    injected ``num_classes``, ``labels`` (the label names, class-index order) and
    ``class_counts`` (training examples per class).
    """

    def forward(  # type: ignore[override]
        self, output: ModalityOutput, labels: Tensor, teachers: Mapping[str, ModalityOutput] | None = None
    ) -> Tensor:
        raise NotImplementedError


class Fuser(nn.Module):
    """Anchor (teacher) output + other modalities (possibly masked) -> logits [B, C]."""

    num_classes: int

    def forward(self, anchor: ModalityOutput, others: Mapping[str, ModalityOutput]) -> Tensor:  # type: ignore[override]
        raise NotImplementedError


def pad_features(features: Sequence[Features], pad_values: Mapping[str, float] | None = None) -> Features:
    """Stack per-sample tensors, right-padding the first dim to the longest.

    Every key with at least one dimension also gets ``<key>_mask`` ([B, L] bool, True
    on real positions), whether or not this batch needed padding: length bucketing
    often yields batches of equal lengths, and an encoder must not have to guess.
    Scalar (0-dim) keys are stacked to [B] without a mask; a key whose mask the
    features already hold (``ids`` next to ``ids_mask``) keeps that one, padded with False.
    """
    if not features:
        raise ValueError("cannot collate an empty batch")
    pad_values = pad_values or {}
    batch: Features = {}
    for key in features[0]:
        tensors = [f[key] for f in features]
        if tensors[0].dim() == 0:
            batch[key] = torch.stack(tensors)
            continue
        lengths = [t.shape[0] for t in tensors]
        longest = max(lengths)
        out = tensors[0].new_full((len(tensors), longest, *tensors[0].shape[1:]), pad_values.get(key, 0))
        mask = torch.zeros(len(tensors), longest, dtype=torch.bool)
        for row, (tensor, n) in enumerate(zip(tensors, lengths)):
            out[row, :n] = tensor
            mask[row, :n] = True
        batch[key] = out
        is_own_mask = key.endswith("_mask") and key[: -len("_mask")] in features[0]
        if f"{key}_mask" not in features[0] and not is_own_mask:
            batch[f"{key}_mask"] = mask
    return batch
