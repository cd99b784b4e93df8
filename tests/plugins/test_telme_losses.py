"""TelME distillation losses pinned against direct, independently written computations."""

from __future__ import annotations

import pytest
import torch

from erckit.components import ModalityOutput
from erckit.errors import ErckitError
from erckit_telme.plugin import feature_kd, response_kd

STUDENT_LOGITS = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, 0.4], [-2.0, 1.0, 3.0, 0.5]])
TEACHER_LOGITS = torch.tensor([[1.5, 1.0, -0.5, 0.2], [0.4, -0.3, 0.8, 0.1], [-1.0, 0.0, 2.0, 2.5]])


def out(logits: torch.Tensor | None = None, embedding: torch.Tensor | None = None) -> ModalityOutput:
    logits = logits if logits is not None else torch.zeros(embedding.shape[0], 2)
    embedding = embedding if embedding is not None else torch.zeros(logits.shape[0], 2)
    return ModalityOutput(embedding=embedding, logits=logits)


def expected_dist(zs: torch.Tensor, zt: torch.Tensor, tau: float, beta: float, gamma: float) -> float:
    ps, pt = torch.softmax(zs / tau, 1).double(), torch.softmax(zt / tau, 1).double()
    rows = [torch.corrcoef(torch.stack([ps[i], pt[i]]))[0, 1] for i in range(ps.shape[0])]
    cols = [torch.corrcoef(torch.stack([ps[:, j], pt[:, j]]))[0, 1] for j in range(ps.shape[1])]
    inter = 1 - sum(rows) / len(rows)
    intra = 1 - sum(cols) / len(cols)
    return float(tau**2 * (beta * inter + gamma * intra))


@pytest.mark.parametrize("tau,beta,gamma", [(4.0, 1.0, 1.0), (2.0, 0.5, 2.0), (1.0, 1.0, 0.0)])
def test_response_kd_matches_direct_pearson(tau, beta, gamma):
    loss = response_kd(tau=tau, beta=beta, gamma=gamma)(out(STUDENT_LOGITS), out(TEACHER_LOGITS))
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected_dist(STUDENT_LOGITS, TEACHER_LOGITS, tau, beta, gamma), rel=1e-5)


def test_response_kd_zero_for_identical_and_gradient_to_student_only():
    kd = response_kd(tau=4.0)
    # Not exactly 0: the Pearson denominator carries DIST's eps (1e-8) and near-uniform p has tiny spread.
    assert kd(out(TEACHER_LOGITS), out(TEACHER_LOGITS)).item() == pytest.approx(0.0, abs=1e-3)
    student = STUDENT_LOGITS.clone().requires_grad_()
    teacher = TEACHER_LOGITS.clone().requires_grad_()
    loss = kd(out(student), out(teacher).detach())
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_response_kd_finite_in_half_precision_and_single_row():
    kd = response_kd(tau=4.0)
    assert torch.isfinite(kd(out(STUDENT_LOGITS.half()), out(TEACHER_LOGITS.bfloat16())))
    assert torch.isfinite(kd(out(STUDENT_LOGITS[:1]), out(TEACHER_LOGITS[:1])))


def expected_feature_kd(s: torch.Tensor, t: torch.Tensor, temperature: float) -> float:
    s, t = s.double(), t.double()
    n = s.shape[0]
    total = 0.0
    for i in range(n):
        ti = t[i] / t[i].norm()
        target_scores = torch.tensor([float(ti @ (t[j] / t[j].norm())) / temperature for j in range(n)], dtype=torch.float64)
        pred_scores = torch.tensor([float(ti @ (s[j] / s[j].norm())) / temperature for j in range(n)], dtype=torch.float64)
        target = target_scores.exp() / target_scores.exp().sum()
        log_pred = pred_scores - pred_scores.exp().sum().log()
        total += float((target * (target.log() - log_pred)).sum())
    return total / n


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_feature_kd_matches_direct_kl(temperature):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g) * 3
    loss = feature_kd(temperature=temperature)(out(embedding=s), out(embedding=t))
    assert loss.item() == pytest.approx(expected_feature_kd(s, t, temperature), rel=1e-5)


def test_feature_kd_zero_when_student_equals_teacher_up_to_scale():
    t = torch.randn(4, 8)
    assert feature_kd()(out(embedding=2.5 * t), out(embedding=t)).item() == pytest.approx(0.0, abs=1e-6)


def test_feature_kd_rejects_mismatched_dims_clearly():
    with pytest.raises(ErckitError, match="embedding_dim"):
        feature_kd()(out(embedding=torch.randn(3, 4)), out(embedding=torch.randn(3, 8)))


def test_invalid_temperatures_rejected():
    with pytest.raises(ErckitError):
        response_kd(tau=0.0)
    with pytest.raises(ErckitError):
        feature_kd(temperature=-1.0)
