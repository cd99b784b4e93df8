"""Predict on one long recording (an episode, a call, a meeting) cut by its subtitles or transcript.

``predict_media(model, "episode.mp4", subtitles="episode.srt")``: each cue becomes
an utterance spanning its part of the one file; consecutive cues form a
dialogue (``gap`` seconds of silence start the next). Every span the model's
encoders need is decoded from a single open of the file before prediction
(``MediaResolver.prepare`` groups all jobs on one file into one
``load_many``), so a 300-cue episode costs one FFmpeg probe, not 300.

Problems with the cues or the media are per cue, under the media policy:
``zero`` (the default) predicts the cue anyway and warns (``CueWarning``, the
cue named), ``error`` raises. Nothing is written here: the result's
``to_srt``/``to_vtt``/``timeline`` build the outputs, for the caller to write.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .data.subtitles import Cue, CueWarning, dialogues_from_cues, fit_to_duration, format_srt, format_vtt, read_cues, tidy_cues
from .errors import DataError, ErckitError, MediaError, UsageError
from .predict import DialoguePrediction, Predictor, UtterancePrediction, predict_with

if TYPE_CHECKING:
    from .data.types import Dialogue
    from .model import ERCModel

PLOT_EXTRA = "pip install 'erckit[plot]'"
ASR_EXTRA = "pip install 'erckit[asr]'"
TIMELINE_SIZE = (1200, 400)  # pixels


@dataclass
class MediaPrediction:
    """The predictions for a recording: its dialogues and, aligned with their utterances, the cues."""

    media: Path
    dialogues: list[DialoguePrediction]
    cues: list[Cue]
    inputs: list["Dialogue"]

    def utterances(self) -> list[UtterancePrediction]:
        return [u for d in self.dialogues for u in d.utterances]

    def notes(self) -> list[str]:
        return [f"[{p.label} {p.confidence:.2f}]" for p in self.utterances()]

    def to_srt(self) -> str:
        """The cues as SRT, each with its emotion and probability on a line below the text."""
        return format_srt(self.cues, self.notes())

    def to_vtt(self) -> str:
        return format_vtt(self.cues, self.notes())

    def timeline(self, path: str | Path, size: tuple[int, int] = TIMELINE_SIZE) -> Path:
        """Write a PNG of ``size`` pixels: one row per speaker, a coloured span per cue, a probability strip."""
        return write_timeline(self, Path(path), size)


@dataclass
class Episode:
    media: Path
    cues: list[Cue]
    dialogues: list["Dialogue"]


def load_episode(
    media: str | Path, cues: Sequence[Cue], *, gap: float | None = None, media_policy: str = "zero",
    on_warning: Callable[[str], None] | None = None,
) -> Episode:
    """The dialogues of ``media`` cut by ``cues``, after checking both (see the module doc for the policy)."""
    warn = on_warning or (lambda message: warnings.warn(message, CueWarning, stacklevel=3))
    path = Path(media).expanduser().absolute()
    if not path.is_file():
        raise DataError(f"{path}: media file not found")
    has_audio, has_video, duration = _streams(path)
    cues, messages = tidy_cues(cues)
    if not cues:
        raise DataError(f"no usable cue for {path}" + (f" ({messages[0]})" if messages else ""))
    outside: list[Cue] = []
    if duration is not None:
        cues, outside, cut = fit_to_duration(cues, duration)
        messages += cut
    problems = [f"{cue.describe()} starts after the media's end ({duration:.3f} s)" for cue in outside]
    for medium, present in (("audio", has_audio), ("video", has_video)):
        if not present:
            problems.append(f"{path} has no {medium} stream")
    if media_policy == "error" and problems:
        raise MediaError(path, "; ".join(problems) + " (media policy 'error')")
    for message in messages:
        warn(message)
    for cue in outside:
        warn(f"{cue.describe()} starts after the media's end ({duration:.3f} s): predicted without audio and video")
    for medium, present in (("audio", has_audio), ("video", has_video)):
        if not present:
            warn(f"{path} has no {medium} stream: every cue is predicted without {medium}")
    ordered = sorted(cues + outside, key=lambda c: (c.start, c.end))
    dialogues = dialogues_from_cues(ordered, path, audio=has_audio, video=has_video, gap=gap, name=path.stem)
    # Utterance ids are cue<N>, N the 1-based position in ``ordered``: a cue past the end keeps its text only.
    late = {f"cue{n}" for n, cue in enumerate(ordered, start=1) if any(cue is c for c in outside)}
    dialogues = [
        replace(d, utterances=tuple(replace(u, audio=None, video=None) if u.id in late else u for u in d.utterances))
        for d in dialogues
    ]
    return Episode(path, ordered, dialogues)


def _streams(path: Path) -> tuple[bool, bool, float | None]:
    """(has audio, has video, duration in seconds or None) from the container header."""
    import av

    try:
        with av.open(str(path)) as container:
            duration = container.duration / 1_000_000 if container.duration is not None else None
            return bool(container.streams.audio), bool(container.streams.video), duration
    except av.FFmpegError as error:
        raise MediaError(path, f"cannot open: {getattr(error, 'strerror', None) or error}") from None


def predict_media(
    model: "ERCModel", media: str | Path, *, subtitles: str | Path | None = None, transcript: str | Path | None = None,
    asr: str | None = None, gap: float | None = None, speaker_pattern: str | None = None,
    encoding: str | None = None, on_warning: Callable[[str], None] | None = None, **options: Any,
) -> MediaPrediction:
    """Label every cue of ``media``: from ``subtitles`` (.srt/.vtt), a ``transcript`` (.jsonl/.csv) or ``asr`` (a model id).

    ``options`` are ``erckit.predict.predict``'s (``media_policy``, ``batch_size``, ...).
    """
    cues = media_cues(media, subtitles=subtitles, transcript=transcript, asr=asr,
                      speaker_pattern=speaker_pattern, encoding=encoding)
    episode = load_episode(media, cues, gap=gap, media_policy=options.get("media_policy", "zero"), on_warning=on_warning)
    return predict_episode(model, episode, **options)


def media_cues(
    media: str | Path, *, subtitles: str | Path | None = None, transcript: str | Path | None = None,
    asr: str | None = None, speaker_pattern: str | None = None, encoding: str | None = None,
) -> list[Cue]:
    given = [name for name, value in (("subtitles", subtitles), ("transcript", transcript), ("asr", asr)) if value]
    if len(given) != 1:
        raise UsageError(f"give exactly one of subtitles, transcript or asr for {media} (got {', '.join(given) or 'none'})")
    if asr:
        return transcribe(Path(media), asr)
    return read_cues(subtitles or transcript, speaker_pattern=speaker_pattern, encoding=encoding)  # type: ignore[arg-type]


def predict_episode(model: "ERCModel", episode: Episode, **options: Any) -> MediaPrediction:
    predictor = Predictor(model, **options)
    prefetch(predictor, episode.dialogues)
    predictions = predict_with(predictor, episode.dialogues)
    return MediaPrediction(episode.media, predictions, episode.cues, episode.dialogues)


def prefetch(predictor: Predictor, dialogues: Sequence["Dialogue"]) -> None:
    """Decode every span the encoders need, each file opened once, into the predictor's cache (in memory by default)."""
    from .data.types import make_samples

    resolver = predictor.resolver
    if resolver is None:
        return
    if resolver.cache is None:
        resolver.cache = MemoryCache()  # type: ignore[assignment]
    specs = sorted({e.media for e in predictor.encoders.values() if e.media is not None}, key=repr)
    samples = make_samples(list(dialogues), [], max_context=1)
    resolver.prepare(samples, specs, progress=False)


