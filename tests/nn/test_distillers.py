"""erckit.KLDistill.v1 against a written-out KL divergence."""

from __future__ import annotations

import pytest
import torch

from erckit import registry
from erckit.components import ModalityOutput
from erckit.errors import ErckitError


def out(logits: torch.Tensor) -> ModalityOutput:
    return ModalityOutput(torch.zeros(logits.shape[0], 1), logits)


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_kl_distill_formula(T):
    s = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.1]])
    t = torch.tensor([[0.2, 0.3, -0.4], [3.0, -1.0, 0.0]])
    loss = registry.distillers.get("erckit.KLDistill.v1")(temperature=T)(out(s), out(t))
    expected = 0.0
    for i in range(2):
        p = torch.softmax(t[i] / T, 0).double()
        q = torch.softmax(s[i] / T, 0).double()
        expected += float((p * (p / q).log()).sum())
    assert loss.item() == pytest.approx(T * T * expected / 2, rel=1e-5)


def test_kl_distill_zero_on_agreement_and_gradient_flows_to_student():
    kd = registry.distillers.get("erckit.KLDistill.v1")()
    t = torch.randn(4, 5)
    assert kd(out(t), out(t)).item() == pytest.approx(0.0, abs=1e-6)
    s = torch.randn(4, 5, requires_grad=True)
    kd(out(s), out(t)).backward()
    assert s.grad.abs().sum() > 0
    with pytest.raises(ErckitError):
        registry.distillers.get("erckit.KLDistill.v1")(temperature=0.0)
