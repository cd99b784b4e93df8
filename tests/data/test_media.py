from __future__ import annotations

from pathlib import Path

import pytest
import torch

from erckit.data.media import load_audio, load_frames, load_many, probe_duration
from erckit.data.types import AudioSpec, VideoSpec
from erckit.errors import MediaError


@pytest.mark.parametrize("rate", [44_100, 22_050])
def test_audio_resampled_to_16k_with_right_duration(tmp_path: Path, rate: int, make_clip) -> None:
    path = make_clip(tmp_path / f"a{rate}.mp4", seconds=1.0, audio_rate=rate, video=False)
    wave = load_audio(path, AudioSpec(sample_rate=16_000))
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(wave.numel() - 16_000) <= 16  # within 1 ms
    assert 0.2 < wave.abs().max() < 0.4  # stereo averaged to mono keeps the level


def test_audio_span_and_max_seconds(clip: Path) -> None:
    part = load_audio(clip, AudioSpec(), start=0.25, end=0.75)
    assert abs(part.numel() - 8_000) <= 16
    cut = load_audio(clip, AudioSpec(max_seconds=0.5))
    assert cut.numel() == 8_000


def test_wav_at_native_rate(tmp_path: Path, make_wav) -> None:
    wave = load_audio(make_wav(tmp_path / "x.wav", seconds=0.5), AudioSpec())
    assert wave.numel() == 8_000


def test_frames_are_rgb_and_resized(tmp_path: Path, make_clip) -> None:
    red = make_clip(tmp_path / "red.mp4", color=(255, 0, 0), size=(64, 48))
    frames = load_frames(red, VideoSpec(num_frames=8, size=32))
    assert frames.dtype == torch.uint8
    assert frames.shape == (8, 32, 43, 3)  # shorter side 32, aspect kept
    mean = frames.float().mean(dim=(0, 1, 2))
    assert mean[0] > 200 and mean[1] < 40 and mean[2] < 40  # red is channel 0 (not BGR)


def test_frames_sampled_uniformly_over_span(tmp_path: Path) -> None:
    # Colour changes each second: a span inside the second second only sees green.
    import av
    import numpy as np

    path = tmp_path / "steps.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(30):
            image = np.zeros((32, 32, 3), np.uint8)
            image[:, :, i // 10] = 255  # red, then green, then blue
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    green = load_frames(path, VideoSpec(num_frames=4, size=None), start=1.0, end=2.0).float().mean(dim=(1, 2))
    assert (green[:, 1] > 200).all() and (green[:, 0] < 40).all()
    whole = load_frames(path, VideoSpec(num_frames=3, size=None)).float().mean(dim=(1, 2))
    assert [int(row.argmax()) for row in whole] == [0, 1, 2]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="file not found") as info:
        load_audio(tmp_path / "nope.wav")
    assert info.value.path.endswith("nope.wav")


