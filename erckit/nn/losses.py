"""Built-in training objectives: cross-entropy (plain, class-weighted, label-smoothed) and focal loss.

Each is an ``erckit.components.Objective`` on one head's logits; the factories in
``erckit.builtin.training`` check their arguments and build them. Losses are
computed in float32 whatever the autocast precision of the logits.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..components import ModalityOutput, Objective


def balanced_class_weights(class_counts: Sequence[int]) -> Tensor:
    """Weight of class c = sum(counts) / (num_classes * max(count_c, 1)), float32.

    The formula (and its float32 arithmetic) of the stage option ``class_weights = true``,
    so a recipe moving to ``erckit.WeightedCrossEntropy.v1`` keeps its figures. On the
    training examples these weights average 1; a class absent from training gets the
    weight of a class seen once.
    """
    counts = torch.tensor(list(class_counts), dtype=torch.float32)
    return counts.sum() / (len(class_counts) * counts.clamp(min=1))


def normalised_class_weights(weights: Tensor, class_counts: Sequence[int]) -> Tensor:
    """``weights`` rescaled to average 1 over the training examples: sum_c count_c w_c = sum_c count_c.

    Only the weights' ratios then matter, and a loss that averages over rows (focal loss)
    keeps the scale of its unweighted version on the training distribution. Computed in
    float64, returned as float32.
    """
    counts = torch.tensor(list(class_counts), dtype=torch.float64)
    weights64 = weights.to(torch.float64)
    return (weights64 * counts.sum() / (weights64 * counts).sum()).float()


class CrossEntropy(Objective):
    """``F.cross_entropy`` with optional class weights and label smoothing.

    With weights the mean is weighted (divided by the sum of the rows' label weights), as
    in PyTorch: only the ratios of the weights matter.
    """

    def __init__(self, weight: Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = float(label_smoothing)
        # Not persistent: the weights come from the recipe and the training counts, not from a checkpoint.
        self.register_buffer("weight", None if weight is None else weight.float(), persistent=False)

    def forward(  # type: ignore[override]
        self, output: ModalityOutput, labels: Tensor, teachers: Mapping[str, ModalityOutput] | None = None
    ) -> Tensor:
        logits = output.logits.float()
        weight = None if self.weight is None else self.weight.to(logits.device)
        return F.cross_entropy(logits, labels, weight=weight, label_smoothing=self.label_smoothing)

    def extra_repr(self) -> str:
        return f"weighted={self.weight is not None}, label_smoothing={self.label_smoothing}"


class FocalLoss(Objective):
    """Focal loss (Lin et al., 2017), multi-class: mean over rows of -alpha_y (1 - p_y)^gamma log p_y.

    p = softmax(logits). ``alpha`` ([C] or None) is used as given (the factory
    normalises it); the mean is a plain mean over rows (Lin et al. normalise by the
    number of examples, not by the sum of alpha). With label smoothing eps the one-hot
    target becomes q = (1 - eps) one_hot(y) + eps / C and the row loss
    sum_c q_c alpha_c (1 - p_c)^gamma (-log p_c), so gamma 0 without alpha is exactly
    PyTorch's label-smoothed cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, alpha: Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        self.register_buffer("alpha", None if alpha is None else alpha.float(), persistent=False)

    def forward(  # type: ignore[override]
        self, output: ModalityOutput, labels: Tensor, teachers: Mapping[str, ModalityOutput] | None = None
    ) -> Tensor:
        logits = output.logits.float()
        if self.gamma == 0.0 and self.alpha is None:
            # Focal loss without focusing or weighting is cross-entropy: compute it as PyTorch
            # does, so the two agree to the last bit.
            return F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        log_p = F.log_softmax(logits, dim=-1)
        # (1 - p)^gamma from log p: 1 - exp(log p) loses nothing where p is small, and
        # clamping keeps a p rounded above 1 from giving NaN under a fractional power.
        focus = (-torch.expm1(log_p)).clamp(min=0.0).pow(self.gamma)
        per_class = -log_p * focus
        if self.alpha is not None:
            per_class = per_class * self.alpha.to(logits.device)
        if self.label_smoothing == 0.0:
            per_row = per_class.gather(1, labels.unsqueeze(1)).squeeze(1)
        else:
            classes = logits.shape[-1]
            target = torch.full_like(per_class, self.label_smoothing / classes)
            target.scatter_add_(1, labels.unsqueeze(1), torch.full_like(per_class[:, :1], 1.0 - self.label_smoothing))
            per_row = (target * per_class).sum(dim=1)
        return per_row.mean()

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, alpha={self.alpha is not None}, label_smoothing={self.label_smoothing}"
