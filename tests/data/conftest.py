"""Small media files built with PyAV in tmp_path, shared by the data tests."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest


def build_clip(
    path: Path,
    seconds: float = 1.0,
    fps: int = 10,
    size: tuple[int, int] = (64, 48),
    color: tuple[int, int, int] = (255, 0, 0),
    audio_rate: int | None = 44_100,
    video: bool = True,
    codec: str = "mpeg4",
    tone: float = 440.0,
) -> Path:
    """An mp4/avi with a solid-colour video (frame index drawn as a bar) and a stereo tone."""
    import av

    with av.open(str(path), "w") as container:
        vstream = astream = None
        if video:
            vstream = container.add_stream(codec, rate=fps)
            vstream.width, vstream.height = size
            vstream.pix_fmt = "yuv420p"
        if audio_rate:
            astream = container.add_stream("aac", rate=audio_rate)
            astream.layout = "stereo"
        if vstream is not None:
            for i in range(int(round(seconds * fps))):
                image = np.empty((size[1], size[0], 3), np.uint8)
                image[:] = color
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode())
        if astream is not None:
            n = int(seconds * audio_rate)
            signal = (0.3 * np.sin(2 * np.pi * tone * np.arange(n) / audio_rate)).astype(np.float32)
            for i in range(0, n, 1024):
                chunk = np.ascontiguousarray(np.stack([signal[i : i + 1024]] * 2))
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate = audio_rate
                frame.pts = i
                container.mux(astream.encode(frame))
            container.mux(astream.encode())
    return path


def build_wav(path: Path, seconds: float = 1.0, rate: int = 16_000, tone: float = 440.0) -> Path:
    n = int(round(seconds * rate))
    signal = 0.3 * np.sin(2 * np.pi * tone * np.arange(n) / rate)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((signal * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def make_clip():
    """``make_clip(path, seconds=1, fps=10, size=(64, 48), color=red, audio_rate=44100, video=True, ...)``."""
    return build_clip


@pytest.fixture
def make_wav():
    """``make_wav(path, seconds=1, rate=16000, tone=440)``: a mono 16-bit wav."""
    return build_wav


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    """A 1 s red 64x48 mp4 at 10 fps with 44.1 kHz stereo audio."""
    return build_clip(tmp_path / "clip.mp4")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo data set (written once per session)."""
    from erckit.data.demo import write_demo

    root = tmp_path_factory.mktemp("demo")
    write_demo(root, seed=0, dialogues={"train": 6, "dev": 2, "test": 2})
    return root
