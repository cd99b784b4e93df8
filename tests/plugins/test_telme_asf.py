"""telme.ASF.v1 is the authors' fusion network: their parameters, their forward, computed per sample."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from erckit.components import ModalityOutput
from erckit.errors import ErckitError
from erckit_telme.plugin import asf

C = 5


class AuthorsASF(nn.Module):
    """A transcription of the authors' MELD/model.py ASF (dims as arguments, CPU instead of .cuda())."""

    def __init__(self, cls_num, text_dim, visual_dim, acoustic_dim, beta_shift, dropout_prob, num_head):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(visual_dim + acoustic_dim, num_head)
        self.W_hav = nn.Linear(visual_dim + acoustic_dim + text_dim, text_dim)
        self.W_av = nn.Linear(visual_dim + acoustic_dim, text_dim)
        self.beta_shift = beta_shift
        self.LayerNorm = nn.LayerNorm(text_dim)
        self.AV_LayerNorm = nn.LayerNorm(visual_dim + acoustic_dim)
        self.dropout = nn.Dropout(dropout_prob)
        self.W = nn.Linear(text_dim, cls_num)

    def forward(self, text_embedding, visual, acoustic):
        eps = 1e-6
        nv_embedd = torch.cat((visual, acoustic), dim=-1)
        new_nv = self.multihead_attn(nv_embedd, nv_embedd, nv_embedd)[0] + nv_embedd
        av_embedd = self.dropout(self.AV_LayerNorm(new_nv))
        weight_av = F.relu(self.W_hav(torch.cat((av_embedd, text_embedding), dim=-1)))
        h_m = weight_av * self.W_av(av_embedd)
        em_norm = text_embedding.norm(2, dim=-1)
        hm_norm = h_m.norm(2, dim=-1)
        hm_norm = torch.where(hm_norm == 0, torch.ones(hm_norm.shape), hm_norm)
        thresh_hold = (em_norm / (hm_norm + eps)) * self.beta_shift
        alpha = torch.min(thresh_hold, torch.ones(thresh_hold.shape)).unsqueeze(dim=-1)
        embedding_output = self.dropout(self.LayerNorm(alpha * h_m + text_embedding))
        return self.W(embedding_output)


def authors_and_erckit(dim=16, audio=16, visual=16, heads=4, beta_shift=0.1, seed=0):
    torch.manual_seed(seed)
    # Their fusion.py calls fusion(text, audio, video) on forward(text, visual, acoustic): audio comes first.
    authors = AuthorsASF(C, dim, audio, visual, beta_shift, 0.2, heads).eval()
    ours = asf(num_classes=C, dim=dim, beta_shift=beta_shift, heads=heads, dropout=0.2,
               input_dims={"text": dim, "audio": audio, "visual": visual}, anchor="text").eval()
    ours.load_state_dict(authors.state_dict(), strict=True)  # the same names and shapes
    return authors, ours


