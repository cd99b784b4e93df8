"""Decoding audio and video with PyAV (the FFmpeg it bundles); torch only for the result.

Contract:

* ``load_audio(path, spec, start, end)`` -> float32 tensor ``[T]``: mono (channels
  averaged), resampled with ``torchaudio.functional.resample`` to
  ``spec.sample_rate``, covering ``[start, end]`` seconds of the file (whole file
  when None), cut to ``spec.max_seconds`` when set. Works for wav/flac/mp3 and the
  audio track of mp4/avi. With ``start`` the container is *seeked*, never decoded
  from 0.
* ``load_frames(path, spec, start, end)`` -> uint8 tensor ``[N, H, W, 3]`` in RGB
  order: ``N = spec.num_frames`` frames at the centres of N equal slices of the
  span, reached by seeking to the span (and again whenever the next target is far
  ahead), decoding forward only as far as the last target, converting only the
  chosen frames; shorter side resized to ``spec.size``.
* ``load_many(path, requests)`` serves several (spec, start, end) requests on one
  file from a single open of it: opening an mp4 with an AAC track costs about as
  much as decoding its audio (FFmpeg probes the track by decoding it), so a MELD
  clip's audio and frames are read through one container.

Every failure is a ``MediaError(path, reason)``: missing file, undecodable or
truncated container, no audio/video stream, nothing decodable in the span
(zero-length audio), or a span longer than ``max_duration`` when one is given.
"""

from __future__ import annotations

import bisect
import functools
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ..errors import MediaError
from .types import AudioSpec, DecoderSpec, MediaSpec, VideoSpec

if TYPE_CHECKING:
    import torch

# When the next wanted frame is further ahead than this, seeking (to the keyframe
# before it) beats decoding every frame in between. Encoders commonly place
# keyframes up to 10 s apart (x264's default is 250 frames): a shorter seek
# usually lands on the keyframe already passed and decodes the same frames again.
SEEK_GAP_SECONDS = 10.0

# Audio decoded ahead of a seek target: a few codec frames (AAC 23 ms, MP3 26 ms).
AUDIO_PREROLL_SECONDS = 0.1

# Part of every media cache key: bump it when decoding changes what a file decodes
# to, so stale entries are not reused. 2: frames shrunk with antialiased bilinear
# in torch instead of FFmpeg's bilinear; audio spans decoded with pre-roll.
DECODER_VERSION = 2


def probe_duration(path: str | Path) -> float | None:
    """Duration in seconds from the container header (no decoding); None if unknown."""

    path = _existing(path)
    with _open(path) as container:
        if container.duration is not None:
            return container.duration / 1_000_000
        for stream in container.streams:
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    return None


def _open(path: Path) -> Any:
    """An open PyAV container; a file FFmpeg cannot open is a ``MediaError`` naming it."""
    import av

    try:
        # Opening a file runs FFmpeg's stream probe, which decodes the first 7-20
        # H.264 frames only to guess their reorder delay, then throws them away:
        # most of the cost of opening a short clip. Telling the probe's decoders
        # to skip every frame avoids that; pixel format and timing still come
        # from the container, and the decoders that read the frames are unaffected.
        return av.open(str(path), options={"skip_frame": "all"})
    except (av.FFmpegError, OSError) as error:
        raise MediaError(path, f"cannot open: {_describe(error)}") from None


def load_audio(
    path: str | Path,
    spec: AudioSpec = AudioSpec(),
    start: float | None = None,
    end: float | None = None,
    *,
    max_duration: float | None = None,
) -> "torch.Tensor":
    """Mono float32 waveform ``[T]`` at ``spec.sample_rate`` for ``[start, end]`` seconds."""
    return _load_one(path, spec, start, end, max_duration)


def load_frames(
    path: str | Path,
    spec: VideoSpec = VideoSpec(),
    start: float | None = None,
    end: float | None = None,
    *,
    max_duration: float | None = None,
) -> "torch.Tensor":
    """``spec.num_frames`` RGB frames ``[N, H, W, 3]`` uint8, uniformly over ``[start, end]``."""
    return _load_one(path, spec, start, end, max_duration)


MediaRequest = tuple[MediaSpec, "float | None", "float | None"]


