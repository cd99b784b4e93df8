"""TelME's audio student: a wav2vec2-family encoder (data2vec-audio) on 16 kHz audio.

featurize: the mono 16 kHz waveform (``AudioSpec(16000, max_seconds)``; the
data pipeline decodes and resamples it, never at a mismatched rate), normalised
as the model's feature extractor does (zero mean, unit variance per clip when
``do_normalize``).

forward: the backbone with an attention mask over real samples, then a mean over
the *real* output frames only (frame counts from the model's own conv
arithmetic, ``_get_feat_extract_output_lengths``), so padding a batch never
changes a clip's embedding. The published code averaged over zero-padded frames
with no mask.

One more leak is closed: data2vec-audio's positional embedding is a stack of
"same"-padded convolutions over time. HF zeroes padded frames only before the
first one, so from the second on, padding garbage reaches the last real frames
(measured: 2e-2 on a tiny model). Forward hooks zero the padded frames after
every layer of that stack, which makes a padded batch compute exactly what each
clip computes alone (the conv's own zero padding at the clip's end). embedding = the pooled hidden state [B, hidden];
logits = ``Linear(hidden, C)``. ``pooling = "frame0"`` takes the first output
frame instead (the authors' ``last_hidden_state[:, 0]``).

``preprocessing = "authors"`` feeds what the TelME authors' released student was
trained on (MELD/utils.py ``get_audio`` and ``make_batchs``): the clip as
``librosa.load`` reads it, mono float32 at 22,050 Hz (``authors_media``, an own
``DecoderSpec``), given to the feature extractor as if it were 16 kHz, exactly
their ``processor(audio, sampling_rate=16000)`` (float32 numpy), and the last
400,000 values kept. A clip over ``zero_longer_than`` seconds (their MELD rule:
30, measured at 22,050 Hz) and an absent clip (media policy "zero") become their
stand-in, 1,412 zeros, unnormalised. Each clip is computed as it is alone (their
left zero padding without a mask made frame 0 a padding frame for all but the
longest clip of a batch): at batch 1 both are the same computation, the mask
being all ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import numpy as np

import torch
from torch import Tensor, nn

from erckit.components import Encoder, Features, ModalityOutput
from erckit.data.types import AudioSpec, DecoderSpec, Sample
from erckit.errors import ErckitError
from erckit.hf import load_backbone, load_processor, save_backbone_config

SAMPLE_RATE = 16_000
AUTHORS_MAX_VALUES = 400_000  # make_batchs: audio_input[-max_length:]
AUTHORS_STAND_IN = 1_412  # make_batchs: torch.zeros([1412]) for a clip over 30 s
PREPROCESSINGS = ("erckit", "authors")
POOLINGS = ("mean", "frame0")


def _default_extractor() -> object:
    # What data2vec-audio-base-960h ships: 16 kHz, zero-mean/unit-var, attention mask.
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=SAMPLE_RATE, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )


def normalize_waveform(audio: Tensor) -> Tensor:
    """HF's ``zero_mean_unit_var_norm`` for one clip: (x - mean) / sqrt(var + 1e-7)."""
    audio = audio.double()  # HF computes this in numpy float64
    return ((audio - audio.mean()) / torch.sqrt(audio.var(unbiased=False) + 1e-7)).float()


