"""erckit.ModalityShift: the shift formula, per-sample attention, missing modalities, precision."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from erckit.components import ModalityOutput
from erckit.errors import ErckitError
from erckit.builtin.components import modality_shift as asf

DIM, C = 12, 5


def build(beta_shift: float = 0.1, heads: int = 3, input_dims: dict[str, int] | None = None, seed: int = 0):
    torch.manual_seed(seed)
    fuser = asf(num_classes=C, dim=DIM, beta_shift=beta_shift, heads=heads, dropout=0.2,
                input_dims=input_dims or {"text": DIM, "audio": DIM, "visual": DIM}, anchor="text")
    return fuser.eval()


def inputs(batch: int, seed: int = 1, audio_mask=None, visual_mask=None):
    g = torch.Generator().manual_seed(seed)
    text = ModalityOutput(torch.randn(batch, DIM, generator=g), torch.randn(batch, C, generator=g))
    others = {
        "audio": ModalityOutput(torch.randn(batch, DIM, generator=g), torch.randn(batch, C, generator=g), audio_mask),
        "visual": ModalityOutput(torch.randn(batch, DIM, generator=g), torch.randn(batch, C, generator=g), visual_mask),
    }
    return text, others


def reference_logits(fuser, t: torch.Tensor, tokens: list[torch.Tensor], beta_shift: float, heads: int) -> torch.Tensor:
    """One sample, written out: t [D], tokens = the PRESENT non-verbal embeddings, each [D]."""
    if not tokens:
        z = F.layer_norm(t, (DIM,), fuser.norm.weight, fuser.norm.bias)
        return fuser.classifier(z)
    x = torch.stack(tokens)  # [M, D]
    att = fuser.attention
    wq, wk, wv = att.in_proj_weight.chunk(3)
    bq, bk, bv = att.in_proj_bias.chunk(3)
    q, k, v = x @ wq.T + bq, x @ wk.T + bk, x @ wv.T + bv
    d = DIM // heads
    heads_out = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = (q[:, sl] @ k[:, sl].T) / math.sqrt(d)
        heads_out.append(torch.softmax(scores, dim=-1) @ v[:, sl])
    attended = torch.cat(heads_out, dim=-1) @ att.out_proj.weight.T + att.out_proj.bias
    a = F.layer_norm(attended + x, (DIM,), fuser.attention_norm.weight, fuser.attention_norm.bias)
    av = a.mean(0)
    gate = torch.relu(fuser.W_hav.weight @ torch.cat([av, t]) + fuser.W_hav.bias)
    h_vec = gate * (fuser.W_av.weight @ av + fuser.W_av.bias)
    alpha = min(beta_shift * t.norm().item() / (h_vec.norm().item() + 1e-6), 1.0)
    z = F.layer_norm(t + alpha * h_vec, (DIM,), fuser.norm.weight, fuser.norm.bias)
    return fuser.classifier(z)


@pytest.mark.parametrize("beta_shift", [0.1, 50.0])  # 50: alpha saturates at 1
def test_logits_match_written_out_formula_with_masks(beta_shift):
    fuser = build(beta_shift=beta_shift)
    audio_mask = torch.tensor([True, True, False, False])
    visual_mask = torch.tensor([True, False, True, False])
    text, others = inputs(4, audio_mask=audio_mask, visual_mask=visual_mask)
    logits = fuser(text, others)
    for row in range(4):
        present = [others[m].embedding[row] for m in ("audio", "visual") if others[m].mask[row]]
        expected = reference_logits(fuser, text.embedding[row], present, beta_shift, heads=3)
        torch.testing.assert_close(logits[row], expected, rtol=1e-5, atol=1e-5)


def test_alpha_is_min_of_ratio_and_one():
    fuser = build(beta_shift=0.1)
    t = torch.tensor([[3.0, 4.0] + [0.0] * (DIM - 2), [30.0, 40.0] + [0.0] * (DIM - 2)])  # ||t|| = 5, 50
    h = torch.tensor([[1.0] + [0.0] * (DIM - 1), [0.0, 2.0] + [0.0] * (DIM - 2)])  # ||h|| = 1, 2
    alpha = fuser.alpha(t, h).squeeze(-1)
    assert alpha[0].item() == pytest.approx(0.1 * 5 / (1 + 1e-6), rel=1e-6)
    assert alpha[1].item() == 1.0  # 0.1 * 50 / 2 = 2.5 -> clipped


def test_prediction_does_not_depend_on_batch_neighbours():
    fuser = build()
    text, others = inputs(6, audio_mask=torch.tensor([True, False, True, True, False, True]))
    together = fuser(text, others)
    for row in range(6):
        alone = fuser(text.select(torch.tensor([row])), {k: v.select(torch.tensor([row])) for k, v in others.items()})
        torch.testing.assert_close(alone[0], together[row], rtol=1e-6, atol=1e-6)
    # and reordering the batch only reorders the outputs
    perm = torch.tensor([5, 3, 1, 0, 2, 4])
    shuffled = fuser(text.select(perm), {k: v.select(perm) for k, v in others.items()})
    torch.testing.assert_close(shuffled, together[perm], rtol=1e-6, atol=1e-6)


def test_absent_modality_values_are_ignored():
    fuser = build()
    mask = torch.tensor([False, True])
    text, others = inputs(2, audio_mask=mask)
    before = fuser(text, others)
    others["audio"] = ModalityOutput(others["audio"].embedding + 100.0, others["audio"].logits, mask)
    after = fuser(text, others)
    torch.testing.assert_close(before[0], after[0])  # row 0 has no audio: unchanged
    assert not torch.allclose(before[1], after[1])


def test_all_missing_degrades_to_teacher_and_is_finite():
    fuser = build()
    none = torch.tensor([False, False, False])
    text, others = inputs(3, audio_mask=none, visual_mask=none)
    logits = fuser(text, others)
    expected = fuser.classifier(fuser.norm(text.embedding))
    torch.testing.assert_close(logits, expected)
    # modalities missing from the mapping altogether behave the same
    torch.testing.assert_close(fuser(text, {}), expected)


def test_zero_vectors_give_finite_logits():
    fuser = build()
    zero = ModalityOutput(torch.zeros(2, DIM), torch.zeros(2, C))
    assert torch.isfinite(fuser(zero, {"audio": zero, "visual": zero})).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_half_precision_finite_with_masks(dtype):
    fuser = build()
    text, others = inputs(4, audio_mask=torch.tensor([True, False, False, True]), visual_mask=torch.tensor([False, False, True, True]))
    with torch.autocast("cpu", dtype=dtype):
        logits = fuser(text, others)
    assert torch.isfinite(logits).all()


def test_training_mode_backward_reaches_attention():
    fuser = build().train()
    text, others = inputs(4, audio_mask=torch.tensor([True, False, True, False]))
    fuser(text, others).sum().backward()
    assert fuser.attention.in_proj_weight.grad.abs().sum() > 0


def test_projects_other_sizes_and_validates_dims():
    fuser = build(input_dims={"text": DIM, "audio": 7, "visual": DIM})
    text, others = inputs(2)
    others["audio"] = ModalityOutput(torch.randn(2, 7), torch.randn(2, C))
    assert fuser(text, others).shape == (2, C)
    with pytest.raises(ErckitError, match="divisible"):
        build(heads=5)
    with pytest.raises(ErckitError, match="anchor"):
        asf(num_classes=C, dim=DIM, heads=3, input_dims={"text": 8, "audio": DIM}, anchor="text")
    with pytest.raises(ErckitError, match="besides the anchor"):
        asf(num_classes=C, dim=DIM, heads=3, input_dims={"text": DIM}, anchor="text")


def test_sample_attention_matches_multihead_attention_with_padding_mask():
    from erckit.nn.shift import SampleAttention

    torch.manual_seed(0)
    lean = SampleAttention(DIM, 2, batch_first=True)
    general = torch.nn.MultiheadAttention(DIM, 2, batch_first=True)
    general.load_state_dict(lean.state_dict())  # same parameter names
    x = torch.randn(5, 3, DIM)
    take_part = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]], dtype=torch.bool)
    expected, _ = general(x, x, x, key_padding_mask=~take_part, need_weights=False)
    torch.testing.assert_close(lean(x, take_part), expected)