class MemoryCache:
    """``DiskCache``'s get/put in a dict: the decoded spans of one run, never written to disk."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, tensors: dict[str, Any]) -> None:
        self.entries[key] = dict(tensors)


# --------------------------------------------------------------------- ASR


def transcribe(media: Path, model_id: str) -> list[Cue]:
    """Cues from a speech recogniser: ``transformers.pipeline("automatic-speech-recognition")`` with timestamps.

    A recording longer than 30 s is transcribed by Whisper's own sequential long-form decoding
    (the pipeline hands the whole input to ``generate``), not by the pipeline's experimental chunking."""
    try:
        from transformers import pipeline
    except ImportError:
        raise ErckitError(f"--asr needs transformers: {ASR_EXTRA}") from None
    from .data.media import load_audio
    from .data.subtitles import UNKNOWN_SPEAKER
    from .data.types import AudioSpec

    wave = load_audio(media, AudioSpec(16_000))
    try:
        recogniser = pipeline("automatic-speech-recognition", model=model_id)
    except (OSError, ValueError) as error:
        raise ErckitError(f"cannot load the speech recogniser {model_id!r}: {str(error).splitlines()[0]}") from None
    result = recogniser({"raw": wave.numpy(), "sampling_rate": 16_000}, return_timestamps=True)
    total = wave.numel() / 16_000
    cues = []
    for number, chunk in enumerate(result.get("chunks", []), start=1):
        start, end = chunk["timestamp"]
        start = 0.0 if start is None else float(start)
        end = total if end is None else float(end)
        cues.append(Cue(start, end, chunk["text"].strip(), UNKNOWN_SPEAKER, f"{media} (asr segment {number})"))
    return cues


