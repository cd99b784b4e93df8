"""erckit.LogMelAudio.v1: features, padding invariance, registry build, backward."""

from __future__ import annotations

import pytest
import torch

from erckit import registry
from erckit.data.types import AudioSpec, Sample, Utterance
from erckit.errors import ErckitError


def clip(n: int, seed: int = 0) -> Sample:
    g = torch.Generator().manual_seed(seed)
    return Sample("d", 0, (Utterance("a", "x"),), (1,), audio=torch.randn(n, generator=g))


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return registry.encoders.get("erckit.LogMelAudio.v1")(num_classes=3, n_mels=16, dim=32, heads=2, max_seconds=2.0).eval()


def test_featurize_log_mel_frames(encoder):
    mel = encoder.featurize(clip(16_000))["mel"]
    assert mel.shape == (101, 16)  # 1 s at 10 ms hop (centred windows) x n_mels
    assert encoder.media == AudioSpec(16_000, 2.0)
    assert encoder.featurize(clip(80_000))["mel"].shape[0] == 201  # cut to max_seconds
    assert torch.isfinite(encoder.featurize(clip(0))["mel"]).all()  # empty clip: one silent window
    with pytest.raises(ErckitError):
        encoder.featurize(Sample("d", 0, (Utterance("a", "x"),), (1,)))


def test_padding_does_not_change_a_clip_embedding(encoder):
    features = [encoder.featurize(clip(n, seed=n)) for n in (4_000, 16_000, 9_123)]
    with torch.no_grad():
        together = encoder(encoder.collate(features)).embedding
        for row, f in enumerate(features):
            torch.testing.assert_close(together[row], encoder(encoder.collate([f])).embedding[0], rtol=1e-5, atol=1e-5)


def test_forward_backward_shapes(encoder):
    encoder.train()
    try:
        out = encoder(encoder.collate([encoder.featurize(clip(8_000)), encoder.featurize(clip(3_000))]))
        assert out.embedding.shape == (2, 32) and out.logits.shape == (2, 3)
        out.logits.sum().backward()
        assert encoder.convs[0].weight.grad.abs().sum() > 0
    finally:
        encoder.eval()


def test_heads_must_divide_dim():
    with pytest.raises(ErckitError, match="divisible"):
        registry.encoders.get("erckit.LogMelAudio.v1")(num_classes=3, dim=30, heads=4)
