"""The trainable modules of the built-in stage kinds (``erckit.train.kinds``).

Each holds only the modules it trains (so DDP wraps exactly those), returns the
scalar loss from ``forward(batch)`` and per-head class probabilities from
``predict(batch)`` for dev selection. The loss itself is the stage's registered
objective (cross-entropy unless the recipe says otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from ..components import Distiller, Encoder, Fuser, ModalityOutput, Objective
from ..data.batching import Batch
from .frozen import Outputs


def _float(output: ModalityOutput) -> ModalityOutput:
    return ModalityOutput(output.embedding.float(), output.logits.float(), output.mask)


class SupervisedModule(nn.Module):
    """The objective on each trained encoder's own head (losses averaged)."""

    def __init__(self, encoders: Mapping[str, Encoder], objective: Objective):
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        self.objective = objective

    def forward(self, batch: Batch) -> Tensor:
        losses = [self.objective(_float(enc(batch.features[n])), batch.labels, {}) for n, enc in self.encoders.items()]
        return torch.stack(losses).mean()

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return {n: enc(batch.features[n]).logits.float().softmax(-1) for n, enc in self.encoders.items()}


class DistillModule(nn.Module):
    """Students learn from labels (the objective) and from frozen teachers' cached outputs.

    Rows where a student's modality is absent contribute nothing to its loss.
    """

    def __init__(
        self,
        students: Mapping[str, Encoder],
        objective: Objective,
        distillers: Sequence[tuple[float, str, Distiller]],  # (weight, teacher name, loss)
        teachers: Mapping[str, Outputs],
        ce_weight: float,
    ):
        super().__init__()
        self.students = nn.ModuleDict(dict(students))
        self.objective = objective
        self.distillers = nn.ModuleList([d for _, _, d in distillers])
        self.weights = [w for w, _, _ in distillers]
        self.distilled_from = [t for _, t, _ in distillers]
        self.teachers = dict(teachers)  # plain attribute: cached tensors, never trained
        self.ce_weight = ce_weight

    def forward(self, batch: Batch) -> Tensor:
        device = batch.labels.device
        teachers = {n: o.rows(batch.indices, device) for n, o in self.teachers.items()}
        total = torch.zeros((), device=device)
        for name, student in self.students.items():
            output = student(batch.features[name])
            rows = batch.present[name]
            if not bool(rows.any()):
                total = total + 0.0 * output.logits.sum()  # keep every parameter in the graph (DDP)
                continue
            out = _float(output.select(rows))
            refs = {n: _float(t.select(rows)) for n, t in teachers.items()}
            loss = self.ce_weight * self.objective(out, batch.labels[rows], refs)
            for weight, teacher, distiller in zip(self.weights, self.distilled_from, self.distillers):
                loss = loss + weight * distiller(out, refs[teacher])
            total = total + loss
        return total / len(self.students)

    def predict(self, batch: Batch) -> dict[str, Tensor]:
        return {n: s(batch.features[n]).logits.float().softmax(-1) for n, s in self.students.items()}


@dataclass
class IndexBatch:
    """A batch of rows of cached encoder outputs."""

    split: str
    indices: Tensor
    labels: Tensor | None

    def to(self, device: torch.device) -> "IndexBatch":
        return IndexBatch(self.split, self.indices, None if self.labels is None else self.labels.to(device))


class FuseModule(nn.Module):
    """Train the fuser on cached outputs of frozen encoders."""

    def __init__(
        self,
        fuser: Fuser,
        anchor: str,
        outputs: Mapping[str, Mapping[str, Outputs]],  # split -> encoder -> outputs
        objective: Objective,
    ):
        super().__init__()
        self.fuser = fuser
        self.anchor = anchor
        self.outputs = outputs
        self.objective = objective

    def fused(self, batch: IndexBatch, device: torch.device) -> ModalityOutput:
        rows = {n: o.rows(batch.indices, device) for n, o in self.outputs[batch.split].items()}
        anchor = rows.pop(self.anchor)
        return ModalityOutput(anchor.embedding, self.fuser(anchor, rows).float())

    def forward(self, batch: IndexBatch) -> Tensor:
        return self.objective(self.fused(batch, batch.labels.device), batch.labels, {})

    def predict(self, batch: IndexBatch) -> dict[str, Tensor]:
        device = next(self.fuser.parameters()).device
        return {"fused": self.fused(batch, device).logits.softmax(-1)}
