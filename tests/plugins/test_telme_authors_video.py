"""telme.VisualStudent.v1 with preprocessing="authors": the pixel values TelME's authors fed their student.

The reference is written out here from the authors' MELD/utils.py (get_video, make_batchs' 30 s
rule), IEMOCAP/utils.py (get_video with its 1 s margin), MELD/model.py (Student_Video) and
transformers 4.27.2's VideoMAEImageProcessor (image_transforms.get_resize_output_image_size,
resize through PIL, center_crop, rescale, normalize, in numpy): nothing here calls
erckit_telme.authors_video. The videos are real files written with PyAV (mp4 h264 + AAC as MELD's,
avi mpeg4 as IEMOCAP's dialogue videos), each frame a different colour, so a wrong frame, a wrong
crop or swapped channels all change the numbers.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from torch import nn

from erckit.data.cache import DiskCache
from erckit.data.pipeline import MediaResolver
from erckit.data.types import DecoderSpec, Dialogue, Utterance, make_samples
from erckit.errors import ErckitError
from erckit_telme.plugin import visual_student

cv2 = pytest.importorskip("cv2", reason='the authors\' video reader needs pip install "erckit-telme[authors]"')
librosa = pytest.importorskip("librosa", reason='the authors\' 30 s rule needs pip install "erckit-telme[authors]"')
from PIL import Image  # noqa: E402

C = 4
SIZE = 32  # the tiny model's image_size: frames resized/cropped to it instead of 224
TINY = dict(model_type="timesformer", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, image_size=SIZE, patch_size=16, num_frames=8)
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # MCG-NJU/videomae-base's processor


# -- media files ----------------------------------------------------------------------------


def write_video(path: Path, frames: int, fps: int, size: tuple[int, int], codec: str, audio_seconds: float | None = None,
                audio_rate: int = 44_100) -> Path:
    """Frame i: red 10 + 7 i, green a left-to-right ramp, blue 240 - 6 i, and a bright bar at column 4 i."""
    import av

    width, height = size
    ramp = np.linspace(0, 255, width, dtype=np.float64)
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            video.options = {"crf": "12"}
        else:
            video.bit_rate = 4_000_000
        audio = None
        if audio_seconds is not None:
            audio = container.add_stream("aac", rate=audio_rate)
            audio.layout = "stereo"
        for i in range(frames):
            rgb = np.empty((height, width, 3), dtype=np.uint8)
            rgb[..., 0] = (10 + 7 * i) % 256
            rgb[..., 1] = ramp[None, :].astype(np.uint8)
            rgb[..., 2] = (240 - 6 * i) % 256
            rgb[:, (4 * i) % width : (4 * i) % width + 3] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            n = int(audio_seconds * audio_rate)
            t = np.arange(n) / audio_rate
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            samples = np.stack([tone, tone])
            for start in range(0, n, 1024):
                chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start : start + 1024]), format="fltp", layout="stereo")
                chunk.sample_rate = audio_rate
                for packet in audio.encode(chunk):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)
    return path


AUDIO_SECONDS = {"dia0_utt0.mp4": 3.0, "dia0_utt1.mp4": 0.5, "dia0_utt2.mp4": 4.0}


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("authors_video")
    return {
        "meld": write_video(root / "dia0_utt0.mp4", 30, 10, (80, 48), "libx264", AUDIO_SECONDS["dia0_utt0.mp4"]),
        # portrait, fewer than 8 frames
        "meld_short": write_video(root / "dia0_utt1.mp4", 5, 10, (48, 80), "libx264", AUDIO_SECONDS["dia0_utt1.mp4"]),
        "meld_long": write_video(root / "dia0_utt2.mp4", 41, 10, (80, 48), "libx264", AUDIO_SECONDS["dia0_utt2.mp4"]),
        "iemocap": write_video(root / "Ses01F_impro01.avi", 150, 25, (96, 56), "mpeg4")  # 32 * 96 / 56 = 54.86: int, not round,
    }


# -- the authors' pipeline, transcribed -----------------------------------------------------


def processor_427(images: list[np.ndarray], size: int) -> torch.Tensor:
    """VideoMAEImageProcessor(size=shortest_edge size, crop size x size, ImageNet mean/std) of 4.27.2, slow path."""
    out = []
    for image in images:
        height, width = image.shape[:2]  # get_image_size of a channels-last array
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = size, int(size * long / short)
        target_h, target_w = (new_long, new_short) if width <= height else (new_short, new_long)
        resized = np.array(Image.fromarray(image).resize((target_w, target_h), resample=2))  # PILImageResampling.BILINEAR
        chw = resized.transpose(2, 0, 1)  # center_crop works channels-first
        top, left = (chw.shape[1] - size) // 2, (chw.shape[2] - size) // 2
        cropped = chw[:, top : top + size, left : left + size].transpose(1, 2, 0)
        rescaled = (cropped * (1 / 255)).astype(np.float32)
        normalised = (rescaled - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
        out.append(normalised.transpose(2, 0, 1))
    return torch.tensor(np.array([out]))[0]  # BatchFeature(return_tensors="pt")["pixel_values"][0]


def authors_meld_video(path: Path, size: int) -> torch.Tensor:
    video = cv2.VideoCapture(str(path))
    length = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    step = length // 8
    count = 0
    if length >= 8:
        while video.isOpened():
            ret, image = video.read()
            if ret is False:
                break
            count += 1
            if count % step == 0:
                frames.append(image)
        video.release()
    else:
        while video.isOpened():
            ret, image = video.read()
            if ret is False:
                break
            frames.append(image)
        video.release()
        frames.extend([frames[-1].copy() for _ in range(8 - len(frames))])
    return processor_427(frames[:8], size)


def authors_iemocap_video(path: Path, start_time: float, end_time: float, size: int) -> torch.Tensor:
    video = cv2.VideoCapture(str(path))
    fps = video.get(cv2.CAP_PROP_FPS)
    time_start = max(float(start_time) - 1, 0)
    time_end = float(end_time) + 1
    length = fps * (time_end - time_start)
    frames = []
    step = length // 8
    count = 0
    while video.isOpened():
        ret, image = video.read()
        if ret is False:
            break
        if (int(video.get(1)) >= fps * time_start) and (int(video.get(1)) <= fps * time_end):
            count += 1
            if count % step == 0:
                frames.append(image)
    video.release()
    if len(frames) < 8:
        frames.extend([frames[-1].copy() for _ in range(8 - len(frames))])
    return processor_427(frames[:8], size)


def librosa_duration(path: Path) -> float:
    """make_batchs' measure; without an ffmpeg program librosa cannot read an mp4: then the written length."""
    if shutil.which("ffmpeg") is None:
        return AUDIO_SECONDS[path.name]
    audio, rate = librosa.load(str(path))
    return librosa.get_duration(y=audio, sr=rate)


