"""Built-in baseline components and their registration. Imports without torch.

Each factory's signature is its recipe schema; the body imports the torch
module from ``erckit.nn`` that implements it. ``num_classes``, ``input_dims``
and ``anchor`` are injected by erckit.
"""

from __future__ import annotations

from typing import Any, Literal

from ..errors import ErckitError
from ..plugins import hookimpl


def _require_dims(name: str, input_dims: dict[str, int] | None) -> dict[str, int]:
    if not input_dims:
        raise ErckitError(f"{name} needs input_dims (injected by erckit: modality -> embedding dim, anchor first)")
    return dict(input_dims)


def concat_fuser(
    num_classes: int,
    input_dims: dict[str, int] | None = None,
    anchor: str = "text",
    hidden: int = 256,
    dropout: float = 0.1,
) -> Any:
    """Early fusion: concatenated embeddings (absent ones zeroed, plus presence flags) -> MLP."""
    from ..nn.fusers import ConcatFuser

    return ConcatFuser(num_classes, _require_dims("erckit.ConcatFuser.v1", input_dims), anchor, hidden, dropout)


def late_fusion(
    num_classes: int,
    input_dims: dict[str, int] | None = None,
    anchor: str = "text",
    weights: dict[str, float] | None = None,
    learnable: bool = True,
) -> Any:
    """Late fusion: weighted average of each modality's logits, renormalised over present modalities.

    weights: modality -> initial weight (default 1). learnable: train them
    (as exp of a parameter); with false the fuser has no parameters to train.
    """
    from ..nn.fusers import LateFusion

    return LateFusion(num_classes, _require_dims("erckit.LateFusion.v1", input_dims), anchor, weights, learnable)


def modality_shift(
    num_classes: int,
    dim: int = 768,
    beta_shift: float = 0.1,
    heads: int = 3,
    dropout: float = 0.2,
    input_dims: dict[str, int] | None = None,
    anchor: str = "text",
) -> Any:
    """Attention-based modality shifting, one token per modality: z = LayerNorm(t + alpha * h) -> Linear.

    dim: the anchor's embedding size (must equal it; other embeddings of another size are
    projected to it). heads must divide dim. Missing modalities are masked per row.
    """
    from ..nn.shift import ModalityShift

    return ModalityShift(num_classes, dim, beta_shift, heads, dropout, _require_dims("erckit.ModalityShift.v1", input_dims), anchor)


def kl_distill(temperature: float = 2.0) -> Any:
    """Hinton KD: T^2 * KL(softmax(teacher/T) || softmax(student/T)), batchmean."""
    from ..nn.distillers import KLDistill

    return KLDistill(temperature)


def log_mel_audio(
    num_classes: int,
    sample_rate: int = 16000,
    n_mels: int = 64,
    dim: int = 128,
    layers: int = 2,
    heads: int = 4,
    max_seconds: float | None = 10.0,
) -> Any:
    """Small audio encoder from scratch: log-mel -> 2 strided convs -> transformer -> masked mean."""
    from ..nn.audio import LogMelAudio

    return LogMelAudio(num_classes, sample_rate, n_mels, dim, layers, heads, max_seconds)


def timm_frames(
    num_classes: int,
    backbone: str = "resnet18",
    pretrained: bool = False,
    frames: int = 8,
    size: int = 112,
    dim: int | None = None,
    pool: Literal["mean", "attention"] = "mean",
) -> Any:
    """Any timm image backbone per frame, timm's normalisation, mean/attention pooling over frames.

    pretrained: load timm's weights (needs them cached when offline). dim:
    project the pooled features to this size (default: the backbone's width).
    """
    from ..nn.visual import TimmFrames

    return TimmFrames(num_classes, backbone, pretrained, frames, size, dim, pool)


def timm_frames_v2(
    num_classes: int,
    backbone: str = "resnet18",
    pretrained: bool = False,
    frames: int = 8,
    size: int | None = None,
    dim: int | None = None,
    pool: Literal["mean", "attention"] = "mean",
) -> Any:
    """Any timm image backbone per frame with the backbone's own preprocessing, mean/attention pooling.

    Each frame goes through timm's evaluation transform for the backbone
    (timm.data.resolve_data_config + create_transform: its input size,
    interpolation, crop fraction, mean/std; resnet18: 224 px bicubic, crop 0.95).
    size: square input size instead of the backbone's (interpolation and crop stay
    the backbone's). pretrained, dim, pool: as erckit.TimmFrames.v1.
    """
    from ..nn.visual import TimmFramesV2

    return TimmFramesV2(num_classes, backbone, pretrained, frames, size, dim, pool)


@hookimpl
def register_components(register: Any) -> None:
    register("fusers", "erckit.ConcatFuser.v1", concat_fuser)
    register("fusers", "erckit.LateFusion.v1", late_fusion)
    register("fusers", "erckit.ModalityShift.v1", modality_shift)
    register("distillers", "erckit.KLDistill.v1", kl_distill)
    register("encoders", "erckit.LogMelAudio.v1", log_mel_audio)
    register("encoders", "erckit.TimmFrames.v1", timm_frames)
    register("encoders", "erckit.TimmFrames.v2", timm_frames_v2)