# ---------------------------------------------------------------- timeline


def write_timeline(result: MediaPrediction, path: Path, size: tuple[int, int] = TIMELINE_SIZE) -> Path:
    """One row per speaker (first appearance on top), each cue a span coloured by its emotion, and
    below, the probability of every emotion over time as a stacked strip. Written atomically."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError:
        raise ErckitError(f"--timeline needs matplotlib: {PLOT_EXTRA}") from None
    from .fileio import atomic_path

    width, height = size
    if width < 200 or height < 150:
        raise ErckitError(f"timeline size {width}x{height} is too small (at least 200x150 pixels)")
    predictions = result.utterances()
    labels = list(predictions[0].probabilities) if predictions else []
    colours = {label: matplotlib.colormaps["tab10"](i % 10) for i, label in enumerate(labels)}
    speakers = list(dict.fromkeys(cue.speaker for cue in result.cues))
    figure = Figure(figsize=(width / 100, height / 100), dpi=100)
    rows, strip = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [max(len(speakers), 1), 1.2]})
    for cue, p in zip(result.cues, predictions):
        row = speakers.index(cue.speaker)
        rows.broken_barh([(cue.start, cue.end - cue.start)], (row - 0.4, 0.8), color=colours[p.label],
                         alpha=0.35 + 0.65 * p.confidence)
    rows.set_yticks(range(len(speakers)), speakers)
    rows.set_ylim(len(speakers) - 0.5, -0.5)
    rows.set_title(f"{result.media.name}: emotion per speaker")
    rows.legend(handles=[Patch(color=colours[label], label=label) for label in labels],
                loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", frameon=False)
    for cue, p in zip(result.cues, predictions):
        bottom = 0.0
        for label in labels:
            strip.bar(cue.start, p.probabilities[label], width=cue.end - cue.start, bottom=bottom,
                      align="edge", color=colours[label], linewidth=0)
            bottom += p.probabilities[label]
    strip.set_ylim(0, 1)
    strip.set_ylabel("p")
    strip.set_xlabel("seconds")
    figure.subplots_adjust(left=0.1, right=0.86, top=0.9, bottom=0.15, hspace=0.15)
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=100)
    return path


__all__ = ["Episode", "MediaPrediction", "load_episode", "predict_episode", "predict_media", "transcribe", "write_timeline"]
