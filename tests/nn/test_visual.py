"""erckit.TimmFrames.v1 on timm's tiny test models: preprocessing, pooling, registry, backward."""

from __future__ import annotations

import pytest
import torch

from erckit import registry
from erckit.data.types import Sample, Utterance, VideoSpec
from erckit.nn.visual import pick_frames, resize_and_crop


def video(n: int = 5, h: int = 48, w: int = 64, seed: int = 0) -> Sample:
    g = torch.Generator().manual_seed(seed)
    frames = torch.randint(0, 256, (n, h, w, 3), dtype=torch.uint8, generator=g)
    return Sample("d", 0, (Utterance("a", "x"),), (1,), frames=frames)


def build(**kwargs):
    torch.manual_seed(0)
    args = dict(num_classes=3, backbone="test_resnet", frames=3, size=32)
    return registry.encoders.get("erckit.TimmFrames.v1")(**{**args, **kwargs}).eval()


def test_frame_helpers():
    frames = torch.arange(5).view(5, 1, 1, 1).expand(5, 2, 2, 3).to(torch.uint8)
    assert pick_frames(frames, 3)[:, 0, 0, 0].tolist() == [0, 2, 4]
    assert pick_frames(frames[:2], 4)[:, 0, 0, 0].tolist() == [0, 0, 1, 1]
    wide = torch.zeros(1, 10, 20, 3, dtype=torch.uint8)
    wide[:, :, 5:15] = 200  # the centre half is bright: a centre crop keeps only it
    out = resize_and_crop(wide, 10)
    assert out.shape == (1, 3, 10, 10) and (out == 200).all()


def test_featurize_and_normalisation_from_timm_config():
    enc = build()
    import timm
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=timm.create_model("test_resnet", num_classes=0))
    assert enc.mean.flatten().tolist() == pytest.approx(list(config["mean"]))
    assert enc.media == VideoSpec(num_frames=3, size=32)
    pixels = enc.featurize(video())["pixels"]
    assert pixels.shape == (3, 3, 32, 32) and pixels.dtype == torch.uint8


def test_mean_pooling_is_the_mean_of_per_frame_features():
    enc = build()
    pixels = enc.featurize(video())["pixels"]
    with torch.no_grad():
        out = enc(enc.collate([{"pixels": pixels}]))
        x = (pixels.float() / 255 - enc.mean) / enc.std
        torch.testing.assert_close(out.embedding[0], enc.backbone(x).mean(0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pool", ["mean", "attention"])
def test_forward_backward_with_projection(pool):
    enc = build(pool=pool, dim=8).train()
    out = enc(enc.collate([enc.featurize(video(seed=1)), enc.featurize(video(n=2, seed=2))]))
    assert out.embedding.shape == (2, 8) and out.logits.shape == (2, 3) and enc.dim == 8
    out.logits.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.backbone.parameters())
    if pool == "attention":
        assert enc.score.weight.grad is not None