def test_truncated_mp4(tmp_path: Path, make_clip) -> None:
    full = make_clip(tmp_path / "full.mp4").read_bytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(full[: len(full) // 2])
    with pytest.raises(MediaError) as info:
        load_frames(broken, VideoSpec())
    assert "broken.mp4" in str(info.value)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(MediaError, match="cannot open"):
        load_audio(garbage)


def test_audio_only_mp4_asked_for_frames(tmp_path: Path, make_clip) -> None:
    path = make_clip(tmp_path / "audio_only.mp4", video=False)
    with pytest.raises(MediaError, match="no video stream"):
        load_frames(path, VideoSpec())


def test_video_only_asked_for_audio(tmp_path: Path, make_clip) -> None:
    path = make_clip(tmp_path / "silent.mp4", audio_rate=None)
    with pytest.raises(MediaError, match="no audio stream"):
        load_audio(path)


def test_zero_length_audio(tmp_path: Path, make_wav) -> None:
    path = make_wav(tmp_path / "empty.wav", seconds=0.0)
    with pytest.raises(MediaError, match="zero-length audio"):
        load_audio(path)
    with pytest.raises(MediaError, match="zero-length audio"):
        load_audio(make_wav(tmp_path / "short.wav", seconds=0.5), start=2.0, end=3.0)


def test_clip_longer_than_max_duration(clip: Path) -> None:
    with pytest.raises(MediaError, match="longer than the maximum of 0.5 s"):
        load_audio(clip, max_duration=0.5)
    with pytest.raises(MediaError, match="longer than the maximum"):
        load_frames(clip, VideoSpec(), max_duration=0.5)
    assert load_frames(clip, VideoSpec(num_frames=2, size=None), start=0.0, end=0.4, max_duration=0.5).shape[0] == 2


def test_probe_duration(clip: Path) -> None:
    assert probe_duration(clip) == pytest.approx(1.0, abs=0.05)


def test_load_many_reads_each_request_as_the_single_loaders_do(clip: Path) -> None:
    audio, frames, part = load_many(
        clip, [(AudioSpec(), None, None), (VideoSpec(num_frames=4, size=32), None, None), (AudioSpec(), 0.25, 0.75)]
    )
    assert torch.equal(audio, load_audio(clip, AudioSpec()))
    assert torch.equal(frames, load_frames(clip, VideoSpec(num_frames=4, size=32)))
    assert torch.equal(part, load_audio(clip, AudioSpec(), start=0.25, end=0.75))


def test_load_many_one_failing_request_does_not_cost_the_others(tmp_path: Path, make_clip) -> None:
    path = make_clip(tmp_path / "audio_only.mp4", video=False)
    audio, frames = load_many(path, [(AudioSpec(), None, None), (VideoSpec(), None, None)])
    assert isinstance(audio, torch.Tensor) and audio.numel() > 0
    assert isinstance(frames, MediaError) and "no video stream" in frames.reason
    missing = load_many(tmp_path / "nope.mp4", [(AudioSpec(), None, None), (VideoSpec(), None, None)])
    assert all(isinstance(error, MediaError) and error.reason == "file not found" for error in missing)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_skipping_the_open_probe_decodes_the_same_frames(tmp_path: Path, suffix: str, monkeypatch) -> None:
    # H.264 with B-frames is what FFmpeg's probe decodes frames for (reorder delay).
    import av
    import numpy as np

    from erckit.data import media

    path = tmp_path / f"bframes{suffix}"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"bframes": "3", "keyint": "10"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        texture = np.random.default_rng(0).integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.roll(texture, 2 * i, axis=1), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    spec = VideoSpec(num_frames=8, size=None)
    fast = [load_frames(path, spec), load_frames(path, spec, start=0.3, end=1.7)]
    monkeypatch.setattr(media, "_open", lambda p: av.open(str(p)))  # FFmpeg's full probe
    full = [load_frames(path, spec), load_frames(path, spec, start=0.3, end=1.7)]
    for a, b in zip(fast, full):
        assert torch.equal(a, b)


def _b_frame_clip(path: Path, frames: int = 60) -> Path:
    """Smooth motion, which x264 codes with many non-reference B-frames."""
    import av
    import numpy as np

    yy, xx = np.mgrid[0:48, 0:64]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"bframes": "3", "keyint": "250"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.stack([np.sin((xx + 3 * i) / 9) * 100 + 128, np.cos((yy + 2 * i) / 7) * 100 + 128,
                              (xx * yy / 20 + 5 * i) % 255], -1).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_unwanted_b_frames_are_not_decoded_and_the_picks_are_unchanged(tmp_path: Path, monkeypatch) -> None:
    import av

    from erckit.data import media

    path = _b_frame_clip(tmp_path / "smooth.mp4")
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        everything = sum(1 for _ in container.decode(stream))
        container.seek(0)
        one_target = sum(1 for _ in media._decoded(container, stream, [2.0], float(stream.time_base)))
    assert one_target < everything * 0.8
    requests = [(VideoSpec(8, None), None, None), (VideoSpec(5, None), 0.3, 1.9), (VideoSpec(40, None), None, None)]
    skipping = [load_frames(path, spec, start, end) for spec, start, end in requests]
    monkeypatch.setattr(media, "_decoded", lambda container, stream, targets, tick: container.decode(stream))
    for picked, (spec, start, end) in zip(skipping, requests):
        assert torch.equal(picked, load_frames(path, spec, start, end))


def test_load_many_a_bad_span_fails_only_its_request(clip: Path) -> None:
    bad, good = load_many(clip, [(AudioSpec(), 0.8, 0.2), (VideoSpec(num_frames=2, size=None), None, None)])
    assert isinstance(bad, MediaError) and "empty span" in bad.reason
    assert isinstance(good, torch.Tensor) and good.shape[0] == 2