class AudioStudent(Encoder):
    modality = "audio"

    def __init__(
        self,
        num_classes: int,
        pretrained: str,
        config: dict | None,
        max_seconds: float | None,
        preprocessing: Literal["erckit", "authors"] = "erckit",
        pooling: Literal["mean", "frame0"] = "mean",
        zero_longer_than: float | None = None,
        config_overrides: dict | None = None,
    ):
        super().__init__()
        if preprocessing not in PREPROCESSINGS:
            raise ErckitError(f"preprocessing must be one of {', '.join(PREPROCESSINGS)}; got {preprocessing!r}")
        if pooling not in POOLINGS:
            raise ErckitError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        if zero_longer_than is not None and zero_longer_than <= 0:
            raise ErckitError(f"zero_longer_than must be a positive number of seconds; got {zero_longer_than!r}")
        self.num_classes = num_classes
        self.preprocessing = preprocessing
        self.pooling = pooling
        self.zero_longer_than = zero_longer_than
        self.max_seconds = max_seconds
        if preprocessing == "authors":
            from .authors_media import AUTHORS_RATE, READ_AUDIO, librosa_module

            if max_seconds is not None:
                raise ErckitError('max_seconds does not apply to preprocessing = "authors" (it keeps the last 400,000 values)')
            librosa_module()  # the extra is needed by the decoder: say so now, not in a DataLoader worker
            self.media = DecoderSpec("audio", READ_AUDIO)
            self.decoded_rate = AUTHORS_RATE
        else:
            self.media = AudioSpec(SAMPLE_RATE, max_seconds)
            self.decoded_rate = SAMPLE_RATE
        self.backbone = load_backbone("AutoModel", pretrained, config, config_overrides)
        if not hasattr(self.backbone, "_get_feat_extract_output_lengths"):
            raise ErckitError(
                f"telme.AudioStudent needs a waveform encoder of the wav2vec2 family (data2vec-audio, wav2vec2, "
                f"HuBERT, WavLM); {type(self.backbone).__name__} is not one"
            )
        self.extractor = load_processor("AutoFeatureExtractor", None if config is not None else pretrained, _default_extractor)
        rate = getattr(self.extractor, "sampling_rate", SAMPLE_RATE)
        if rate != SAMPLE_RATE:
            raise ErckitError(f"{pretrained!r} expects {rate} Hz audio; telme.AudioStudent feeds {SAMPLE_RATE} Hz")
        self.normalize = bool(getattr(self.extractor, "do_normalize", True))
        # HF's rule: models whose conv stack has no per-step norm were trained on
        # zero-padded batches without a mask and must not get one.
        self.use_attention_mask = bool(getattr(self.extractor, "return_attention_mask", True))
        self.dim = self.backbone.config.hidden_size
        self.classifier = nn.Linear(self.dim, num_classes)
        self.min_samples = self._receptive_field()
        self._frame_mask: Tensor | None = None  # [B, frames], set during forward for the hooks
        positional = getattr(getattr(self.backbone, "encoder", None), "pos_conv_embed", None)
        for layer in getattr(positional, "layers", ()):
            layer.register_forward_hook(self._zero_padded_frames)

    def _zero_padded_frames(self, module: nn.Module, inputs: object, output: Tensor) -> Tensor:
        # output: [B, hidden, frames]
        if self._frame_mask is None:
            return output
        return output * self._frame_mask[:, None, :].to(output.dtype)

    def _receptive_field(self) -> int:
        """Fewest samples that yield one output frame (400 for data2vec-audio)."""
        config = self.backbone.config
        field, jump = 1, 1
        for kernel, stride in zip(config.conv_kernel, config.conv_stride):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    def featurize(self, sample: Sample) -> Features:
        audio = sample.audio
        if audio is None:
            raise ErckitError(f"sample {sample.key}: no audio (the data pipeline should provide it or a silent stand-in)")
        audio = torch.as_tensor(audio, dtype=torch.float32).reshape(-1)
        too_long = self.zero_longer_than is not None and audio.shape[0] / self.decoded_rate > self.zero_longer_than
        if too_long or (self.preprocessing == "authors" and audio.shape[0] == 0):
            # The authors' stand-in (for an absent clip too: the output is masked anyway).
            return {"input_values": torch.zeros(AUTHORS_STAND_IN)}
        if self.preprocessing == "authors":
            return {"input_values": self._padded(self._authors_values(audio))}  # (a clip this short crashed theirs)
        if self.max_seconds is not None:
            audio = audio[: int(self.max_seconds * SAMPLE_RATE)]
        audio = self._padded(audio)
        if self.normalize:
            audio = normalize_waveform(audio)
        return {"input_values": audio}

    def _padded(self, audio: Tensor) -> Tensor:
        """A clip shorter than one output frame gets silence appended."""
        if audio.shape[0] < self.min_samples:
            audio = torch.nn.functional.pad(audio, (0, self.min_samples - audio.shape[0]))
        return audio

    def _authors_values(self, audio: Tensor) -> Tensor:
        """Their ``processor(audio, sampling_rate=16000)["input_values"][0][-400000:]``: the extractor's own float32 numpy."""
        values = self.extractor(audio.numpy(), sampling_rate=SAMPLE_RATE, return_tensors="np")["input_values"][0]
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[-AUTHORS_MAX_VALUES:]

    def collate(self, features: Sequence[Features]) -> Features:
        lengths = torch.tensor([f["input_values"].shape[0] for f in features])
        values = torch.zeros(len(features), int(lengths.max()))
        for row, f in enumerate(features):
            values[row, : lengths[row]] = f["input_values"]
        attention_mask = (torch.arange(values.shape[1])[None, :] < lengths[:, None]).long()
        return {"input_values": values, "attention_mask": attention_mask}

    def length(self, features: Features) -> int:
        return int(features["input_values"].shape[0])

    def forward(self, batch: Features) -> ModalityOutput:
        """input_values/attention_mask [B, T] -> embedding [B, hidden], logits [B, C]."""
        attention_mask = batch["attention_mask"]
        count = int(self.backbone._get_feat_extract_output_lengths(attention_mask.shape[1]))
        frames = self.backbone._get_feature_vector_attention_mask(count, attention_mask)
        self._frame_mask = frames
        try:
            hidden = self.backbone(
                input_values=batch["input_values"], attention_mask=attention_mask if self.use_attention_mask else None
            ).last_hidden_state
        finally:
            self._frame_mask = None
        if self.pooling == "frame0":
            pooled = hidden[:, 0]  # the authors' Student_Audio; with right padding always a real frame
        else:
            weights = frames.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return ModalityOutput(embedding=pooled, logits=self.classifier(pooled))

    def context_window(self) -> int:
        return 1  # the target's own media, never the context

    def fingerprint(self) -> str:
        return (
            f"telme.AudioStudent:{self.media!r}:normalize={self.normalize}:min={self.min_samples}"
            f":preprocessing={self.preprocessing}:pooling={self.pooling}:zero_longer_than={self.zero_longer_than}"
        )

    def save_assets(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_backbone_config(self.backbone, directory)
        self.extractor.save_pretrained(str(directory))
