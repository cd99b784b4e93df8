"""erckit.TimmFrames.v1 and .v2 on timm's tiny test models: preprocessing, pooling, registry, backward."""

from __future__ import annotations

import pytest
import torch

from erckit import registry
from erckit.data.types import Sample, Utterance, VideoSpec
from erckit.data.frames import pick_frames, resize_and_crop


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


# What erckit.TimmFrames.v1 computed before v2 existed (erckit 04c9224), frames=2, size=4, on
# frames [3, 6, 9, 3] filled with (i * 37) % 256: a published v1 never changes these numbers.
V1_PIXELS = [
    160, 121, 94, 116, 124, 86, 154, 153, 98, 97, 165, 127, 135, 157, 130, 91, 108, 140, 131, 121, 161, 123, 96, 143,
    125, 87, 108, 145, 108, 140, 167, 128, 91, 113, 115, 158, 151, 150, 133, 123, 162, 124, 97, 115, 127, 88, 151, 155,
    116, 77, 193, 154, 109, 136, 157, 119, 149, 148, 121, 83, 123, 113, 104, 136, 153, 114, 87, 109, 121, 94, 147, 146,
    107, 169, 158, 120, 128, 150, 123, 84, 190, 151, 124, 114, 154, 116, 105, 139, 118, 80, 180, 153, 101, 133, 160, 121,
]


def pattern(n: int = 3, h: int = 6, w: int = 9) -> Sample:
    frames = (torch.arange(n * h * w * 3) * 37 % 256).to(torch.uint8).view(n, h, w, 3)
    return Sample("d", 0, (Utterance("a", "x"),), (1,), frames=frames)


def test_v1_preprocessing_is_unchanged():
    enc = registry.encoders.get("erckit.TimmFrames.v1")(num_classes=2, backbone="test_resnet", frames=2, size=4)
    pixels = enc.featurize(pattern())["pixels"]
    assert pixels.shape == (2, 3, 4, 4) and pixels.flatten().tolist() == V1_PIXELS
    assert enc.media == VideoSpec(num_frames=2, size=4)
    assert enc.fingerprint() == "erckit.TimmFrames:VideoSpec(num_frames=2, size=4):crop=center-bilinear-aa"
    default = registry.encoders.get("erckit.TimmFrames.v1")(num_classes=2, backbone="test_resnet")
    assert default.media == VideoSpec(num_frames=8, size=112)


def timm_eval(backbone: str, **overrides):
    """timm's own evaluation transform for ``backbone``, normalised, and its data config."""
    import timm
    from timm.data import create_transform, resolve_data_config

    config = resolve_data_config(overrides, model=timm.create_model(backbone, num_classes=0))
    return create_transform(**config), config


def frames_as_timm_sees_them(enc, sample: Sample, transform) -> torch.Tensor:
    from PIL import Image

    return torch.stack([transform(Image.fromarray(f.numpy())) for f in pick_frames(sample.frames, enc.frames)])


def test_v2_applies_the_backbones_own_transform():
    v2 = registry.encoders.get("erckit.TimmFrames.v2")(num_classes=3, backbone="test_resnet", frames=2)
    transform, config = timm_eval("test_resnet")
    # test_resnet: 160 px, bilinear, crop 0.95 -> shorter side to floor(160 / 0.95) = 168, centre crop 160
    assert config["input_size"] == (3, 160, 160) and config["crop_pct"] == 0.95
    assert v2.media == VideoSpec(num_frames=2, size=168)
    sample = pattern(h=168, w=200)
    pixels = v2.featurize(sample)["pixels"]
    assert pixels.shape == (2, 3, 160, 160) and pixels.dtype == torch.uint8
    normalised = (pixels.float() / 255 - v2.mean) / v2.std  # what forward feeds the backbone
    torch.testing.assert_close(normalised, frames_as_timm_sees_them(v2, sample, transform), rtol=0, atol=1e-5)


def test_v2_takes_resnet18s_bicubic_crop_and_an_explicit_size_overrides_only_the_size():
    v2 = registry.encoders.get("erckit.TimmFrames.v2")(num_classes=3, backbone="resnet18", frames=1)
    assert v2.data_config["interpolation"] == "bicubic" and v2.input_size == (224, 224)
    assert v2.media == VideoSpec(num_frames=1, size=235)  # floor(224 / 0.95)
    small = registry.encoders.get("erckit.TimmFrames.v2")(num_classes=3, backbone="resnet18", frames=1, size=112)
    assert small.input_size == (112, 112) and small.media == VideoSpec(num_frames=1, size=117)
    transform, config = timm_eval("resnet18", input_size=(3, 112, 112))
    assert config["interpolation"] == "bicubic" and config["crop_pct"] == 0.95
    sample = pattern(n=1, h=90, w=150)  # smaller than the resize size: timm upsamples, bicubic
    normalised = (small.featurize(sample)["pixels"].float() / 255 - small.mean) / small.std
    torch.testing.assert_close(normalised, frames_as_timm_sees_them(small, sample, transform), rtol=0, atol=1e-5)
    v1 = registry.encoders.get("erckit.TimmFrames.v1")(num_classes=3, backbone="resnet18", frames=1, size=112)
    assert len({v1.fingerprint(), small.fingerprint(), v2.fingerprint()}) == 3  # distinct cache keys
    assert "bicubic" in small.fingerprint() and "bicubic" not in v1.fingerprint()


def test_v2_trains_and_pools_like_v1():
    torch.manual_seed(0)
    v2 = registry.encoders.get("erckit.TimmFrames.v2")(num_classes=3, backbone="test_resnet", frames=2, size=32, dim=8).train()
    empty = Sample("d", 1, (Utterance("a", "x"),), (1,), frames=torch.zeros(0, 10, 10, 3, dtype=torch.uint8))
    features = [v2.featurize(pattern(h=40, w=48)), v2.featurize(empty)]
    assert features[1]["pixels"].shape == (2, 3, 32, 32) and not features[1]["pixels"].any()  # black, as v1
    out = v2(v2.collate(features))
    assert out.embedding.shape == (2, 8) and out.logits.shape == (2, 3)
    out.logits.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in v2.backbone.parameters())
