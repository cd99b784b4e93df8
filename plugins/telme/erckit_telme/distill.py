"""TelME's two distillation losses, student vs. a detached teacher on the same rows.

ResponseKD (DIST, Huang et al. 2022) matches *relations* between probability
vectors rather than the vectors themselves:

    p_s = softmax(z_s / tau),  p_t = softmax(z_t / tau)              [B, C]
    inter = 1 - mean_b pearson(p_s[b, :], p_t[b, :])                  (rows)
    intra = 1 - mean_c pearson(p_s[:, c], p_t[:, c])                  (columns)
    loss  = tau^2 * (beta * inter + gamma * intra)

FeatureKD makes the student reproduce the teacher's similarity structure:

    T = normalize(teacher embedding), S = normalize(student embedding)  [B, D]
    target     = softmax(T T^T / t, dim=1)
    prediction = log_softmax(T S^T / t, dim=1)
    loss       = KL(target || prediction), summed over columns, averaged over rows

Both are computed in float32 whatever the autocast dtype: softmax relations and
Pearson denominators are where half precision loses accuracy.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from erckit.components import Distiller, ModalityOutput
from erckit.errors import ErckitError


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``: [N, K] -> [N]."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


class ResponseKD(Distiller):
    def __init__(self, tau: float, beta: float, gamma: float):
        super().__init__()
        if tau <= 0:
            raise ErckitError(f"tau must be > 0, got {tau}")
        self.tau, self.beta, self.gamma = tau, beta, gamma

    def forward(self, student: ModalityOutput, teacher: ModalityOutput) -> Tensor:  # type: ignore[override]
        p_s = (student.logits.float() / self.tau).softmax(dim=1)
        p_t = (teacher.logits.float() / self.tau).softmax(dim=1)
        inter = 1 - pearson_rows(p_s, p_t).mean()
        intra = 1 - pearson_rows(p_s.T, p_t.T).mean()
        return self.tau**2 * (self.beta * inter + self.gamma * intra)


class FeatureKD(Distiller):
    def __init__(self, temperature: float):
        super().__init__()
        if temperature <= 0:
            raise ErckitError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, student: ModalityOutput, teacher: ModalityOutput) -> Tensor:  # type: ignore[override]
        s, t = student.embedding.float(), teacher.embedding.float()
        if s.shape[1] != t.shape[1]:
            raise ErckitError(
                f"telme.FeatureKD compares embeddings directly, but the student's has {s.shape[1]} dims and the "
                f"teacher's {t.shape[1]}. Make them equal: set the teacher's embedding_dim to the student's hidden "
                "size (TelME: 768 for both)."
            )
        s, t = F.normalize(s, dim=1), F.normalize(t, dim=1)
        target = (t @ t.T / self.temperature).softmax(dim=1)
        prediction = (t @ s.T / self.temperature).log_softmax(dim=1)
        return F.kl_div(prediction, target, reduction="batchmean")
