"""A small, CPU-friendly audio encoder trained from scratch: log-mel + conv + transformer.

featurize (data-loader workers): mono audio at ``sample_rate`` -> log-mel
spectrogram [frames, n_mels] (25 ms windows, 10 ms hop), cut to ``max_seconds``.
forward: two stride-2 convolutions (40 ms per step) -> sinusoidal positions ->
``layers`` pre-norm transformer layers -> mean over real steps -> embedding
[B, dim] -> ``Linear(dim, C)``.

Padding never leaks into a clip's embedding: padded steps are zeroed after each
convolution (so they look like the conv's own zero padding), masked in
attention, and excluded from the mean.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from ..components import Encoder, Features, ModalityOutput
from ..data.types import AudioSpec, Sample
from ..errors import ErckitError


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> Tensor:
    """[length, dim] sine/cosine positions (Vaswani et al.)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return table


class LogMelAudio(Encoder):
    modality = "audio"

    def __init__(
        self, num_classes: int, sample_rate: int, n_mels: int, dim: int, layers: int, heads: int, max_seconds: float | None
    ):
        super().__init__()
        import torchaudio

        if dim % heads:
            raise ErckitError(f"dim {dim} is not divisible by heads {heads}")
        self.num_classes = num_classes
        self.dim = dim
        self.media = AudioSpec(sample_rate, max_seconds)
        self.n_fft = int(0.025 * sample_rate)
        self.hop = int(0.010 * sample_rate)
        self.melspec = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=self.n_fft, hop_length=self.hop, n_mels=n_mels
        )
        self.convs = nn.ModuleList(
            [nn.Conv1d(n_mels, dim, kernel_size=3, stride=2, padding=1), nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)]
        )
        self.input_norm = nn.LayerNorm(n_mels)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, num_classes)

    def featurize(self, sample: Sample) -> Features:
        if sample.audio is None:
            raise ErckitError(f"sample {sample.key}: no audio (the data pipeline should provide it or a silent stand-in)")
        audio = torch.as_tensor(sample.audio, dtype=torch.float32).reshape(-1)
        if self.media.max_seconds is not None:
            audio = audio[: int(self.media.max_seconds * self.media.sample_rate)]
        if audio.shape[0] < self.n_fft:  # at least one full window
            audio = torch.nn.functional.pad(audio, (0, self.n_fft - audio.shape[0]))
        with torch.no_grad():
            mel = self.melspec(audio)  # [n_mels, frames]
        return {"mel": torch.log(mel + 1e-6).T.contiguous()}

    def collate(self, features: Sequence[Features]) -> Features:
        lengths = torch.tensor([f["mel"].shape[0] for f in features])
        mel = torch.zeros(len(features), int(lengths.max()), features[0]["mel"].shape[1])
        for row, f in enumerate(features):
            mel[row, : lengths[row]] = f["mel"]
        return {"mel": mel, "lengths": lengths}

    def length(self, features: Features) -> int:
        return int(features["mel"].shape[0])

    def forward(self, batch: Features) -> ModalityOutput:
        """mel [B, F, n_mels], lengths [B] -> embedding [B, dim], logits [B, C]."""
        x = self.input_norm(batch["mel"]).transpose(1, 2)  # [B, n_mels, F]
        lengths = batch["lengths"].to(x.device)
        for conv in self.convs:
            x = torch.nn.functional.gelu(conv(x))
            lengths = torch.div(lengths - 1, 2, rounding_mode="floor") + 1  # kernel 3, stride 2, padding 1
            real = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]
            x = x * real[:, None, :].to(x.dtype)
        x = x.transpose(1, 2)  # [B, steps, dim]
        x = x + sinusoidal_positions(x.shape[1], self.dim, x.device).to(x.dtype)
        x = self.norm(self.encoder(x, src_key_padding_mask=~real))
        weights = real.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return ModalityOutput(embedding=pooled, logits=self.classifier(pooled))

    def context_window(self) -> int:
        return 1  # the target's own media, never the context

    def fingerprint(self) -> str:
        return f"erckit.LogMelAudio:{self.media!r}:mels={self.melspec.n_mels}:fft={self.n_fft}:hop={self.hop}"