def authors_meld_batch_video(path: Path, size: int, limit: float = 30.0) -> torch.Tensor:
    """make_batchs: a clip whose librosa duration exceeds the limit is zeros, after normalisation."""
    if librosa_duration(path) > limit:
        return torch.zeros([8, 3, size, size])
    return authors_meld_video(path, size)


class StudentVideo(nn.Module):
    """MELD/model.py Student_Video: TimeSformer, CLS of the last hidden state, Linear."""

    def __init__(self, model: nn.Module, cls_num: int):
        super().__init__()
        self.model = model
        self.W = nn.Linear(model.config.hidden_size, cls_num)

    def forward(self, batch_input):
        output = self.model(batch_input).last_hidden_state[:, 0, :]
        return output, self.W(output)


def reference_of(student) -> StudentVideo:
    """The authors' module with the student's weights (as the released total_student.bin would give)."""
    from transformers import TimesformerModel

    reference = StudentVideo(TimesformerModel(student.backbone.config), C)
    reference.model.load_state_dict(student.backbone.state_dict())
    reference.W.load_state_dict(student.classifier.state_dict())
    return reference.eval()


# -- erckit's side ----------------------------------------------------------------------------


def erckit_batch(student, utterances: list[Utterance], tmp_path: Path, policy: str = "error"):
    dialogue = Dialogue("d", tuple(utterances))
    samples = make_samples([dialogue], ["joy"])
    resolver = MediaResolver(DiskCache(tmp_path / "cache"), policy)
    for sample in samples:
        assert resolver.fill(sample, [student.media])
    features = [student.featurize(sample) for sample in samples]
    return samples, features, student.collate(features)


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    return visual_student(num_classes=C, config=TINY, frames=8, preprocessing="authors", zero_longer_than=3.5).eval()


def test_authors_mode_is_an_own_decoder_with_its_options(student) -> None:
    assert student.media == DecoderSpec(
        "visual", "erckit_telme.authors_video:read_frames_authors",
        (("frames", 8), ("size", SIZE), ("zero_longer_than", 3.5)),
    )
    erckit_mode = visual_student(num_classes=C, config=TINY, frames=8)
    assert "preprocessing=authors" in student.fingerprint() and "zero_longer_than=3.5" in student.fingerprint()
    assert student.fingerprint() != erckit_mode.fingerprint()
    assert erckit_mode.fingerprint().startswith("telme.VisualStudent:VideoSpec(")  # erckit mode's key unchanged