def embeddings(batch, dim=16, audio=16, visual=16, seed=1, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(batch, dim, generator=g) * scale
    a = torch.randn(batch, audio, generator=g) * scale
    v = torch.randn(batch, visual, generator=g) * scale
    return t, a, v


def wrap(t, a, v, audio_mask=None, visual_mask=None):
    logits = torch.zeros(t.shape[0], C)
    return ModalityOutput(t, logits), {"audio": ModalityOutput(a, logits, audio_mask), "visual": ModalityOutput(v, logits, visual_mask)}


@pytest.mark.parametrize("beta_shift", [0.1, 50.0])  # 50: alpha saturates at 1
@pytest.mark.parametrize("batch", [1, 4])
def test_logits_equal_the_authors_network_at_batch_one(batch, beta_shift):
    authors, ours = authors_and_erckit(beta_shift=beta_shift)
    t, a, v = embeddings(batch)
    anchor, others = wrap(t, a, v)
    with torch.no_grad():
        got = ours(anchor, others)
        for row in range(batch):
            expected = authors(t[row : row + 1], a[row : row + 1], v[row : row + 1])
            assert (got[row] - expected[0]).abs().max().item() <= 1e-5


def test_the_authors_network_mixes_a_batch_and_erckit_does_not():
    authors, ours = authors_and_erckit()
    t, a, v = embeddings(4)
    anchor, others = wrap(t, a, v)
    with torch.no_grad():
        mixed = authors(t, a, v)
        alone = torch.cat([authors(t[i : i + 1], a[i : i + 1], v[i : i + 1]) for i in range(4)])
        ours_batched = ours(anchor, others)
    assert (mixed - alone).abs().max().item() > 1e-4  # their prediction depends on the neighbours
    assert (ours_batched - alone).abs().max().item() <= 1e-5


def test_released_sizes_have_the_authors_parameter_count():
    fuser = asf(num_classes=7, input_dims={"text": 768, "audio": 768, "visual": 768})
    shapes = {name: tuple(p.shape) for name, p in fuser.state_dict().items()}
    assert shapes["multihead_attn.in_proj_weight"] == (3 * 1536, 1536)
    assert shapes["W_hav.weight"] == (768, 2304) and shapes["W_av.weight"] == (768, 1536)
    assert shapes["AV_LayerNorm.weight"] == (1536,) and shapes["LayerNorm.weight"] == (768,)
    assert shapes["W.weight"] == (7, 768)
    total = sum(p.numel() for p in fuser.parameters())
    assert 12_350_000 < total < 12_450_000, total


def test_a_missing_modality_is_its_slice_of_zeros():
    authors, ours = authors_and_erckit()
    t, a, v = embeddings(3)
    mask = torch.tensor([True, False, True])
    anchor, others = wrap(t, a + 100.0 * (~mask).unsqueeze(-1), v, audio_mask=mask)
    with torch.no_grad():
        got = ours(anchor, others)
        expected = authors(t[1:2], torch.zeros(1, 16), v[1:2])  # row 1: audio absent -> zeros
        assert (got[1] - expected[0]).abs().max().item() <= 1e-5
        # absent from the batch altogether: the same zeros
        only_visual = ours(anchor, {"visual": others["visual"]})
        assert (only_visual[1] - expected[0]).abs().max().item() <= 1e-5
        assert torch.isfinite(ours(anchor, {})).all()


def test_order_decides_which_modality_fills_the_first_slice():
    torch.manual_seed(0)
    dims = {"text": 16, "visual": 8, "audio": 24}  # the encoders listed visual first
    default = asf(num_classes=C, dim=16, heads=4, input_dims=dims, anchor="text")
    explicit = asf(num_classes=C, dim=16, heads=4, order=["audio", "visual"], input_dims=dims, anchor="text")
    assert default.others == ["visual", "audio"] and explicit.others == ["audio", "visual"]
    assert explicit.slices["audio"] == slice(0, 24)
    with pytest.raises(ErckitError, match="order"):
        asf(num_classes=C, dim=16, heads=4, order=["audio"], input_dims=dims, anchor="text")


def test_bad_dimensions_are_refused_with_the_fix():
    with pytest.raises(ErckitError, match="divisible by heads 5"):
        asf(num_classes=C, dim=16, heads=5, input_dims={"text": 16, "audio": 16, "visual": 16}, anchor="text")
    with pytest.raises(ErckitError, match="set the fuser's dim to 8"):
        asf(num_classes=C, dim=16, heads=4, input_dims={"text": 8, "audio": 16}, anchor="text")
    with pytest.raises(ErckitError, match="besides the anchor"):
        asf(num_classes=C, dim=16, heads=4, input_dims={"text": 16}, anchor="text")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_half_precision_is_finite(dtype):
    _, ours = authors_and_erckit()
    anchor, others = wrap(*embeddings(4), audio_mask=torch.tensor([True, False, False, True]))
    with torch.autocast("cpu", dtype=dtype):
        assert torch.isfinite(ours(anchor, others)).all()


def test_training_reaches_the_attention_weights():
    _, ours = authors_and_erckit()
    ours.train()
    anchor, others = wrap(*embeddings(4))
    ours(anchor, others).sum().backward()
    assert ours.multihead_attn.in_proj_weight.grad[2 * 32 :].abs().sum() > 0  # the value projection
    assert ours.multihead_attn.out_proj.weight.grad.abs().sum() > 0
