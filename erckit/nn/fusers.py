"""Baseline fusers: early (concatenation + MLP) and late (weighted logit average).

Both take the anchor's ``ModalityOutput`` plus the other modalities' (each with a
``mask`` of present rows, or absent from the mapping altogether) and return
logits [B, C]. Both stay finite when every non-anchor modality is absent.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import Tensor, nn

from ..components import Fuser, ModalityOutput
from ..errors import ErckitError


def _gather(
    names: list[str], anchor_name: str, anchor: ModalityOutput, others: Mapping[str, ModalityOutput]
) -> list[ModalityOutput | None]:
    """Outputs in ``names`` order (None for a modality missing from ``others``)."""
    unknown = set(others) - set(names)
    if unknown:
        raise ErckitError(f"fuser built for {names}, got unexpected modalities {sorted(unknown)}")
    return [anchor if name == anchor_name else others.get(name) for name in names]


class ConcatFuser(Fuser):
    """[e_1 * p_1, p_1, e_2 * p_2, p_2, ...] -> Linear -> GELU -> Dropout -> Linear.

    e_m is modality m's embedding and p_m in {0, 1} its presence in that row, so
    an absent modality contributes zeros plus an explicit "absent" flag (the MLP
    can tell a missing modality from a genuinely zero embedding).
    """

    def __init__(self, num_classes: int, input_dims: dict[str, int], anchor: str, hidden: int, dropout: float):
        super().__init__()
        if anchor not in input_dims:
            raise ErckitError(f"anchor {anchor!r} is not among the modalities {list(input_dims)}")
        self.num_classes = num_classes
        self.anchor = anchor
        self.names = list(input_dims)
        self.dims = dict(input_dims)
        width = sum(input_dims.values()) + len(input_dims)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes))

    def forward(self, anchor: ModalityOutput, others: Mapping[str, ModalityOutput]) -> Tensor:  # type: ignore[override]
        """anchor.embedding [B, D_a] + others [B, D_m] (masked) -> logits [B, C]."""
        reference = anchor.embedding
        batch = reference.shape[0]
        parts: list[Tensor] = []
        for name, output in zip(self.names, _gather(self.names, self.anchor, anchor, others)):
            if output is None:
                parts += [reference.new_zeros(batch, self.dims[name]), reference.new_zeros(batch, 1)]
                continue
            present = output.present().to(device=reference.device).unsqueeze(-1).to(reference.dtype)
            parts += [output.embedding.to(reference.dtype) * present, present]
        return self.mlp(torch.cat(parts, dim=-1))


class LateFusion(Fuser):
    """logits = sum_m w_m p_m z_m / sum_m w_m p_m (weights renormalised over present modalities).

    z_m are modality m's own logits, p_m its presence per row, w_m >= 0 its
    weight (default 1 each). With ``learnable`` the weights are trained as
    w_m = exp(theta_m) (initialised to the given weights, which must then be
    > 0); otherwise they are fixed and the fuser has no parameters.
    """

    def __init__(
        self, num_classes: int, input_dims: dict[str, int], anchor: str, weights: dict[str, float] | None, learnable: bool
    ):
        super().__init__()
        self.num_classes = num_classes
        self.anchor = anchor
        self.names = list(input_dims)
        weights = dict(weights or {})
        unknown = set(weights) - set(self.names)
        if unknown:
            raise ErckitError(f"weights name unknown modalities {sorted(unknown)}; modalities: {self.names}")
        initial = [float(weights.get(name, 1.0)) for name in self.names]
        if any(w < 0 for w in initial) or (learnable and any(w <= 0 for w in initial)):
            raise ErckitError(f"weights must be >= 0 (> 0 when learnable), got {dict(zip(self.names, initial))}")
        log_weights = torch.tensor([math.log(w) if w > 0 else -math.inf for w in initial])
        if learnable:
            self.log_weights = nn.Parameter(log_weights)
        else:
            self.register_buffer("log_weights", log_weights)

    def weights(self) -> dict[str, float]:
        """Current (unnormalised) weights by modality."""
        return dict(zip(self.names, self.log_weights.detach().exp().tolist()))

    def forward(self, anchor: ModalityOutput, others: Mapping[str, ModalityOutput]) -> Tensor:  # type: ignore[override]
        """Each modality's logits [B, C] -> their present-weighted average [B, C]."""
        reference = anchor.logits
        batch = reference.shape[0]
        outputs = _gather(self.names, self.anchor, anchor, others)
        weights = self.log_weights.exp()  # exp(-inf) = 0 for fixed zero weights
        numerator = torch.zeros(batch, self.num_classes, device=reference.device, dtype=torch.float32)
        denominator = torch.zeros(batch, 1, device=reference.device, dtype=torch.float32)
        for m, output in enumerate(outputs):
            if output is None:
                continue
            if output.logits.shape[-1] != self.num_classes:
                raise ErckitError(f"{self.names[m]} gives {output.logits.shape[-1]} logits, expected {self.num_classes}")
            w = weights[m] * output.present().to(reference.device).float().unsqueeze(-1)  # [B, 1]
            numerator = numerator + w * output.logits.float()
            denominator = denominator + w
        # A row with no weighted modality present gets zero logits (uniform), never NaN.
        return (numerator / denominator.clamp_min(1e-12)).to(reference.dtype)