def test_pixel_values_are_the_authors_and_logits_match_at_batch_1_and_4(student, media, tmp_path) -> None:
    iemocap = [(3.0, 4.6), (0.4, 1.0), (5.5, 6.5)]  # their CSV's Start_Time/End_Time; the window of the first
    # starts exactly on frame 50 (fps * 2.0), the last runs past the end of the video
    utterances = [
        Utterance("A", "x", "joy", video=media["meld"]),
        Utterance("B", "x", "joy", video=media["meld_short"]),
        # As erckit's IEMOCAP reader stores their rows: the span widened by their 1 s margin.
        *[Utterance("C", "x", "joy", video=media["iemocap"], start=max(s - 1, 0.0), end=e + 1) for s, e in iemocap],
        Utterance("A", "x", "joy", video=media["meld_long"]),
    ]
    expected = [
        authors_meld_batch_video(media["meld"], SIZE, 3.5),
        authors_meld_batch_video(media["meld_short"], SIZE, 3.5),
        *[authors_iemocap_video(media["iemocap"], s, e, SIZE) for s, e in iemocap],
        authors_meld_batch_video(media["meld_long"], SIZE, 3.5),
    ]
    assert float(expected[-1].abs().max()) == 0.0 and all(float(e.abs().max()) > 0 for e in expected[:-1])
    samples, features, batch = erckit_batch(student, utterances, tmp_path)
    assert [s.frames.shape[0] for s in samples] == [8, 8, 8, 8, 8, 0]  # the zeroed clip: no frames decoded
    for got, want in zip(features, expected):
        assert got["pixel_values"].dtype == torch.float32
        assert torch.equal(got["pixel_values"], want)  # bit for bit
    # Different frames were chosen for each clip and window (distinct content per frame).
    assert len({tuple(e[:, 0, 0, 0].tolist()) for e in expected[:-1]}) == 5
    reference = reference_of(student)
    with torch.no_grad():
        output = student(batch)
        ref = [reference(pixels[None]) for pixels in expected]  # the authors' reference at batch 1
        for size in (1, 4):
            part = student(student.collate(features[:size]))
            for i in range(size):
                assert (part.logits[i] - ref[i][1][0]).abs().max() <= 1e-5
                assert (part.embedding[i] - ref[i][0][0]).abs().max() <= 1e-5
    for i, (embedding, logits) in enumerate(ref):
        assert (output.logits[i] - logits[0]).abs().max() <= 1e-5
        assert (output.embedding[i] - embedding[0]).abs().max() <= 1e-5


def test_full_size_frames_are_the_processors_224(media) -> None:
    """At the real model's size: the shorter side to 224, the longer int(224 * long / short), centre crop."""
    from erckit_telme.authors_video import pixel_values, read_frames_authors

    frames = read_frames_authors(media["meld"], None, None, size=224)
    assert frames.shape == (8, 224, 224, 3) and frames.dtype == torch.uint8
    assert torch.equal(pixel_values(frames, 8, 224), authors_meld_video(media["meld"], 224))
    window = read_frames_authors(media["iemocap"], 1.3, 4.9, size=224)  # 2.3-3.9 s widened
    assert torch.equal(pixel_values(window, 8, 224), authors_iemocap_video(media["iemocap"], 2.3, 3.9, 224))


def test_frames_stay_in_opencv_bgr_order(media) -> None:
    from erckit_telme.authors_video import read_frames_authors

    frames = read_frames_authors(media["meld"], None, None, size=SIZE)
    # Kept frame k is frame index 3 (k + 1) - 1 (count % 3 == 0): red 10 + 7 i, blue 240 - 6 i in RGB.
    i = torch.arange(8) * 3 + 2
    centre = frames[:, SIZE // 2].float().median(dim=1).values  # along a row: the moving bar is 3 columns
    assert (centre[:, 0] - (240 - 6 * i)).abs().max() <= 10  # channel 0 is blue (red would be 24..171)
    assert (centre[:, 2] - (10 + 7 * i)).abs().max() <= 10  # channel 2 is red


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="librosa reads an mp4 through audioread's ffmpeg program")
def test_zero_rule_measures_audio_as_librosa_does(media) -> None:
    from erckit_telme.authors_video import librosa_seconds

    for name in ("meld", "meld_long", "meld_short"):
        assert librosa_seconds(media[name]) == len(librosa.load(str(media[name]))[0]) / 22_050, name


