from __future__ import annotations

from pathlib import Path

import pytest
import torch

from erckit.data.cache import DiskCache
from erckit.data.pipeline import MediaResolver
from erckit.data.types import AudioSpec, Dialogue, Utterance, VideoSpec, make_samples
from erckit.errors import DataError, MediaError

SPECS = [AudioSpec(sample_rate=16_000), VideoSpec(num_frames=4, size=32)]


def _samples(tmp_path: Path, make_clip) -> list:
    good = make_clip(tmp_path / "good.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"garbage" * 50)
    dialogue = Dialogue(
        "d1",
        (
            Utterance("A", "hi", "joy", audio=good, video=good),
            Utterance("B", "no media", "joy"),
            Utterance("A", "broken", "joy", audio=broken, video=broken),
            Utterance("B", "gone", "joy", audio=tmp_path / "gone.wav", video=None),
        ),
    )
    return make_samples([dialogue], ["joy"])


def test_prepare_then_fill_from_cache(tmp_path: Path, make_clip) -> None:
    samples = _samples(tmp_path, make_clip)[:1]
    cache = DiskCache(tmp_path / "cache")
    resolver = MediaResolver(cache, "error")
    report = resolver.prepare(samples, SPECS, progress=False)
    assert (report.decoded, report.cached, report.failed) == (2, 0, 0)
    again = MediaResolver(cache, "error").prepare(samples, SPECS, progress=False)
    assert (again.decoded, again.cached) == (0, 2)
    sample = samples[0]
    assert resolver.fill(sample, SPECS)
    assert sample.audio.shape[0] == pytest.approx(16_000, abs=16)
    assert sample.frames.shape == (4, 32, 43, 3)
    assert sample.present == {"audio": True, "visual": True}


def test_policy_error_lists_every_problem(tmp_path: Path, make_clip) -> None:
    samples = _samples(tmp_path, make_clip)
    resolver = MediaResolver(DiskCache(tmp_path / "c"), "error")
    with pytest.raises(DataError) as info:
        resolver.prepare(samples, SPECS, progress=False)
    message = str(info.value)
    assert "broken.mp4" in message and "gone.wav" in message and "d1/1 (audio)" in message
    with pytest.raises(MediaError):
        resolver.fill(samples[2], SPECS)


def test_policy_zero_stands_in_and_masks(tmp_path: Path, make_clip) -> None:
    samples = _samples(tmp_path, make_clip)
    resolver = MediaResolver(DiskCache(tmp_path / "c"), "zero")
    report = resolver.prepare(samples, SPECS, progress=False)
    # 2 decoded (good audio+video), broken audio+video fail, gone.wav fails.
    assert report.decoded == 2 and report.failed == 3
    # zeroed per (sample, medium): d1/1 x2 absent, d1/2 x2 broken, d1/3 audio missing + video absent
    assert report.zeroed == 6
    assert any("gone.wav" in where for where in report.reasons)
    broken = samples[2]
    assert resolver.fill(broken, SPECS)
    assert torch.equal(broken.audio, torch.zeros(16_000))
    assert broken.frames.shape == (4, 32, 32, 3) and int(broken.frames.max()) == 0
    assert broken.present == {"audio": False, "visual": False}


def test_policy_skip_drops_and_reports(tmp_path: Path, make_clip) -> None:
    samples = _samples(tmp_path, make_clip)
    resolver = MediaResolver(None, "skip")  # no cache: decode directly
    kept = [s for s in samples if resolver.fill(s, SPECS)]
    assert [s.key for s in kept] == ["d1/0"]
    assert resolver.report.skipped == 3 and resolver.report.skipped_samples == ["d1/1", "d1/2", "d1/3"]


def test_unknown_policy_lists_choices() -> None:
    with pytest.raises(DataError, match="error, skip, zero"):
        MediaResolver(None, "ignore")  # type: ignore[arg-type]


def test_report_renders(tmp_path: Path, make_clip) -> None:
    from rich.console import Console

    resolver = MediaResolver(None, "zero")
    report = resolver.prepare(_samples(tmp_path, make_clip), SPECS, progress=False)
    console = Console(record=True, width=200)
    console.print(report.render())
    text = console.export_text()
    assert "decoded" in text and "broken.mp4" in text


def test_audio_and_frames_of_one_clip_come_from_one_open(tmp_path: Path, make_clip, monkeypatch) -> None:
    from erckit.data import media

    opened: list[Path] = []
    real_open = media._open

    def counting_open(path: Path):
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(media, "_open", counting_open)
    sample = _samples(tmp_path, make_clip)[0]
    assert MediaResolver(DiskCache(tmp_path / "cache"), "error").fill(sample, SPECS)
    assert sample.present == {"audio": True, "visual": True}
    assert [path.name for path in opened] == ["good.mp4"]
