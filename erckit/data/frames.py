"""Frame helpers for visual encoders (public: plugins may import them).

The data pipeline delivers a sample's frames as ``sample.frames``: uint8
``[N, H, W, 3]`` RGB, N sampled uniformly over the utterance span, the shorter
side already resized to the encoder's ``VideoSpec.size``. A visual encoder's
``featurize`` usually needs exactly ``count`` frames at a fixed square size:

    >>> pixels = prepare_frames(sample, count=8, size=224)   # uint8 [8, 3, 224, 224]

``prepare_frames`` validates the frames, picks ``count`` of them
(``pick_frames``) and resizes the shorter side to ``size`` with antialiased
bilinear interpolation, then centre-crops (``resize_and_crop``). The output
stays uint8 so batches are small; scale and normalise in ``forward``. These
functions are part of erckit's plugin API: their results never change for the
same input (``erckit.TimmFrames.v1`` and ``telme.VisualStudent.v1`` depend on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ErckitError

if TYPE_CHECKING:
    from torch import Tensor

    from .types import Sample


def pick_frames(frames: "Tensor", count: int) -> "Tensor":
    """Exactly ``count`` frames of [N, ...], sampled uniformly (repeating when N < count)."""
    import torch

    if frames.shape[0] == count:
        return frames
    index = torch.linspace(0, frames.shape[0] - 1, count).round().long()
    return frames[index]


def resize_and_crop(frames: "Tensor", size: int) -> "Tensor":
    """uint8 [T, H, W, 3] -> uint8 [T, 3, size, size]: shorter side to ``size`` (bilinear, antialiased), centre crop."""
    import torch
    import torch.nn.functional as F

    video = frames.permute(0, 3, 1, 2).float()
    height, width = video.shape[-2:]
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    if (new_h, new_w) != (height, width):
        video = F.interpolate(video, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    video = video[..., top : top + size, left : left + size]
    return video.round().clamp(0, 255).to(torch.uint8)


def checked_frames(sample: "Sample") -> "Tensor":
    """The sample's frames as a uint8 [N, H, W, 3] tensor, or an ``ErckitError`` naming the sample."""
    import torch

    frames = sample.frames
    if frames is None:
        raise ErckitError(f"sample {sample.key}: no frames (the data pipeline should provide them or a black stand-in)")
    frames = torch.as_tensor(frames)
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
        raise ErckitError(f"sample {sample.key}: frames must be uint8 [N, H, W, 3] RGB, got {tuple(frames.shape)} {frames.dtype}")
    return frames


def prepare_frames(sample: "Sample", count: int, size: int) -> "Tensor":
    """A sample's frames as uint8 [count, 3, size, size], validated (black if the clip is empty)."""
    import torch

    frames = checked_frames(sample)
    if frames.shape[0] == 0:
        frames = torch.zeros(count, size, size, 3, dtype=torch.uint8)
    return resize_and_crop(pick_frames(frames, count), size)


__all__ = ["checked_frames", "pick_frames", "prepare_frames", "resize_and_crop"]
