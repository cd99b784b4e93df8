"""TelME's fusion as its authors built it: attention-based modality shifting (ASF).

The anchor is the teacher's embedding t [B, dim]. The non-verbal embeddings are
concatenated into ONE token per sample, in ``order`` (the authors' training
scripts pass audio first: nv = [audio; visual], 1536-d for two 768-d students)::

    a  = dropout(AV_LayerNorm(MHA(nv, nv, nv) + nv))      [B, nv_dim]
    g  = relu(W_hav [a; t])                               W_hav: Linear(nv_dim + dim, dim)
    h  = g * W_av(a)                                      W_av:  Linear(nv_dim, dim)
    alpha = min(beta_shift * ||t|| / (||h|| + eps), 1)    (||h|| = 0 counts as 1, as theirs does)
    z  = dropout(LayerNorm(t + alpha * h))
    logits = W(z)                                         W: Linear(dim, C)

Parameter names and shapes are those of the authors' ``model.py`` (``multihead_attn``,
``AV_LayerNorm``, ``W_hav``, ``W_av``, ``LayerNorm``, ``W``), so their released
``total_fusion.bin`` loads as it is: 12.4M parameters at dim 768, 3 heads.

The one intended deviation: the authors feed 2-D input [B, nv_dim] to
``nn.MultiheadAttention``, which reads it as an unbatched sequence of B tokens,
so every sample attends to its mini-batch neighbours and a prediction depends
on what else is in the batch. Here each sample attends over its own single
token. Softmax over one key is 1, so that attention is exactly
``out_proj(v_proj(nv))``, which is what the authors' network computes for a
batch of one; that is what this module computes for every row.

A missing modality (absent from the batch, or masked in a row) is its slice of
the token set to zeros, the rest computed as usual.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from erckit.components import Fuser, ModalityOutput
from erckit.errors import ErckitError

EPS = 1e-6


class ASF(Fuser):
    def __init__(
        self,
        num_classes: int,
        dim: int,
        beta_shift: float,
        heads: int,
        dropout: float,
        input_dims: Mapping[str, int],
        anchor: str,
        order: Sequence[str] | None = None,
    ):
        super().__init__()
        if anchor not in input_dims:
            raise ErckitError(f"telme.ASF: the anchor {anchor!r} is not among the modalities {list(input_dims)}")
        if input_dims[anchor] != dim:
            raise ErckitError(
                f"telme.ASF: dim={dim} but the anchor {anchor!r} embeds to {input_dims[anchor]}; set the fuser's "
                f"dim to {input_dims[anchor]} (the shift is added to the teacher embedding itself)"
            )
        others = [name for name in input_dims if name != anchor]
        if order is not None:
            if sorted(order) != sorted(others):
                raise ErckitError(
                    f"telme.ASF: order {list(order)} must name each non-anchor modality once: {others}"
                )
            others = list(order)
        if not others:
            raise ErckitError("telme.ASF needs at least one modality besides the anchor")
        nv_dim = sum(input_dims[name] for name in others)
        if heads < 1 or nv_dim % heads:
            raise ErckitError(
                f"telme.ASF: the concatenated token has {nv_dim} dims ({' + '.join(f'{n} {input_dims[n]}' for n in others)}), "
                f"not divisible by heads {heads}; choose heads dividing {nv_dim}"
            )
        self.num_classes = num_classes
        self.anchor = anchor
        self.dim = dim
        self.beta_shift = beta_shift
        self.others = others
        self.slices = {}
        start = 0
        for name in others:
            self.slices[name] = slice(start, start + input_dims[name])
            start += input_dims[name]
        self.nv_dim = nv_dim
        self.multihead_attn = nn.MultiheadAttention(nv_dim, heads)
        self.W_hav = nn.Linear(nv_dim + dim, dim)
        self.W_av = nn.Linear(nv_dim, dim)
        self.LayerNorm = nn.LayerNorm(dim)
        self.AV_LayerNorm = nn.LayerNorm(nv_dim)
        self.dropout = nn.Dropout(dropout)
        self.W = nn.Linear(dim, num_classes)

    def token(self, batch: int, others: Mapping[str, ModalityOutput], like: Tensor) -> Tensor:
        """nv [B, nv_dim]: the non-verbal embeddings side by side, a missing one's slice zero."""
        unknown = set(others) - set(self.others)
        if unknown:
            raise ErckitError(f"telme.ASF was built for {self.others}, got unexpected modalities {sorted(unknown)}")
        parts = []
        for name in self.others:
            width = self.slices[name].stop - self.slices[name].start
            output = others.get(name)
            if output is None:
                parts.append(like.new_zeros(batch, width))
                continue
            present = output.present().to(like.device).unsqueeze(-1)
            parts.append(output.embedding.to(like.dtype) * present.to(like.dtype))
        return torch.cat(parts, dim=-1)

    def attend(self, nv: Tensor) -> Tensor:
        """Each row's self-attention over its one token: out_proj(v_proj(nv))."""
        attention = self.multihead_attn
        value_weight = attention.in_proj_weight[2 * self.nv_dim :]
        value_bias = attention.in_proj_bias[2 * self.nv_dim :]
        return attention.out_proj(F.linear(nv, value_weight, value_bias))

    def alpha(self, t: Tensor, h: Tensor) -> Tensor:
        """min(beta_shift * ||t|| / (||h|| + eps), 1) per row, [B, 1], in float32 (||h|| = 0 read as 1)."""
        h_norm = h.float().norm(dim=-1)
        h_norm = torch.where(h_norm == 0, torch.ones_like(h_norm), h_norm)
        ratio = self.beta_shift * t.float().norm(dim=-1) / (h_norm + EPS)
        return ratio.clamp(max=1.0).unsqueeze(-1)

    def forward(self, anchor: ModalityOutput, others: Mapping[str, ModalityOutput]) -> Tensor:  # type: ignore[override]
        """anchor.embedding [B, dim] + the others' embeddings -> logits [B, C]."""
        t = anchor.embedding
        nv = self.token(t.shape[0], others, t)
        a = self.dropout(self.AV_LayerNorm(self.attend(nv) + nv))
        gate = torch.relu(self.W_hav(torch.cat([a, t], dim=-1)))
        h = gate * self.W_av(a)
        shifted = t + (self.alpha(t, h) * h.float()).to(t.dtype)
        return self.W(self.dropout(self.LayerNorm(shifted)))
