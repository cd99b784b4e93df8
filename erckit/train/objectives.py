"""What each stage kind optimises. Each objective is an ``nn.Module`` holding only
the modules it trains (so DDP wraps exactly those) and returns a scalar loss;
``predict`` gives per-head class probabilities for dev selection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..components import Distiller, Encoder, Fuser, ModalityOutput
from ..data.batching import Batch
from .frozen import Outputs


def _ce(logits: Tensor, labels: Tensor, weight: Tensor | None) -> Tensor:
    return F.cross_entropy(logits.float(), labels, weight=None if weight is None else weight.to(logits.device))


class SupervisedObjective(nn.Module):
    """Cross-entropy on each trained encoder's own head (losses averaged)."""

    def __init__(self, encoders: Mapping[str, Encoder], class_weight: Tensor | None = None):
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        self.class_weight = class_weight

    def forward(self, batch: Batch) -> Tensor:
        losses = [_ce(enc(batch.features[n]).logits, batch.labels, self.class_weight) for n, enc in self.encoders.items()]
        return torch.stack(losses).mean()

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return {n: enc(batch.features[n]).logits.float().softmax(-1) for n, enc in self.encoders.items()}


class DistillObjective(nn.Module):
    """Students learn from labels (CE) and from the frozen teacher's cached outputs.

    Rows where a student's modality is absent contribute nothing to its loss.
    """

    def __init__(
        self,
        students: Mapping[str, Encoder],
        distillers: Sequence[tuple[float, Distiller]],
        teacher: Outputs,
        ce_weight: float,
        class_weight: Tensor | None = None,
    ):
        super().__init__()
        self.students = nn.ModuleDict(dict(students))
        self.distillers = nn.ModuleList([d for _, d in distillers])
        self.weights = [w for w, _ in distillers]
        self.teacher = teacher  # plain attribute: cached tensors, never trained
        self.ce_weight = ce_weight
        self.class_weight = class_weight

    def forward(self, batch: Batch) -> Tensor:
        device = batch.indices.device if batch.labels is None else batch.labels.device
        teacher = self.teacher.rows(batch.indices, device)
        total = torch.zeros((), device=device)
        for name, student in self.students.items():
            output = student(batch.features[name])
            rows = batch.present[name]
            if not bool(rows.any()):
                total = total + 0.0 * output.logits.sum()  # keep every parameter in the graph (DDP)
                continue
            out, ref = output.select(rows), teacher.select(rows)
            loss = self.ce_weight * _ce(out.logits, batch.labels[rows], self.class_weight)
            for weight, distiller in zip(self.weights, self.distillers):
                loss = loss + weight * distiller(_float(out), _float(ref))
            total = total + loss
        return total / len(self.students)

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return {n: s(batch.features[n]).logits.float().softmax(-1) for n, s in self.students.items()}


def _float(output: ModalityOutput) -> ModalityOutput:
    return ModalityOutput(output.embedding.float(), output.logits.float(), output.mask)


@dataclass
class IndexBatch:
    """A fuse-stage batch: rows of cached encoder outputs."""

    split: str
    indices: Tensor
    labels: Tensor | None

    def to(self, device: torch.device) -> "IndexBatch":
        return IndexBatch(self.split, self.indices, None if self.labels is None else self.labels.to(device))


class FuseObjective(nn.Module):
    """Train the fuser on cached outputs of frozen encoders: an epoch costs only the fuser."""

    def __init__(
        self,
        fuser: Fuser,
        anchor: str,
        outputs: Mapping[str, Mapping[str, Outputs]],  # split -> encoder -> outputs
        class_weight: Tensor | None = None,
    ):
        super().__init__()
        self.fuser = fuser
        self.anchor = anchor
        self.outputs = outputs
        self.class_weight = class_weight

    def logits(self, batch: IndexBatch, device: torch.device) -> Tensor:
        rows = {n: o.rows(batch.indices, device) for n, o in self.outputs[batch.split].items()}
        anchor = rows.pop(self.anchor)
        return self.fuser(anchor, rows)

    def forward(self, batch: IndexBatch) -> Tensor:
        device = batch.labels.device
        return _ce(self.logits(batch, device), batch.labels, self.class_weight)

    def predict(self, batch: IndexBatch) -> dict[str, Tensor]:
        device = next(self.fuser.parameters()).device
        return {"fused": self.logits(batch, device).float().softmax(-1)}