def load_many(
    path: str | Path, requests: Sequence[MediaRequest], *, max_duration: float | None = None
) -> "list[torch.Tensor | MediaError]":
    """Each ``(spec, start, end)`` request decoded from one open of ``path``.

    Returns, in order, the tensor ``load_audio``/``load_frames`` would return, or
    the ``MediaError`` it would raise: one medium failing (say, an audio-only mp4
    asked for frames) does not cost the others.
    """
    import av

    try:
        path = _existing(path)
    except MediaError as error:
        return [error] * len(requests)
    # A bad span is known without opening the file (and says so first).
    results: list[Any] = [_span_error(path, start, end) for _, start, end in requests]
    if all(results):
        return results
    try:
        container = _open(path)
    except MediaError as error:
        return [result or error for result in results]
    with container:
        opened_fresh = True
        for index, (spec, start, end) in enumerate(requests):
            if results[index] is not None:
                continue
            if isinstance(spec, DecoderSpec):
                raise TypeError(f"{spec!r} is decoded by its own function (erckit.data.pipeline.decode_own), not here")
            read = _read_audio if isinstance(spec, AudioSpec) else _read_frames
            try:
                if not opened_fresh:
                    # The previous read left the demuxer and decoders mid-file.
                    container.seek(0)
                opened_fresh = False
                results[index] = read(container, path, spec, start, end, max_duration)
            except MediaError as error:
                results[index] = error
            except av.FFmpegError as error:
                results[index] = MediaError(path, f"cannot seek: {_describe(error)}")
    return results


def _load_one(
    path: str | Path, spec: MediaSpec, start: float | None, end: float | None, max_duration: float | None
) -> "torch.Tensor":
    (result,) = load_many(path, [(spec, start, end)], max_duration=max_duration)
    if isinstance(result, MediaError):
        raise result
    return result


def _read_audio(
    container: Any, path: Path, spec: AudioSpec, start: float | None, end: float | None, max_duration: float | None
) -> "torch.Tensor":
    import av
    import numpy as np
    import torch

    if not container.streams.audio:
        raise MediaError(path, "no audio stream")
    stream = container.streams.audio[0]
    total = _check_duration(path, container, stream, start, end, max_duration)
    rate = stream.rate or stream.codec_context.sample_rate
    if not rate:
        raise MediaError(path, "audio stream has no sample rate")
    # Planar float at the native rate (torchaudio resamples below), so every codec's
    # sample format looks the same. AAC and MP3 decode to it already; only the
    # others (e.g. 16-bit wav) go through FFmpeg's converter.
    converter = None
    begin = start or 0.0
    if begin > 0:
        # Lapped codecs (AAC, MP3) need the packet before a point to reconstruct
        # it; start a little early so the first frame after the seek, which lacks
        # it, falls before ``start`` and is trimmed away.
        container.seek(_to_pts(max(begin - AUDIO_PREROLL_SECONDS, 0.0), stream.time_base), stream=stream, backward=True)
    chunks: list[np.ndarray] = []
    first_time: float | None = None
    # Without an end, stop at the header's duration: codecs such as AAC pad the
    # last frame, and that padding is not part of the recording.
    limit = end if end is not None else total
    if spec.max_seconds is not None:
        limit = begin + spec.max_seconds if limit is None else min(limit, begin + spec.max_seconds)
    native = True  # frames already planar float: no converter
    tick = float(stream.time_base)
    try:
        for frame in container.decode(stream):
            time = _seconds(frame, tick)
            if first_time is None:
                first_time = time if time is not None else 0.0
                native = frame.format.name == "fltp"
            if limit is not None and time is not None and time >= limit:
                break
            if native:
                chunks.append(frame.to_ndarray())
                continue
            converter = converter or av.AudioResampler(format="fltp")
            chunks.extend(converted.to_ndarray() for converted in converter.resample(frame))
        if converter is not None:
            chunks.extend(converted.to_ndarray() for converted in converter.resample(None))
    except av.FFmpegError as error:
        raise MediaError(path, f"undecodable audio: {_describe(error)}") from None
    # Planar float chunks are [channels, samples]; averaging the channels keeps the
    # level of a mono mix. Done once on the whole span rather than per frame.
    samples = np.concatenate(chunks, axis=1).mean(axis=0) if chunks else np.zeros(0, dtype=np.float32)
    # Trim to the exact span: decoding starts at the packet before ``start``.
    offset = max(0, round((begin - (first_time or 0.0)) * rate))
    stop = None if limit is None else max(offset, round((limit - (first_time or 0.0)) * rate))
    samples = samples[offset:stop]
    if samples.size == 0:
        raise MediaError(path, "zero-length audio" + _span_text(start, end))
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    if rate != spec.sample_rate:
        wave = _resampler(int(rate), spec.sample_rate)(wave)
    if spec.max_seconds is not None:
        wave = wave[: int(round(spec.max_seconds * spec.sample_rate))]
    return wave.contiguous()


