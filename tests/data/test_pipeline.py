from __future__ import annotations

from pathlib import Path

import pytest
import torch

from erckit.data.cache import DiskCache, cache_key
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


# -- DecoderSpec: an encoder's own decoder -------------------------------------------------------

import own_decoders  # noqa: E402  (tests/ is on sys.path)

from erckit.data.types import DecoderSpec  # noqa: E402
from erckit.errors import ErckitError  # noqa: E402

OWN_AUDIO = DecoderSpec("audio", "own_decoders:read_bytes", options=(("scale", 2.0),))
OWN_VISUAL = DecoderSpec("visual", "own_decoders:read_bytes")


def _own_samples(tmp_path: Path) -> list:
    good = tmp_path / "good.bin"
    good.write_bytes(bytes(range(10)))
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"garbage" * 5)
    dialogue = Dialogue(
        "d1",
        (
            Utterance("A", "hi", "joy", audio=good, video=good, start=1.0, end=2.5),
            Utterance("B", "no media", "joy"),
            Utterance("A", "broken", "joy", audio=broken, video=broken),
        ),
    )
    return make_samples([dialogue], ["joy"])


def test_own_decoder_is_called_once_then_cached(tmp_path: Path) -> None:
    own_decoders.CALLS.clear()
    samples = _own_samples(tmp_path)[:1]
    cache = DiskCache(tmp_path / "cache")
    report = MediaResolver(cache, "error").prepare(samples, [OWN_AUDIO, OWN_VISUAL], progress=False)
    assert (report.decoded, report.cached) == (2, 0)
    # Both specs decoded, each with the span and its options.
    assert own_decoders.CALLS == [("good.bin", 1.0, 2.5), ("good.bin", 1.0, 2.5)]
    sample = samples[0]
    assert MediaResolver(cache, "error").fill(sample, [OWN_AUDIO, OWN_VISUAL])
    assert len(own_decoders.CALLS) == 2  # filled from the cache
    assert torch.equal(sample.audio, torch.arange(10, dtype=torch.float32) * 2.0)
    assert torch.equal(sample.frames, torch.arange(10, dtype=torch.float32))
    assert sample.present == {"audio": True, "visual": True}
    # Other options are another key: decoded again.
    other = DecoderSpec("audio", "own_decoders:read_bytes", options=(("scale", 3.0),))
    assert MediaResolver(cache, "error").fill(sample, [other])
    assert len(own_decoders.CALLS) == 3 and float(sample.audio[1]) == 3.0


def test_own_decoder_policies(tmp_path: Path) -> None:
    samples = _own_samples(tmp_path)
    zero = MediaResolver(DiskCache(tmp_path / "c"), "zero")
    report = zero.prepare(samples, [OWN_AUDIO], progress=False)
    assert (report.decoded, report.failed, report.zeroed) == (1, 1, 2)
    assert any("broken.bin" in where for where in report.reasons)
    for sample in samples[1:]:  # absent, then unreadable
        assert zero.fill(sample, [OWN_AUDIO])
        assert sample.audio.shape == (0,) and sample.present == {"audio": False}
    skip = MediaResolver(None, "skip")
    assert [s.key for s in samples if skip.fill(s, [OWN_VISUAL])] == ["d1/0"]
    error = MediaResolver(DiskCache(tmp_path / "e"), "error")
    with pytest.raises(DataError, match="broken.bin: not a file this decoder reads"):
        error.prepare(samples, [OWN_AUDIO], progress=False)
    with pytest.raises(MediaError, match="not a file this decoder reads"):
        MediaResolver(None, "error").fill(samples[2], [OWN_AUDIO])


def test_own_decoder_gets_no_call_for_a_missing_file(tmp_path: Path) -> None:
    own_decoders.CALLS.clear()
    sample = make_samples([Dialogue("d", (Utterance("A", "x", "joy", audio=tmp_path / "gone.wav"),))], ["joy"])[0]
    with pytest.raises(MediaError, match="file not found"):
        MediaResolver(None, "error").fill(sample, [OWN_AUDIO])
    assert own_decoders.CALLS == []


@pytest.mark.parametrize(
    ("decoder", "message"),
    [
        ("no_such_module_here:read", "'no_such_module_here:read': cannot import 'no_such_module_here'"),
        ("own_decoders:absent", "module 'own_decoders' has no function 'absent'"),
        ("own_decoders:NOT_CALLABLE", "has no function 'NOT_CALLABLE'"),
        ("own_decoders:not_a_tensor", "returned list .* not a torch.Tensor"),
    ],
)
def test_own_decoder_that_cannot_work_is_one_error(tmp_path: Path, decoder: str, message: str) -> None:
    sample = _own_samples(tmp_path)[0]
    with pytest.raises(ErckitError, match=message):
        MediaResolver(None, "zero").fill(sample, [DecoderSpec("audio", decoder)])


def test_decoder_spec_checks_its_fields() -> None:
    with pytest.raises(DataError, match="modality 'text' is not one of: audio, visual"):
        DecoderSpec("text", "own_decoders:read_bytes")
    for bad in ("own_decoders", "own_decoders:", "own decoders:read", "a.:b", ":read"):
        with pytest.raises(DataError, match="form 'package.module:function'"):
            DecoderSpec("audio", bad)
    with pytest.raises(DataError, match="values must be"):
        DecoderSpec("audio", "a.b:c", options=(("table", {"x": 1}),))
    with pytest.raises(DataError, match="twice"):
        DecoderSpec("audio", "a.b:c", options=(("x", 1), ("x", 2)))
    # Options in any order are one spec and one cache key.
    first = DecoderSpec("audio", "a.b:c", options=(("x", 1), ("y", (1, 2))))
    second = DecoderSpec("audio", "a.b:c", options=(("y", (1, 2)), ("x", 1)))
    assert first == second and hash(first) == hash(second)
    assert cache_key({"spec": first}) == cache_key({"spec": second})
    assert cache_key({"spec": first}) != cache_key({"spec": DecoderSpec("visual", "a.b:c", options=(("x", 1), ("y", (1, 2))))})
