"""Attention-based modality shifting over per-modality tokens (``erckit.ModalityShift.v1``).

TelME's shifting idea (Yun et al., 2024) generalised to any number of modalities, each its own
token, any of them missing per row. (``telme.ASF.v1`` in the TelME plugin is the authors' own
network: one concatenated token. Until model format 3 ``telme.ASF.v1`` was this fuser; model
directories of formats 1 and 2 load with it.)

The anchor is the teacher's embedding t [B, dim]. The non-verbal embeddings
(audio, visual, ...; each projected to ``dim`` if its size differs) form a
per-sample sequence X [B, M, dim]. Then, per sample::

    A  = dropout(LayerNorm(MHA(X, X, X) + X))        attention over the M tokens of ONE sample
    av = mean of A over the modalities present in this sample
    g  = relu(W_hav [av; t])                          gate, [B, dim]
    h  = g * W_av(av)                                 displacement
    alpha = min(beta_shift * ||t|| / (||h|| + eps), 1)
    z  = LayerNorm(t + alpha * h)
    logits = W(dropout(z))

What differs from the authors' network:

* Each modality is a token and attention runs between a sample's tokens
  (batch_first over [B, M, dim]: rows never mix); the authors concatenate audio
  and visual into one token and their 2-D input to ``nn.MultiheadAttention``
  attends across the mini-batch.
* Missing modalities: absent tokens are zeroed and masked out of attention with
  ``key_padding_mask`` and out of the mean. A row with no non-verbal modality at
  all gets h = 0 (alpha irrelevant), so z = LayerNorm(t): it degrades to the
  teacher. Such rows are not attended over an all-masked key set (which yields
  NaN in PyTorch); they attend over their zero tokens, and the result is discarded.
* alpha is computed in float32 with an epsilon instead of replacing ||h|| = 0 by 1.

The fusion stage trains ASF alone on cached embeddings, where a step costs only
this module, so its forward is written with few tensor ops: the attention is
``SampleAttention`` (``nn.MultiheadAttention``'s weights and state-dict names,
one fused projection and ``scaled_dot_product_attention``, without the general
module's per-call mask conversions and checks).
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..components import Fuser, ModalityOutput
from ..errors import ErckitError

EPS = 1e-6


class SampleAttention(nn.MultiheadAttention):
    """Self-attention over each sample's tokens, x [B, M, dim] -> [B, M, dim].

    ``take_part`` [B, M] bool says which tokens may be attended to (each row needs
    at least one). Same parameters, names and result as
    ``nn.MultiheadAttention(dim, heads, batch_first=True)(x, x, x,
    key_padding_mask=~take_part)`` without dropout.
    """

    def forward(self, x: Tensor, take_part: Tensor) -> Tensor:  # type: ignore[override]
        batch, tokens, dim = x.shape
        heads = self.num_heads
        q, k, v = (
            F.linear(x, self.in_proj_weight, self.in_proj_bias)
            .view(batch, tokens, 3, heads, dim // heads)
            .permute(2, 0, 3, 1, 4)
        )
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=take_part[:, None, None, :])
        return self.out_proj(attended.transpose(1, 2).reshape(batch, tokens, dim))


class ModalityShift(Fuser):
    def __init__(
        self,
        num_classes: int,
        dim: int,
        beta_shift: float,
        heads: int,
        dropout: float,
        input_dims: dict[str, int],
        anchor: str,
    ):
        super().__init__()
        if anchor not in input_dims:
            raise ErckitError(f"erckit.ModalityShift: the anchor {anchor!r} is not among the modalities {list(input_dims)}")
        if input_dims[anchor] != dim:
            raise ErckitError(
                f"erckit.ModalityShift: dim={dim} but the anchor {anchor!r} embeds to {input_dims[anchor]}; set the fuser's "
                f"dim to {input_dims[anchor]} (the shift is added to the teacher embedding itself)"
            )
        if heads < 1 or dim % heads:
            raise ErckitError(f"erckit.ModalityShift: dim {dim} is not divisible by heads {heads}; choose heads dividing {dim}")
        self.others = [name for name in input_dims if name != anchor]
        if not self.others:
            raise ErckitError("erckit.ModalityShift needs at least one modality besides the anchor")
        self.num_classes = num_classes
        self.anchor = anchor
        self.dim = dim
        self.beta_shift = beta_shift
        self.project = nn.ModuleDict(
            {name: nn.Linear(input_dims[name], dim) if input_dims[name] != dim else nn.Identity() for name in self.others}
        )
        self.attention = SampleAttention(dim, heads, dropout=0.0, batch_first=True)
        self.attention_norm = nn.LayerNorm(dim)
        self.W_hav = nn.Linear(2 * dim, dim)
        self.W_av = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(dim, num_classes)

    def tokens(self, batch: int, others: Mapping[str, ModalityOutput], like: Tensor) -> tuple[Tensor, Tensor]:
        """X [B, M, dim] (absent tokens zeroed) and presence [B, M] bool."""
        unknown = set(others) - set(self.others)
        if unknown:
            raise ErckitError(f"erckit.ModalityShift was built for {self.others}, got unexpected modalities {sorted(unknown)}")
        columns, present = [], []
        for name in self.others:
            output = others.get(name)
            if output is None:  # modality not computed at all for this batch
                columns.append(like.new_zeros(batch, self.dim))
                present.append(torch.zeros(batch, dtype=torch.bool, device=like.device))
                continue
            columns.append(self.project[name](output.embedding.to(like.dtype)))
            present.append(output.present().to(like.device))
        mask = torch.stack(present, dim=1)
        return torch.stack(columns, dim=1) * mask.unsqueeze(-1).to(like.dtype), mask

    def shift(self, t: Tensor, x: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """The displacement h [B, dim] and alpha [B, 1] for anchor t and tokens x."""
        any_present = present.any(dim=1, keepdim=True)  # [B, 1]
        # Rows with nothing present attend over their (zero) tokens instead of an
        # all-masked key set; their output is discarded below.
        attended = self.attention(x, present | ~any_present)
        attended = self.dropout(self.attention_norm(attended + x))
        weights = present.unsqueeze(-1).to(attended.dtype)
        av = (attended * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        gate = torch.relu(self.W_hav(torch.cat([av, t], dim=-1)))
        h = gate * self.W_av(av) * any_present.to(av.dtype)
        alpha = self.alpha(t, h)
        return h, alpha

    def alpha(self, t: Tensor, h: Tensor) -> Tensor:
        """min(beta_shift * ||t|| / (||h|| + eps), 1), per row, [B, 1], computed in float32."""
        ratio = self.beta_shift * t.float().norm(dim=-1) / (h.float().norm(dim=-1) + EPS)
        return ratio.clamp(max=1.0).unsqueeze(-1)

    def forward(self, anchor: ModalityOutput, others: Mapping[str, ModalityOutput]) -> Tensor:  # type: ignore[override]
        """anchor.embedding [B, dim] + others' embeddings (masked) -> logits [B, C]."""
        t = anchor.embedding
        x, present = self.tokens(t.shape[0], others, t)
        h, alpha = self.shift(t, x, present)
        z = self.norm(t + (alpha * h.float()).to(t.dtype))
        return self.classifier(self.dropout(z))
