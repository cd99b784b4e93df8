"""telme.AudioStudent.v1 with preprocessing = "authors" against a transcription of the authors' code.

The reference below is written from yuntaeyang/TelME MELD/utils.py (``get_audio``, the
audio part of ``make_batchs``) and MELD/model.py (``Student_Audio``), directly against
librosa and transformers; it never calls erckit_telme's helpers. Media are real files
built here: wav/flac (libsndfile reads them, so librosa.load does too) and AAC in mp4/m4a
(librosa falls back to audioread's ffmpeg, s16 at the native rate: transcribed as the
s16 PCM that FFmpeg's float decode rounds to, read back by librosa.load).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from erckit.data.cache import DiskCache
from erckit.data.pipeline import MediaResolver
from erckit.data.types import DecoderSpec, Dialogue, Utterance, make_samples
from erckit.errors import ErckitError
from erckit_telme.plugin import audio_student

librosa = pytest.importorskip("librosa")
soundfile = pytest.importorskip("soundfile")

C = 5
TINY_AUDIO = dict(model_type="data2vec-audio", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                  num_conv_pos_embeddings=3, conv_pos_kernel_size=5, num_conv_pos_embedding_groups=2)
# facebook/data2vec-audio-base-960h's preprocessor_config.json (what their AutoProcessor loads).
PROCESSOR_960H = dict(do_normalize=True, feature_size=1, padding_side="right", padding_value=0.0,
                      return_attention_mask=True, sampling_rate=16000)


# -- media files ---------------------------------------------------------------------------------


def tone(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    """[frames, channels] float32 in [-0.9, 0.9]: a chirp plus noise, different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    columns = [0.5 * np.sin(2 * np.pi * (220 + 150 * c) * t * (1 + t)) + 0.1 * rng.standard_normal(t.size) for c in range(channels)]
    return np.clip(np.stack(columns, axis=1), -0.9, 0.9).astype(np.float32)


def write_sound(path: Path, seconds: float, rate: int, channels: int, seed: int = 0) -> Path:
    soundfile.write(str(path), tone(seconds, rate, channels, seed), rate, subtype="PCM_16")
    return path


def write_aac(path: Path, seconds: float, rate: int, channels: int, seed: int = 0) -> Path:
    """An mp4/m4a holding one AAC track (MELD's clips are mp4 with AAC audio)."""
    import av

    data = tone(seconds, rate, channels, seed)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "stereo" if channels == 2 else "mono"
        for start in range(0, data.shape[0], 1024):
            chunk = np.ascontiguousarray(data[start:start + 1024].T)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout)
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "wav_mono_16k": write_sound(folder / "a.wav", 0.8, 16_000, 1, seed=1),
        "wav_stereo_44k": write_sound(folder / "b.wav", 1.1, 44_100, 2, seed=2),
        "mp4_stereo_48k": write_aac(folder / "c.mp4", 0.6, 48_000, 2, seed=3),
        "m4a_mono_16k": write_aac(folder / "d.m4a", 1.3, 16_000, 1, seed=4),
        "flac_stereo_22k": write_sound(folder / "e.flac", 0.5, 22_050, 2, seed=5),
    }


# -- the authors' pipeline, transcribed ------------------------------------------------------------


