"""TelME's visual student: TimeSformer over N RGB frames of the utterance clip.

featurize: ``frames`` RGB frames (the data pipeline samples them uniformly over
the utterance span and delivers RGB; the published code fed OpenCV's BGR as
RGB) -> shorter side resized to the model's image size (bilinear, antialiased)
-> centre crop -> uint8 [T, 3, S, S] (``erckit.data.frames.prepare_frames``, erckit's
public frame helper). Kept as uint8 so cached features are 4x smaller; scaling and
normalisation happen in ``forward``.

Normalisation statistics come from the model's image processor
(``preprocessor_config.json``: image_mean / image_std). A model built from a
config has none; erckit then uses what facebook/timesformer-base-finetuned-k400
ships today, mean 0.45 / std 0.225 per channel (the Kinetics statistics, not
ImageNet's 0.485/0.229), and saves that processor with the model.

forward: TimeSformer -> the CLS token's last hidden state (the embedding,
[B, hidden]) -> ``Linear(hidden, C)`` (the authors' Student_Video).

``preprocessing = "authors"`` instead reads the frames as TelME's authors did
(``authors_video``: OpenCV, their frame choice, BGR kept, transformers 4.27.2's
VideoMAE processor with ImageNet statistics, MELD clips over ``zero_longer_than``
seconds of audio as zeros): the encoder's media is then a ``DecoderSpec`` naming
``authors_video.read_frames_authors``, and featurize returns float ``pixel_values``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from erckit.components import Encoder, Features, ModalityOutput
from erckit.data.frames import prepare_frames
from erckit.data.types import DecoderSpec, Sample, VideoSpec
from erckit.errors import ErckitError
from erckit.hf import load_backbone, load_processor, save_backbone_config

K400_MEAN = (0.45, 0.45, 0.45)
K400_STD = (0.225, 0.225, 0.225)


def _default_processor(size: int, mean: tuple[float, ...] = K400_MEAN, std: tuple[float, ...] = K400_STD):
    def build() -> object:
        from transformers import VideoMAEImageProcessor

        return VideoMAEImageProcessor(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size}, image_mean=list(mean), image_std=list(std)
        )

    return build


class VisualStudent(Encoder):
    modality = "visual"

    def __init__(
        self,
        num_classes: int,
        pretrained: str,
        config: dict | None,
        frames: int,
        preprocessing: str = "erckit",
        zero_longer_than: float | None = None,
        config_overrides: dict | None = None,
    ):
        super().__init__()
        if frames < 1:
            raise ErckitError(f"frames must be >= 1, got {frames}")
        if preprocessing not in ("erckit", "authors"):
            raise ErckitError(f"preprocessing must be 'erckit' or 'authors', got {preprocessing!r}")
        if zero_longer_than is not None and preprocessing != "authors":
            raise ErckitError('zero_longer_than is the authors\' MELD rule: it needs preprocessing = "authors"')
        if zero_longer_than is not None and not zero_longer_than > 0:
            raise ErckitError(f"zero_longer_than must be > 0 seconds, got {zero_longer_than}")
        if preprocessing == "authors":
            from .authors_video import check_extra

            check_extra(zero_longer_than)  # before any weights are loaded
        if config is not None and "num_frames" not in config:
            config = {**config, "num_frames": frames}
        self.num_classes = num_classes
        self.frames = frames
        self.preprocessing = preprocessing
        self.zero_longer_than = zero_longer_than
        self.backbone = load_backbone("AutoModel", pretrained, config, config_overrides)
        self.size = int(self.backbone.config.image_size)
        if preprocessing == "authors":
            from .authors_video import IMAGENET_MEAN, IMAGENET_STD

            options = {"size": self.size, "frames": frames}
            if zero_longer_than is not None:
                options["zero_longer_than"] = float(zero_longer_than)
            self.media = DecoderSpec("visual", "erckit_telme.authors_video:read_frames_authors", tuple(options.items()))
            # Theirs was videomae-base's processor, not the backbone's: saved with the model as a record.
            fallback, source = _default_processor(self.size, IMAGENET_MEAN, IMAGENET_STD), None
        else:
            self.media = VideoSpec(num_frames=frames, size=self.size)
            fallback, source = _default_processor(self.size), None if config is not None else pretrained
        self.processor = load_processor("AutoImageProcessor", source, fallback)
        mean = getattr(self.processor, "image_mean", None) or K400_MEAN
        std = getattr(self.processor, "image_std", None) or K400_STD
        # Buffers, not parameters: part of the module (device moves) but not trained.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 1, 3, 1, 1), persistent=False)
        self.dim = self.backbone.config.hidden_size
        self.classifier = nn.Linear(self.dim, num_classes)

    def featurize(self, sample: Sample) -> Features:
        if self.preprocessing == "authors":
            from .authors_video import pixel_values

            frames = sample.frames if sample.frames is not None else torch.zeros(0)
            return {"pixel_values": pixel_values(torch.as_tensor(frames), self.frames, self.size)}
        return {"pixels": prepare_frames(sample, self.frames, self.size)}

    def collate(self, features: Sequence[Features]) -> Features:
        name = "pixel_values" if self.preprocessing == "authors" else "pixels"
        return {name: torch.stack([f[name] for f in features])}

    def forward(self, batch: Features) -> ModalityOutput:
        """pixels uint8 [B, T, 3, S, S] (or the authors' float pixel_values) -> embedding [B, hidden] (CLS), logits [B, C]."""
        if "pixel_values" in batch:
            pixel_values = batch["pixel_values"].to(self.mean.dtype)
        else:
            pixel_values = (batch["pixels"].float() / 255.0 - self.mean) / self.std
        hidden = self.backbone(pixel_values=pixel_values).last_hidden_state
        cls = hidden[:, 0]
        return ModalityOutput(embedding=cls, logits=self.classifier(cls))

    def context_window(self) -> int:
        return 1  # the target's own media, never the context

    def fingerprint(self) -> str:
        if self.preprocessing == "authors":
            return f"telme.VisualStudent:{self.media!r}:preprocessing=authors:zero_longer_than={self.zero_longer_than}:v1"
        return f"telme.VisualStudent:{self.media!r}:frames={self.frames}:crop=center-bilinear-aa"

    def save_assets(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_backbone_config(self.backbone, directory)
        self.processor.save_pretrained(str(directory))