def test_zero_rule_boundary_and_absent_video(media, tmp_path) -> None:
    from erckit_telme.authors_media import read_audio_authors
    from erckit_telme.authors_video import read_frames_authors

    seconds = librosa_duration(media["meld"]) if shutil.which("ffmpeg") else len(read_audio_authors(media["meld"])) / 22_050
    assert read_frames_authors(media["meld"], None, None, size=SIZE, zero_longer_than=seconds).shape == (8, SIZE, SIZE, 3)
    assert read_frames_authors(media["meld"], None, None, size=SIZE, zero_longer_than=seconds - 1e-3).shape == (0, SIZE, SIZE, 3)
    torch.manual_seed(0)
    student = visual_student(num_classes=C, config=TINY, frames=8, preprocessing="authors")
    samples, features, batch = erckit_batch(
        student, [Utterance("A", "x", "joy", video=tmp_path / "missing.mp4"), Utterance("B", "x", "joy")], tmp_path, "zero"
    )
    assert all(not s.present["visual"] for s in samples)
    assert torch.equal(batch["pixel_values"], torch.zeros(2, 8, 3, SIZE, SIZE))


def test_unreadable_video_is_a_media_error(tmp_path) -> None:
    from erckit.errors import MediaError
    from erckit_telme.authors_video import read_frames_authors

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video" * 20)
    with pytest.raises(MediaError, match="bad.mp4"):
        read_frames_authors(bad, None, None, size=SIZE)


def test_config_overrides_apply_to_a_local_pretrained_model(tmp_path) -> None:
    from transformers import TimesformerConfig, TimesformerModel

    torch.manual_seed(1)
    pretrained = tmp_path / "timesformer"
    TimesformerModel(TimesformerConfig(**{k: v for k, v in TINY.items() if k != "model_type"})).save_pretrained(pretrained)
    student = visual_student(num_classes=C, pretrained=str(pretrained), preprocessing="authors",
                             config_overrides={"attention_probs_dropout_prob": 0.25})
    assert student.backbone.config.attention_probs_dropout_prob == 0.25
    assert json.loads((pretrained / "config.json").read_text())["attention_probs_dropout_prob"] == 0.0
    saved = TimesformerModel.from_pretrained(pretrained).state_dict()
    assert all(torch.equal(value, student.backbone.state_dict()[key]) for key, value in saved.items())  # its weights
    with pytest.raises(ErckitError, match="no_such_setting"):
        visual_student(num_classes=C, pretrained=str(pretrained), config_overrides={"no_such_setting": 1})


def test_missing_extra_is_one_line_at_build_time(monkeypatch) -> None:
    import sys

    from erckit.recipe.load import validate

    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError, as when not installed
    raw = {"data": {"dataset": "erckit.DialogueJSONL.v1", "root": "unused"},
           "model": {"encoders": {"visual": {"factory": "telme.VisualStudent.v1", "config": TINY, "preprocessing": "authors"}}},
           "stages": [{"kind": "supervised", "encoders": ["visual"]}]}
    validate(raw, "test")  # the recipe is valid without OpenCV
    with pytest.raises(ErckitError) as error:
        visual_student(num_classes=C, config=TINY, preprocessing="authors")
    assert str(error.value) == 'preprocessing = "authors" needs OpenCV: pip install "erckit-telme[authors]"'
    from erckit_telme.authors_video import read_frames_authors

    with pytest.raises(ErckitError, match="needs OpenCV"):  # a worker decoding for a model loaded elsewhere
        read_frames_authors(Path("clip.mp4"), None, None)
    monkeypatch.setitem(sys.modules, "cv2", cv2)
    monkeypatch.setitem(sys.modules, "librosa", None)
    with pytest.raises(ErckitError) as error:
        visual_student(num_classes=C, config=TINY, preprocessing="authors", zero_longer_than=30.0)
    assert str(error.value) == 'zero_longer_than needs librosa: pip install "erckit-telme[authors]"'


def test_bad_arguments(media) -> None:
    with pytest.raises(ErckitError, match="needs preprocessing"):
        visual_student(num_classes=C, config=TINY, zero_longer_than=30.0)
    with pytest.raises(ErckitError, match="'erckit' or 'authors'"):
        visual_student(num_classes=C, config=TINY, preprocessing="theirs")
    with pytest.raises(ErckitError, match="> 0"):
        visual_student(num_classes=C, config=TINY, preprocessing="authors", zero_longer_than=0.0)


def test_authors_mode_rebuilds_from_saved_assets(student, media, tmp_path) -> None:
    from erckit.hf import rebuild_from_assets

    student.save_assets(tmp_path)
    processor = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert processor["image_mean"] == MEAN and processor["image_std"] == STD  # a record of their processor
    with rebuild_from_assets(tmp_path):
        rebuilt = visual_student(num_classes=C, frames=8, preprocessing="authors", zero_longer_than=3.5)
    rebuilt.load_state_dict(student.state_dict())
    rebuilt.eval()
    assert rebuilt.media == student.media and rebuilt.fingerprint() == student.fingerprint()
    _, features, batch = erckit_batch(rebuilt, [Utterance("A", "x", "joy", video=media["meld"])], tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch).logits, student(batch).logits, rtol=0, atol=0)
