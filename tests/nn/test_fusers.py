"""Baseline fusers: formulas on fixed tensors, masks, registry builds, backward."""

from __future__ import annotations

import math

import pytest
import torch

from erckit import registry
from erckit.components import ModalityOutput
from erckit.errors import ErckitError

DIMS = {"text": 4, "audio": 3, "visual": 2}


def outputs(batch: int = 3, audio_mask=None, visual_mask=None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    text = ModalityOutput(torch.randn(batch, 4, generator=g), torch.randn(batch, 5, generator=g))
    others = {
        "audio": ModalityOutput(torch.randn(batch, 3, generator=g), torch.randn(batch, 5, generator=g), audio_mask),
        "visual": ModalityOutput(torch.randn(batch, 2, generator=g), torch.randn(batch, 5, generator=g), visual_mask),
    }
    return text, others


def concat(**kwargs):
    torch.manual_seed(0)
    return registry.fusers.get("erckit.ConcatFuser.v1")(num_classes=5, input_dims=DIMS, anchor="text", **kwargs).eval()


def late(**kwargs):
    return registry.fusers.get("erckit.LateFusion.v1")(num_classes=5, input_dims=DIMS, anchor="text", **kwargs)


def test_concat_input_is_masked_embeddings_with_presence_flags():
    fuser = concat(hidden=8, dropout=0.0)
    mask = torch.tensor([True, False, True])
    text, others = outputs(audio_mask=mask)
    seen = {}
    fuser.mlp[0].register_forward_pre_hook(lambda module, args: seen.update(x=args[0]))
    fuser(text, others)
    x = seen["x"]
    assert x.shape == (3, 4 + 1 + 3 + 1 + 2 + 1)
    row1 = torch.cat([text.embedding[1], torch.ones(1), torch.zeros(3), torch.zeros(1), others["visual"].embedding[1], torch.ones(1)])
    torch.testing.assert_close(x[1], row1)
    torch.testing.assert_close(x[0, 5:8], others["audio"].embedding[0])


def test_concat_ignores_absent_values_and_is_finite_when_all_absent():
    fuser = concat()
    none = torch.tensor([False, False, False])
    text, others = outputs(audio_mask=none, visual_mask=none)
    before = fuser(text, others)
    others["audio"] = ModalityOutput(others["audio"].embedding * 1e3, others["audio"].logits, none)
    torch.testing.assert_close(before, fuser(text, others))
    torch.testing.assert_close(before, fuser(text, {}))  # modalities missing from the mapping
    assert torch.isfinite(before).all()


def test_concat_backward():
    fuser = concat().train()
    text, others = outputs()
    torch.nn.functional.cross_entropy(fuser(text, others), torch.tensor([0, 1, 2])).backward()
    assert fuser.mlp[0].weight.grad.abs().sum() > 0


def test_late_fusion_weighted_average_renormalised_per_row():
    fuser = late(weights={"text": 2.0, "audio": 1.0, "visual": 0.5}, learnable=False)
    mask_a, mask_v = torch.tensor([True, False, False]), torch.tensor([True, True, False])
    text, others = outputs(audio_mask=mask_a, visual_mask=mask_v)
    logits = fuser(text, others)
    zt, za, zv = text.logits, others["audio"].logits, others["visual"].logits
    expected = torch.stack([
        (2 * zt[0] + 1 * za[0] + 0.5 * zv[0]) / 3.5,
        (2 * zt[1] + 0.5 * zv[1]) / 2.5,
        zt[2],
    ])
    torch.testing.assert_close(logits, expected)
    assert list(fuser.parameters()) == []


def test_late_fusion_learnable_weights_get_gradients_and_start_at_given_values():
    fuser = late(weights={"audio": 3.0})
    assert fuser.weights() == pytest.approx({"text": 1.0, "audio": 3.0, "visual": 1.0})
    assert fuser.log_weights.tolist() == pytest.approx([0.0, math.log(3.0), 0.0])
    text, others = outputs()
    torch.nn.functional.cross_entropy(fuser(text, others), torch.tensor([0, 1, 2])).backward()
    assert fuser.log_weights.grad.abs().sum() > 0


def test_late_fusion_no_present_weight_gives_zeros_not_nan():
    fuser = late(weights={"text": 0.0}, learnable=False)
    none = torch.tensor([False, False, False])
    text, others = outputs(audio_mask=none, visual_mask=none)
    logits = fuser(text, others)
    assert torch.equal(logits, torch.zeros(3, 5))


def test_late_fusion_validates_weights():
    with pytest.raises(ErckitError, match="unknown modalities"):
        late(weights={"speech": 1.0})
    with pytest.raises(ErckitError, match="> 0 when learnable"):
        late(weights={"text": 0.0}, learnable=True)