def authors_librosa_load(path: Path, scratch: Path) -> np.ndarray:
    """``librosa.load(path)[0]``. For a file libsndfile cannot open, librosa uses audioread's ffmpeg:
    ``ffmpeg -i path -f s16le -`` (the decoder's float output rounded to 16 bits, native rate and
    channels), which librosa turns into floats, averages and resamples: here the same PCM as a wav."""
    import av

    try:
        soundfile.info(str(path))
    except soundfile.SoundFileRuntimeError:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            planar = np.concatenate([frame.to_ndarray() for frame in container.decode(stream)], axis=1)  # fltp
            rate = stream.codec_context.sample_rate
        pcm = np.clip(np.rint(planar.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
        path = scratch / (path.name + ".s16.wav")
        soundfile.write(str(path), pcm.T, rate, subtype="PCM_16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        audio, rate = librosa.load(str(path))
    assert rate == 22_050
    return audio


def authors_audio_input(path: Path, processor, scratch: Path, longest: float = 30.0) -> torch.Tensor:
    """make_batchs' audio part for one utterance (get_audio, then the last 400,000 values)."""
    audio = authors_librosa_load(path, scratch)
    rate = 22_050
    duration = librosa.get_duration(y=audio, sr=rate)
    if duration > longest:
        return torch.zeros([1412])
    inputs = processor(audio, sampling_rate=16000, return_tensors="pt")
    return inputs["input_values"][0][-400000:]


class AuthorsStudentAudio(nn.Module):
    """MELD/model.py Student_Audio: Data2VecAudioModel, frame 0 of the last hidden state, W."""

    def __init__(self, model: nn.Module, cls_num: int):
        super().__init__()
        self.model = model
        self.W = nn.Linear(model.config.hidden_size, cls_num)

    def forward(self, batch_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch_audio_output = self.model(batch_input).last_hidden_state[:, 0, :]
        return batch_audio_output, self.W(batch_audio_output)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """A tiny random data2vec-audio with the 960h processor, saved as a local pretrained model."""
    from transformers import AutoModel, Wav2Vec2FeatureExtractor

    from erckit.hf import build_config

    folder = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    AutoModel.from_config(build_config(TINY_AUDIO)).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(**PROCESSOR_960H).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def student(pretrained: Path):
    torch.manual_seed(1)
    return audio_student(num_classes=C, pretrained=str(pretrained), preprocessing="authors", pooling="frame0",
                         zero_longer_than=30.0, config_overrides={"mask_time_length": 3}).eval()


@pytest.fixture(scope="module")
def authors(pretrained: Path, student) -> AuthorsStudentAudio:
    from transformers import Data2VecAudioModel

    model = Data2VecAudioModel.from_pretrained(str(pretrained))
    model.config.update({"mask_time_length": 3})  # their Config dataclass, as student.py applies it
    reference = AuthorsStudentAudio(model, C)
    reference.W.load_state_dict(student.classifier.state_dict())  # the only weights not from the folder
    return reference.eval()


def samples_for(paths: list[Path]) -> list:
    dialogue = Dialogue("d", tuple(Utterance(f"p{i}", "x", "joy", audio=p) for i, p in enumerate(paths)))
    return make_samples([dialogue], ["joy"])


def erckit_outputs(student, paths: list[Path], cache: Path, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The data pipeline (own decoder, cache) -> featurize -> collate -> forward, in batches."""
    samples = samples_for(paths)
    resolver = MediaResolver(DiskCache(cache), "error")
    resolver.prepare(samples, [student.media], progress=False)
    embeddings, logits = [], []
    with torch.no_grad():
        for first in range(0, len(samples), batch_size):
            batch = samples[first:first + batch_size]
            for sample in batch:
                assert resolver.fill(sample, [student.media])
            output = student(student.collate([student.featurize(s) for s in batch]))
            embeddings.append(output.embedding)
            logits.append(output.logits)
    return torch.cat(embeddings), torch.cat(logits)


# -- tests -----------------------------------------------------------------------------------------


def test_the_authors_mode_decodes_with_its_own_decoder(student) -> None:
    assert student.media == DecoderSpec("audio", "erckit_telme.authors_media:read_audio_authors")
    assert student.backbone.config.mask_time_length == 3


@pytest.mark.parametrize("name", ["wav_mono_16k", "wav_stereo_44k", "flac_stereo_22k", "mp4_stereo_48k", "m4a_mono_16k"])
def test_decoding_is_librosa_load(clips, name: str, tmp_path: Path) -> None:
    from erckit_telme.authors_media import read_audio_authors

    ours = read_audio_authors(clips[name], None, None)
    expected = authors_librosa_load(clips[name], tmp_path)
    assert ours.dtype == torch.float32
    assert torch.equal(ours, torch.from_numpy(expected))  # bit for bit (the wav/flac ones are librosa.load itself)


def test_a_span_is_cut_from_the_22050_hz_read(clips) -> None:
    from erckit_telme.authors_media import read_audio_authors

    whole = read_audio_authors(clips["wav_stereo_44k"])
    part = read_audio_authors(clips["wav_stereo_44k"], 0.2, 0.7)
    assert torch.equal(part, whole[round(0.2 * 22_050):round(0.7 * 22_050)])


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg program: librosa cannot read mp4 itself")
def test_mp4_is_within_one_16_bit_step_of_librosa_through_a_real_ffmpeg(clips) -> None:
    """With an ffmpeg program, librosa.load reads the mp4 itself (audioread). Another FFmpeg build may decode
    AAC a float ULP differently, flipping the 16-bit rounding of a few samples: measured here (system FFmpeg 5.1
    vs PyAV's) 52 of 90,112 samples, at most 2.8e-5 after resampling."""
    from erckit_telme.authors_media import read_audio_authors

    for name in ("mp4_stereo_48k", "m4a_mono_16k"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            real, _ = librosa.load(str(clips[name]))
        ours = read_audio_authors(clips[name]).numpy()
        assert ours.shape == real.shape
        assert float(np.abs(ours - real).max()) <= 2 / 32768


@pytest.mark.parametrize("batch_size", [1, 4])
def test_logits_and_embedding_match_the_authors_student(clips, student, authors, tmp_path: Path, batch_size: int) -> None:
    """Per clip, the authors' forward at batch 1 (no attention mask) equals erckit's (right padding, a mask:
    all ones at batch 1, the same computation) within 1e-5."""
    from transformers import Wav2Vec2FeatureExtractor

    # Their AutoProcessor is a Wav2Vec2Processor; called with audio it is its feature extractor's call.
    processor = Wav2Vec2FeatureExtractor(**PROCESSOR_960H)
    paths = [clips[n] for n in ("wav_stereo_44k", "mp4_stereo_48k", "wav_mono_16k", "m4a_mono_16k", "flac_stereo_22k")]
    embedding, logits = erckit_outputs(student, paths, tmp_path / "cache", batch_size)
    with torch.no_grad():
        for row, path in enumerate(paths):
            reference_embedding, reference_logits = authors(authors_audio_input(path, processor, tmp_path)[None])
            assert float((embedding[row] - reference_embedding[0]).abs().max()) <= 1e-5, path.name
            assert float((logits[row] - reference_logits[0]).abs().max()) <= 1e-5, path.name


def test_the_features_are_their_processor_output(clips, student, tmp_path: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    processor = Wav2Vec2FeatureExtractor(**PROCESSOR_960H)
    (sample,) = samples_for([clips["mp4_stereo_48k"]])
    assert MediaResolver(None, "error").fill(sample, [student.media])
    assert torch.equal(student.featurize(sample)["input_values"], authors_audio_input(clips["mp4_stereo_48k"], processor, tmp_path))


def test_only_the_last_400000_values_are_kept(student) -> None:
    (sample,) = samples_for([Path("unused.wav")])
    sample.audio = torch.randn(400_123)
    values = student.featurize(sample)["input_values"]
    expected = student.extractor(sample.audio.numpy(), sampling_rate=16000, return_tensors="np")["input_values"][0][-400_000:]
    assert values.shape == (400_000,) and torch.equal(values, torch.from_numpy(expected))


def test_clips_over_zero_longer_than_become_their_1412_zeros(clips, pretrained: Path, tmp_path: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    processor = Wav2Vec2FeatureExtractor(**PROCESSOR_960H)
    strict = audio_student(num_classes=C, pretrained=str(pretrained), preprocessing="authors", zero_longer_than=1.0)
    long_clip, short_clip = samples_for([clips["wav_stereo_44k"], clips["wav_mono_16k"]])  # 1.1 s, 0.8 s
    resolver = MediaResolver(None, "error")
    assert resolver.fill(long_clip, [strict.media]) and resolver.fill(short_clip, [strict.media])
    assert torch.equal(strict.featurize(long_clip)["input_values"], torch.zeros(1412))
    assert torch.equal(strict.featurize(long_clip)["input_values"],
                       authors_audio_input(clips["wav_stereo_44k"], processor, tmp_path, longest=1.0))
    assert not torch.equal(strict.featurize(short_clip)["input_values"][:1412], torch.zeros(1412))
    assert strict.fingerprint() != audio_student(num_classes=C, pretrained=str(pretrained), preprocessing="authors").fingerprint()


def test_absent_audio_is_their_stand_in_and_masked(student, tmp_path: Path) -> None:
    from erckit.data.batching import SampleDataset

    samples = make_samples([Dialogue("d", (Utterance("A", "no audio", "joy"),))], ["joy"])
    item = SampleDataset(samples, {"audio": student}, MediaResolver(None, "zero"))[0]
    assert torch.equal(item["features"]["audio"]["input_values"], torch.zeros(1412))
    assert item["present"] == {"audio": False}  # the model masks it


def test_erckit_and_authors_modes_differ_in_fingerprint_and_pooling(pretrained: Path) -> None:
    kinds = [dict(), dict(preprocessing="authors"), dict(pooling="frame0"), dict(zero_longer_than=30.0)]
    prints = {audio_student(num_classes=C, pretrained=str(pretrained), **kind).fingerprint() for kind in kinds}
    assert len(prints) == len(kinds)
    # frame0 is the first output frame; mean averages the real ones.
    torch.manual_seed(0)
    mean = audio_student(num_classes=C, pretrained=str(pretrained)).eval()
    torch.manual_seed(0)
    first = audio_student(num_classes=C, pretrained=str(pretrained), pooling="frame0").eval()
    batch = mean.collate([{"input_values": torch.randn(4_000)}])
    with torch.no_grad():
        hidden = mean.backbone(**batch).last_hidden_state
        assert torch.allclose(first(batch).embedding, hidden[:, 0], atol=1e-6)
        assert torch.allclose(mean(batch).embedding, hidden.mean(1), atol=1e-6)


def test_config_overrides_reach_the_pretrained_config_and_unknown_keys_fail(pretrained: Path) -> None:
    plain = audio_student(num_classes=C, pretrained=str(pretrained))
    changed = audio_student(num_classes=C, pretrained=str(pretrained), config_overrides={"mask_time_length": 3})
    assert (plain.backbone.config.mask_time_length, changed.backbone.config.mask_time_length) == (10, 3)
    with pytest.raises(ErckitError, match="'mask_time_lenght': a 'data2vec-audio' config has no such setting"):
        audio_student(num_classes=C, pretrained=str(pretrained), config_overrides={"mask_time_lenght": 3})


def test_bad_arguments_are_one_line_errors(pretrained: Path) -> None:
    with pytest.raises(ErckitError, match="max_seconds does not apply"):
        audio_student(num_classes=C, pretrained=str(pretrained), preprocessing="authors", max_seconds=5.0)
    with pytest.raises(ErckitError, match="zero_longer_than must be a positive"):
        audio_student(num_classes=C, pretrained=str(pretrained), zero_longer_than=0.0)


def test_a_missing_extra_is_named_when_the_encoder_is_built_not_when_the_recipe_is_read(
    pretrained: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from erckit.recipe.load import validate

    monkeypatch.setitem(sys.modules, "librosa", None)  # import librosa now raises ImportError
    raw = {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {"encoders": {"audio": {"factory": "telme.AudioStudent.v1", "pretrained": str(pretrained),
                                         "preprocessing": "authors", "pooling": "frame0"}}},
        "stages": [{"kind": "supervised", "encoders": ["audio"]}],
    }
    validate(raw, "test")  # no librosa needed to read the recipe
    with pytest.raises(ErckitError) as info:
        audio_student(num_classes=C, pretrained=str(pretrained), preprocessing="authors")
    assert str(info.value) == 'preprocessing = "authors" needs librosa: pip install "erckit-telme[authors]"'
    audio_student(num_classes=C, pretrained=str(pretrained))  # erckit's own mode needs no extra


def test_the_ffmpeg_program_and_pyav_round_floats_to_16_bits_alike(clips) -> None:
    """The s16 conversion transcribed above (rint of x * 32768) is what the ffmpeg program does."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("no ffmpeg program")
    run = lambda fmt: subprocess.run(["ffmpeg", "-v", "quiet", "-i", str(clips["mp4_stereo_48k"]), "-f", fmt, "-"],
                                     capture_output=True, check=True).stdout  # noqa: E731
    floats = np.frombuffer(run("f32le"), "<f4").astype(np.float64)
    shorts = np.frombuffer(run("s16le"), "<i2")
    assert np.array_equal(np.clip(np.rint(floats * 32768), -32768, 32767).astype(np.int16), shorts)


def test_a_saved_authors_model_reloads_with_its_decoder_and_overridden_config(clips, pretrained: Path, tmp_path: Path) -> None:
    from erckit.model import ERCModel
    from erckit.recipe.load import validate

    raw = {
        "data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
        "model": {"encoders": {"audio": {"factory": "telme.AudioStudent.v1", "pretrained": str(pretrained),
                                         "preprocessing": "authors", "pooling": "frame0", "zero_longer_than": 30.0,
                                         "config_overrides": {"mask_time_length": 3}}}},
        "stages": [{"kind": "supervised", "encoders": ["audio"]}],
    }
    model = ERCModel.from_recipe(validate(raw, "test"), ["a", "b", "c"]).eval()
    model.save_pretrained(tmp_path / "model")
    loaded = ERCModel.from_pretrained(tmp_path / "model").eval()
    before, after = model.encoders["audio"], loaded.encoders["audio"]
    assert after.media == before.media and after.fingerprint() == before.fingerprint()
    assert after.backbone.config.mask_time_length == 3
    (sample,) = samples_for([clips["mp4_stereo_48k"]])
    assert MediaResolver(None, "error").fill(sample, [after.media])
    batch = after.collate([after.featurize(sample)])
    with torch.no_grad():
        assert torch.equal(after(batch).logits, before(batch).logits)
