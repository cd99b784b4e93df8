"""Frame-based visual encoder on any timm image backbone, plus reusable frame helpers.

featurize: ``frames`` RGB frames (sampled uniformly over the utterance by the
data pipeline) -> shorter side to ``size``, centre crop -> uint8 [T, 3, S, S]
(uint8 keeps cached features small; scaling happens in forward).
forward: normalise with the backbone's own pretrained config (timm's
``resolve_data_config``: ImageNet statistics for most models) -> backbone per
frame (``num_classes=0``: pooled features [B*T, F]) -> temporal pooling (mean,
or attention: softmax of a learned score per frame) -> optional
``Linear(F, dim)`` -> embedding -> ``Linear(dim, C)``.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..components import Encoder, Features, ModalityOutput
from ..data.types import Sample, VideoSpec
from ..errors import ErckitError


def pick_frames(frames: Tensor, count: int) -> Tensor:
    """Exactly ``count`` frames of [N, ...], sampled uniformly (repeating when N < count)."""
    if frames.shape[0] == count:
        return frames
    index = torch.linspace(0, frames.shape[0] - 1, count).round().long()
    return frames[index]


def resize_and_crop(frames: Tensor, size: int) -> Tensor:
    """uint8 [T, H, W, 3] -> uint8 [T, 3, size, size]: shorter side to ``size`` (bilinear, antialiased), centre crop."""
    video = frames.permute(0, 3, 1, 2).float()
    height, width = video.shape[-2:]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_h, new_w) != (height, width):
        video = F.interpolate(video, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    video = video[..., top : top + size, left : left + size]
    return video.round().clamp(0, 255).to(torch.uint8)


def prepare_frames(sample: Sample, count: int, size: int) -> Tensor:
    """A sample's frames as uint8 [count, 3, size, size], validated (black if the clip is empty)."""
    frames = sample.frames
    if frames is None:
        raise ErckitError(f"sample {sample.key}: no frames (the data pipeline should provide them or a black stand-in)")
    frames = torch.as_tensor(frames)
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ErckitError(f"sample {sample.key}: frames must be uint8 [N, H, W, 3] RGB, got {tuple(frames.shape)} {frames.dtype}")
    if frames.shape[0] == 0:
        frames = torch.zeros(count, size, size, 3, dtype=torch.uint8)
    return resize_and_crop(pick_frames(frames, count), size)


class TimmFrames(Encoder):
    modality = "visual"

    def __init__(
        self,
        num_classes: int,
        backbone: str,
        pretrained: bool,
        frames: int,
        size: int,
        dim: int | None,
        pool: Literal["mean", "attention"],
    ):
        super().__init__()
        import timm
        from timm.data import resolve_data_config

        if frames < 1:
            raise ErckitError(f"frames must be >= 1, got {frames}")
        if pool not in ("mean", "attention"):
            raise ErckitError(f"pool must be 'mean' or 'attention', got {pool!r}")
        try:
            self.backbone = timm.create_model(backbone, pretrained=pretrained, num_classes=0)
        except RuntimeError as error:  # unknown model name
            raise ErckitError(f"timm cannot create {backbone!r}: {error}") from None
        self.backbone_name = backbone
        self.num_classes = num_classes
        self.frames = frames
        self.size = size
        self.media = VideoSpec(num_frames=frames, size=size)
        data_config = resolve_data_config({}, model=self.backbone)
        self.register_buffer("mean", torch.tensor(data_config["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data_config["std"]).view(1, 3, 1, 1), persistent=False)
        features = self.backbone.num_features
        self.pool = pool
        self.score = nn.Linear(features, 1) if pool == "attention" else None
        self.project = nn.Linear(features, dim) if dim is not None else nn.Identity()
        self.dim = dim if dim is not None else features
        self.classifier = nn.Linear(self.dim, num_classes)

    def featurize(self, sample: Sample) -> Features:
        return {"pixels": prepare_frames(sample, self.frames, self.size)}

    def collate(self, features: Sequence[Features]) -> Features:
        return {"pixels": torch.stack([f["pixels"] for f in features])}

    def forward(self, batch: Features) -> ModalityOutput:
        """pixels uint8 [B, T, 3, S, S] -> embedding [B, dim], logits [B, C]."""
        pixels = batch["pixels"]
        b, t = pixels.shape[:2]
        x = (pixels.flatten(0, 1).float() / 255.0 - self.mean) / self.std
        per_frame = self.backbone(x).view(b, t, -1)  # [B, T, F]
        if self.score is None:
            pooled = per_frame.mean(1)
        else:
            weights = self.score(per_frame).softmax(dim=1)  # [B, T, 1]
            pooled = (weights * per_frame).sum(1)
        embedding = self.project(pooled)
        return ModalityOutput(embedding=embedding, logits=self.classifier(embedding))

    def context_window(self) -> int:
        return 1  # the target's own media, never the context

    def fingerprint(self) -> str:
        return f"erckit.TimmFrames:{self.media!r}:crop=center-bilinear-aa"
