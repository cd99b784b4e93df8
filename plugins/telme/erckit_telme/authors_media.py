"""Audio as the TelME authors read it: ``librosa.load(path)`` (MELD/utils.py ``get_audio``).

That call returns mono float32 at librosa's default 22,050 Hz. How librosa gets
there depends on the file:

* files libsndfile reads (wav, flac, ogg): librosa's soundfile path. Called as is.
* anything else (MELD's mp4 clips): librosa falls back to audioread, whose
  FFmpeg backend runs ``ffmpeg -i PATH -f s16le -``: the first audio stream
  decoded to interleaved 16-bit samples at the native rate. That needs an
  ``ffmpeg`` program and varies with the machine's audioread backends, so it is
  done here with PyAV (the FFmpeg libraries erckit decodes with): decode,
  convert to packed s16 (what the ffmpeg CLI's ``s16le`` output holds), then
  librosa's own steps on it: ``util.buf_to_float`` (/32768), ``to_mono``
  (channel average) and ``resample(native -> 22050, res_type="soxr_hq")``, as
  ``librosa.load`` (0.10 and later) does after audioread.

Differences a user may meet: ffmpeg chooses the audio stream with the most
channels (so does this, first on ties); the ffmpeg CLI skips undecodable
packets where this raises ``MediaError`` (a damaged clip is an error, not a
shorter clip).

A span (``start``/``end``, seconds) is cut from the 22,050 Hz result, after the
whole file was read; the authors always read whole files (MELD clips, IEMOCAP
utterance wavs), so it only matters to other data.

Registered with the data pipeline as ``DecoderSpec("audio",
"erckit_telme.authors_media:read_audio_authors")``: decoded once, then cached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from erckit.errors import ErckitError, MediaError

AUTHORS_RATE = 22_050  # librosa.load's default sr
READ_AUDIO = "erckit_telme.authors_media:read_audio_authors"


def librosa_module() -> Any:
    """librosa, or the one-line error naming the plugin's extra."""
    try:
        import librosa
    except ImportError:
        raise ErckitError('preprocessing = "authors" needs librosa: pip install "erckit-telme[authors]"') from None
    return librosa


def read_audio_authors(path: Path, start: float | None = None, end: float | None = None) -> torch.Tensor:
    """``librosa.load(path)[0]`` as a float32 tensor ``[T]`` at 22,050 Hz, cut to ``[start, end]`` if given."""
    librosa = librosa_module()
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file not found" if not path.exists() else "not a file")
    if _libsndfile_reads(path):
        try:
            audio, _ = librosa.load(str(path))
        except Exception as error:  # noqa: BLE001 - libsndfile opened it but could not read it
            raise MediaError(path, f"undecodable audio: {error}") from None
    else:
        native, rate = _ffmpeg_s16(path)
        audio = librosa.to_mono(native)
        audio = librosa.resample(audio, orig_sr=rate, target_sr=AUTHORS_RATE, res_type="soxr_hq")
    first = 0 if start is None else int(round(start * AUTHORS_RATE))
    last = None if end is None else int(round(end * AUTHORS_RATE))
    audio = audio[first:last]
    if audio.size == 0:
        raise MediaError(path, "zero-length audio")
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))


def _libsndfile_reads(path: Path) -> bool:
    """Whether librosa's first try, soundfile, opens the file (else it falls back to audioread)."""
    import soundfile

    try:
        with soundfile.SoundFile(str(path)):
            return True
    except soundfile.SoundFileRuntimeError:
        return False


def _ffmpeg_s16(path: Path) -> tuple[np.ndarray, int]:
    """What librosa builds from audioread's FFmpeg output: float32 ``[channels, n]`` (``[n]`` if mono), native rate."""
    import av

    librosa = librosa_module()
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        raise MediaError(path, f"cannot open: {error}") from None
    with container:
        streams = list(container.streams.audio)
        if not streams:
            raise MediaError(path, "no audio stream")
        stream = max(streams, key=lambda s: s.codec_context.channels)  # max keeps the first on ties
        rate = stream.codec_context.sample_rate
        channels = stream.codec_context.channels
        if not rate or not channels:
            raise MediaError(path, "audio stream has no sample rate or channel count")
        resampler = av.AudioResampler(format="s16", layout=stream.codec_context.layout, rate=rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
        except av.FFmpegError as error:
            raise MediaError(path, f"undecodable audio: {error}") from None
    interleaved = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
    audio = librosa.util.buf_to_float(interleaved.astype("<i2").tobytes(), n_bytes=2, dtype=np.float32)
    if channels > 1:
        audio = audio.reshape((-1, channels)).T
    return audio, int(rate)
