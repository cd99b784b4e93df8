"""Frame-based visual encoders on any timm image backbone.

``erckit.TimmFrames.v1`` (``TimmFrames``), kept exactly as published:
featurize: ``frames`` RGB frames (sampled uniformly over the utterance by the
data pipeline) -> shorter side to ``size`` (antialiased bilinear), centre crop
-> uint8 [T, 3, S, S] (``erckit.data.frames.prepare_frames``).

``erckit.TimmFrames.v2`` (``TimmFramesV2``): the backbone's own evaluation
preprocessing. ``timm.data.resolve_data_config`` gives the model's input size,
interpolation, crop fraction and crop mode (resnet18: 224 px, bicubic, crop
0.95), ``timm.data.create_transform`` builds its transform (resize the shorter
side to ``floor(size / crop_pct)``, centre crop ``size``), applied to each frame
as a PIL image, as timm applies it to its own evaluation images. An explicit
``size`` replaces only the input size. The pipeline decodes frames with the
shorter side already at the transform's resize size, so what it caches is no
larger than needed.

Both keep features uint8 (small batches from loader workers; the v2 transform
is built with ``normalize=False``, timm's prefetcher form) and, in forward,
normalise with the backbone's mean/std -> backbone per frame (``num_classes=0``:
pooled features [B*T, F]) -> temporal pooling (mean, or attention: softmax of a
learned score per frame) -> optional ``Linear(F, dim)`` -> embedding ->
``Linear(dim, C)``.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import nn

from ..components import Encoder, Features, ModalityOutput
from ..data.frames import checked_frames, pick_frames, prepare_frames, resize_and_crop
from ..data.types import Sample, VideoSpec
from ..errors import ErckitError

# Re-exported: older plugins imported the frame helpers from here; erckit.data.frames is their public home.
__all__ = ["TimmFrames", "TimmFramesV2", "pick_frames", "prepare_frames", "resize_and_crop"]


class TimmFrames(Encoder):
    """``erckit.TimmFrames.v1``: frames resized to ``size`` (bilinear, no crop margin), timm's mean/std."""

    modality = "visual"

    def __init__(
        self,
        num_classes: int,
        backbone: str,
        pretrained: bool,
        frames: int,
        size: int | None,
        dim: int | None,
        pool: Literal["mean", "attention"],
    ):
        super().__init__()
        import timm

        if frames < 1:
            raise ErckitError(f"frames must be >= 1, got {frames}")
        if pool not in ("mean", "attention"):
            raise ErckitError(f"pool must be 'mean' or 'attention', got {pool!r}")
        if size is not None and size < 1:
            raise ErckitError(f"size must be >= 1, got {size}")
        try:
            self.backbone = timm.create_model(backbone, pretrained=pretrained, num_classes=0)
        except RuntimeError as error:  # unknown model name
            raise ErckitError(f"timm cannot create {backbone!r}: {error}") from None
        self.backbone_name = backbone
        self.num_classes = num_classes
        self.frames = frames
        data_config = self._preprocessing(size)
        self.register_buffer("mean", torch.tensor(data_config["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data_config["std"]).view(1, 3, 1, 1), persistent=False)
        features = self.backbone.num_features
        self.pool = pool
        self.score = nn.Linear(features, 1) if pool == "attention" else None
        self.project = nn.Linear(features, dim) if dim is not None else nn.Identity()
        self.dim = dim if dim is not None else features
        self.classifier = nn.Linear(self.dim, num_classes)

    def _preprocessing(self, size: int | None) -> dict[str, Any]:
        """Set ``size`` and ``media``; return timm's data config (its mean/std normalise in forward)."""
        from timm.data import resolve_data_config

        if size is None:
            raise ErckitError("erckit.TimmFrames.v1 needs a size")
        self.size = size
        self.media = VideoSpec(num_frames=self.frames, size=size)
        return resolve_data_config({}, model=self.backbone)

    def featurize(self, sample: Sample) -> Features:
        return {"pixels": prepare_frames(sample, self.frames, self.size)}

    def collate(self, features: Sequence[Features]) -> Features:
        return {"pixels": torch.stack([f["pixels"] for f in features])}

    def forward(self, batch: Features) -> ModalityOutput:
        """pixels uint8 [B, T, 3, H, W] -> embedding [B, dim], logits [B, C]."""
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


class TimmFramesV2(TimmFrames):
    """``erckit.TimmFrames.v2``: each frame through the backbone's own timm evaluation transform."""

    def _preprocessing(self, size: int | None) -> dict[str, Any]:
        from timm.data import create_transform, resolve_data_config

        overrides = {} if size is None else {"input_size": (3, size, size)}
        data_config = resolve_data_config(overrides, model=self.backbone)
        # uint8 out (timm's prefetcher form): forward normalises with the same mean/std.
        self.transform = create_transform(**data_config, is_training=False, normalize=False)
        self.data_config = data_config
        self.input_size = tuple(int(n) for n in data_config["input_size"][1:])  # (height, width)
        self.size = max(self.input_size)
        self.media = VideoSpec(num_frames=self.frames, size=_resize_size(self.transform, self.input_size))
        return data_config

    def featurize(self, sample: Sample) -> Features:
        from PIL import Image

        frames = checked_frames(sample)
        if frames.shape[0] == 0:  # an empty clip: black frames, as v1
            side = self.media.size or self.size
            frames = torch.zeros(self.frames, side, side, 3, dtype=torch.uint8)
        picked = pick_frames(frames, self.frames)
        pixels = [self.transform(Image.fromarray(frame.numpy())) for frame in picked]
        return {"pixels": torch.stack(pixels)}

    def fingerprint(self) -> str:
        steps = " | ".join(repr(step) for step in self.transform.transforms)
        return f"erckit.TimmFrames.v2:{self.media!r}:{steps}"


def _resize_size(transform: Any, input_size: tuple[int, int]) -> int:
    """The shorter side the pipeline should decode frames to: what timm's first resize step targets.

    ``Resize(int)`` (centre-crop mode) resizes the shorter side; a sized step with a
    (height, width) target (squash or border mode, non-square inputs) gets its larger
    side, so the pipeline never delivers fewer pixels than the transform uses.
    """
    for step in transform.transforms:
        if type(step).__name__.startswith("Resize"):
            size = getattr(step, "size", None)
            if isinstance(size, int):
                return size
            if isinstance(size, (list, tuple)) and size:
                return max(int(n) for n in size)
    return max(input_size)