def _read_frames(
    container: Any, path: Path, spec: VideoSpec, start: float | None, end: float | None, max_duration: float | None
) -> "torch.Tensor":
    import av
    import numpy as np
    import torch
    import torch.nn.functional as F
    from av.video.reformatter import VideoReformatter

    if spec.num_frames < 1:
        raise MediaError(path, f"num_frames must be >= 1, got {spec.num_frames}")
    if not container.streams.video:
        raise MediaError(path, "no video stream")
    stream = container.streams.video[0]
    total = _check_duration(path, container, stream, start, end, max_duration)
    begin = start or 0.0
    finish = end if end is not None else total
    if finish is None:
        # Header without a duration (rare, e.g. raw streams): only then is the
        # whole file decoded, to find out where it ends.
        finish = _last_frame_time(path, container, stream)
        container.seek(0, stream=stream, backward=True)
    span = max(finish - begin, 0.0)
    targets = [begin + (i + 0.5) * span / spec.num_frames for i in range(spec.num_frames)]
    rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    half_frame = 0.5 / float(rate)
    try:
        picked = _frames_at(container, stream, targets, half_frame)
    except av.FFmpegError as error:
        raise MediaError(path, f"undecodable video: {_describe(error)}") from None
    finally:
        # _frames_at skips frames per packet; later reads of this container decode all.
        stream.codec_context.skip_frame = "DEFAULT"
    if not picked:
        raise MediaError(path, "no video frames" + _span_text(start, end))
    # One scaler for all frames (FFmpeg sets it up once), in this thread: sample
    # loading already runs in parallel workers.
    reformatter = VideoReformatter()
    arrays: dict[int, np.ndarray] = {}
    out = []
    for frame in picked:
        # The same frame can be picked twice (clip shorter than N frames).
        if id(frame) not in arrays:
            arrays[id(frame)] = reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
        out.append(arrays[id(frame)])
    frames = torch.from_numpy(np.stack(out))
    width, height = _target_size(frames.shape[2], frames.shape[1], spec.size)
    if (height, width) == tuple(frames.shape[1:3]):
        return frames
    # Antialiased bilinear, as PIL and torchvision resize for image models; torch's
    # uint8 kernel for channels-last input is twice as fast as FFmpeg's scaler here.
    resized = F.interpolate(frames.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", antialias=True)
    return resized.permute(0, 2, 3, 1).contiguous()


def _frames_at(container: Any, stream: Any, targets: list[float], half_frame: float) -> list[Any]:
    """For each target time, the frame on screen then (the last one with pts <= target).

    Seeks to the keyframe before the first target and again whenever a target is
    more than ``SEEK_GAP_SECONDS`` ahead of what was decoded; otherwise decodes
    forward. Stops at the last target, so the rest of the file is never decoded.
    A target before the first frame gets the first frame; one past the end of the
    stream gets the last.
    """
    picked: list[Any] = []
    frames: Iterator[Any] | None = None
    shown: Any = None  # last decoded frame at or before the current target
    ahead: Any = None  # a decoded frame already past the current target
    position = float("-inf")
    exhausted = False
    tick = float(stream.time_base)
    # A frame is on screen at target t when its time <= t + 1e-6 < the next frame's time.
    shifted = [target + 1e-6 for target in targets]
    for target in targets:
        if frames is None or (not exhausted and target - position > SEEK_GAP_SECONDS):
            seek_to = max(target - half_frame, 0.0)
            container.seek(_to_pts(seek_to, stream.time_base), stream=stream, backward=True)
            frames, shown, ahead = _decoded(container, stream, shifted, tick), None, None
        while not exhausted:
            if ahead is None:
                ahead = next(frames, None)
                if ahead is None:
                    exhausted = True
                    break
                time = _seconds(ahead, tick)
                position = time if time is not None else position + 2 * half_frame
            if position > target + 1e-6:
                break
            shown, ahead = ahead, None
        chosen = shown if shown is not None else ahead
        if chosen is not None:
            picked.append(chosen)
    return picked


def _decoded(container: Any, stream: Any, shifted_targets: list[float], tick: float) -> Iterator[Any]:
    """The stream's frames from the current position, in display order, except non-reference
    frames (most B-frames) that cannot be on screen at any target, which are not decoded at all.

    A frame at time p is on screen at a target only if the target lies in [p, next frame's
    time). Packets arrive in decode order with their times; once a packet later in display
    order (time q > p) has been seen, the next frame is no later than q, so a frame with no
    target in [p, q) is never wanted. Such a packet is decoded with ``skip_frame = NONREF``:
    the decoder drops it only if no other frame refers to it, so the frames kept are exactly
    those a full decode gives. Packets without a time, and codecs without the option, decode
    as usual. In content with B-frames this skips about a third of the decoding.
    """
    context = stream.codec_context
    seen: list[float] = []  # times of the packets so far, sorted
    for packet in container.demux(stream):
        skip = False
        if packet.pts is not None:
            time = packet.pts * tick
            later = bisect.bisect_right(seen, time)
            if later < len(seen):
                first_target = bisect.bisect_left(shifted_targets, time)
                skip = first_target == len(shifted_targets) or shifted_targets[first_target] >= seen[later]
            bisect.insort(seen, time)
        context.skip_frame = "NONREF" if skip else "DEFAULT"
        yield from packet.decode()


def _seconds(frame: Any, tick: float) -> float | None:
    """``frame.time`` for a frame of a stream whose time base is ``tick`` seconds; PyAV's
    exact-fraction version costs more per frame than decoding a short audio frame."""
    pts = frame.pts
    return None if pts is None else pts * tick


def _last_frame_time(path: Path, container: Any, stream: Any) -> float:
    last = 0.0
    for frame in container.decode(stream):
        if frame.time is not None:
            last = frame.time
    return last


def _target_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """Scale so the shorter side is ``size``, keeping the aspect ratio (even sizes not needed: RGB)."""
    if size is None:
        return width, height
    if width <= height:
        return size, max(1, round(height * size / width))
    return max(1, round(width * size / height)), size


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> Any:
    """torchaudio's sinc resampler for a rate pair, kernel built once.

    Same result as ``torchaudio.functional.resample(wave, orig, new)``, which
    rebuilds the kernel on every call: that costs more than the filtering itself
    (e.g. 44.1 -> 16 kHz), so it is kept per process.
    """
    import torchaudio

    return torchaudio.transforms.Resample(orig, new)


def _to_pts(seconds: float, time_base: Fraction | None) -> int:
    return int(seconds / time_base) if time_base else int(seconds * 1_000_000)


def _check_duration(
    path: Path, container: Any, stream: Any, start: float | None, end: float | None, max_duration: float | None
) -> float | None:
    """The file's duration (header only); raises when the span exceeds ``max_duration``."""
    total: float | None = None
    if stream.duration is not None and stream.time_base is not None:
        total = float(stream.duration * stream.time_base) + float(
            (stream.start_time or 0) * stream.time_base
        )
    elif container.duration is not None:
        total = container.duration / 1_000_000
    if max_duration is not None:
        stop = end if end is not None else total
        if stop is not None:
            length = stop - (start or 0.0)
            if length > max_duration:
                raise MediaError(
                    path, f"clip is {length:.2f} s long, longer than the maximum of {max_duration:g} s"
                )
    return total


def _span_error(path: Path, start: float | None, end: float | None) -> MediaError | None:
    if start is not None and start < 0:
        return MediaError(path, f"start {start} s is negative")
    if start is not None and end is not None and end <= start:
        return MediaError(path, f"empty span: end {end} s is not after start {start} s")
    return None


def check_file_and_span(path: Path, start: float | None, end: float | None) -> MediaError | None:
    """The ``MediaError`` for a missing file or an impossible span, else None (checks own decoders get too)."""
    try:
        _existing(path)
    except MediaError as error:
        return error
    return _span_error(path, start, end)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found" if not path.exists() else "not a file")
    return path


def _span_text(start: float | None, end: float | None) -> str:
    if start is None and end is None:
        return ""
    return f" in span [{start if start is not None else 0:g}, {end if end is not None else 'end'}] s"


def _describe(error: BaseException) -> str:
    # FFmpegError's str() repeats the file name; the reason alone reads better after it.
    strerror = getattr(error, "strerror", None)
    return strerror or str(error) or type(error).__name__
