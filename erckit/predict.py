"""Label every utterance of some dialogues with a trained ``ERCModel``.

* ``predict(model, dialogues)`` batches all utterances of all dialogues
  together, sorted by length (little padding), and returns one
  ``DialoguePrediction`` per dialogue, in input order.
* ``predict_stream(model, lines)`` serves a live conversation: each input line
  is one utterance; its prediction is yielded as soon as the line is read,
  computed on the causal context seen so far (the same answer ``predict`` gives
  for that utterance of the finished dialogue).

Every utterance gets a label. An utterance whose audio or video is absent or
broken is still predicted, through the fuser's missing-modality path (media
policy ``zero``), and its ``missing`` field names what was absent. Gold labels
in the input are kept as strings and never need to be in the model's label set.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import torch

from .data.context import TruncationTally, count_truncations
from .data.types import Dialogue, Sample, Utterance, Window, make_samples
from .errors import DataError, ErckitError, PredictionError, UsageError

if TYPE_CHECKING:
    from .model import ERCModel

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
# "skip" would drop utterances, but predict promises a label for every one.
PREDICT_MEDIA_POLICIES = ("zero", "error")
PROBABILITY_DIGITS = 6  # in every output: more would be float noise, fewer hides small classes
STREAM_KEYS = {"dialogue", "speaker", "text", "audio", "video", "start", "end", "label", "id"}


@dataclass
class UtterancePrediction:
    """The prediction for one utterance.

    ``probabilities`` has every label of the model (summing to 1);
    ``modalities_used`` names the model's encoders whose input was present,
    ``missing`` the ones that ran on a stand-in (absent or broken media).
    ``gold`` is the input's label, if any, verbatim (it may be a label the
    model does not know).
    """

    dialogue_id: str
    position: int
    speaker: str
    text: str
    label: str
    probabilities: dict[str, float]
    modalities_used: list[str]
    missing: list[str] = field(default_factory=list)
    gold: str | None = None

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def output_fields(self) -> dict[str, Any]:
        """What ``erckit predict`` (and ``erckit serve``) add to an input utterance object."""
        return {
            "prediction": self.label,
            "probabilities": {k: round(v, PROBABILITY_DIGITS) for k, v in self.probabilities.items()},
            "modalities": self.modalities_used,
            "missing": self.missing,
        }


@dataclass
class DialoguePrediction:
    id: str
    utterances: list[UtterancePrediction]


class Predictor:
    """A model ready for inference: device, precision, media resolver, batching.

    Shared by ``predict``, ``predict_stream`` and evaluation so they all compute
    exactly the same thing. Moves ``model`` to ``device`` when one is given.
    """

    def __init__(
        self,
        model: "ERCModel",
        *,
        batch_size: int = 32,
        precision: str = "fp32",
        device: str | torch.device | None = None,
        media_policy: str = "zero",
        cache_dir: str | Path | None = None,
        max_context: int | None = None,
        padding_slack: float | None = None,
    ):
        if batch_size < 1:
            raise UsageError(f"batch size must be at least 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise UsageError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if media_policy not in PREDICT_MEDIA_POLICIES:
            raise UsageError(
                f"media policy {media_policy!r} cannot be used to predict (every utterance gets a label); "
                f"choose one of {', '.join(PREDICT_MEDIA_POLICIES)}"
            )
        if padding_slack is not None and padding_slack < 1:
            raise UsageError(f"padding slack must be at least 1, got {padding_slack}")
        self.model = model
        self.batch_size = batch_size
        self.padding_slack = padding_slack  # None: sorted batches of batch_size (see padding_bounded_batches)
        self.precision = precision
        if device is not None:
            model.to(device)
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.names = list(model.encoders) if model.use_fuser and model.fuser is not None else [model.anchor]
        self.encoders = {name: model.encoders[name] for name in self.names}
        if max_context is None:
            max_context = model.config.preprocessing.max_context
        self.max_context = max_context
        self.context_window = _context_window(self.encoders.values(), max_context)
        self.resolver = None
        if any(e.media is not None for e in self.encoders.values()):
            from .data.cache import DiskCache
            from .data.pipeline import MediaResolver

            cache = DiskCache(cache_dir) if cache_dir is not None else None
            self.resolver = MediaResolver(cache, media_policy)  # type: ignore[arg-type]

    def autocast(self) -> Any:
        import contextlib

        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def run(self, samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities [N, C] (float32, CPU) and presence [N, E] (bool, encoder order ``self.names``)."""
        from .data.batching import BucketBatchSampler, SampleDataset, make_loader, padding_bounded_batches

        probabilities = torch.zeros(len(samples), self.model.num_classes)
        present = torch.zeros(len(samples), len(self.names), dtype=torch.bool)
        if not samples:
            return probabilities, present
        dataset = SampleDataset(samples, self.encoders, self.resolver)
        if self.padding_slack is None:
            sampler: Any = BucketBatchSampler(dataset.lengths(), self.batch_size, shuffle=False)
        else:
            sampler = padding_bounded_batches(dataset.lengths(), self.batch_size, self.padding_slack)
        loader = make_loader(dataset, sampler, num_workers=0)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode(), self.autocast():
                for batch in loader:
                    batch = batch.to(self.device)
                    outputs = {
                        name: self.model.encode(name, batch.features[name], batch.present[name]) for name in self.names
                    }
                    logits = self.model.fuse(outputs)
                    rows = batch.indices
                    _refuse_non_finite(logits, rows, samples)
                    probabilities[rows] = torch.softmax(logits.float(), dim=-1).cpu()
                    present[rows] = torch.stack([batch.present[name] for name in self.names], dim=1).cpu()
        finally:
            self.model.train(was_training)
        return probabilities, present

    def describe(
        self, sample: Sample, probabilities: torch.Tensor, present: torch.Tensor, target: Utterance | None = None
    ) -> UtterancePrediction:
        """The prediction for ``sample``; ``target`` (default ``sample.target``) gives speaker, text and gold label."""
        labels = self.model.labels
        target = sample.target if target is None else target
        flags = present.tolist()
        return UtterancePrediction(
            dialogue_id=sample.dialogue_id,
            position=sample.position,
            speaker=target.speaker,
            text=target.text,
            label=labels[int(probabilities.argmax())],
            probabilities={label: float(p) for label, p in zip(labels, probabilities.tolist())},
            modalities_used=[name for name, on in zip(self.names, flags) if on],
            missing=[name for name, on in zip(self.names, flags) if not on],
            gold=target.label,
        )


def _refuse_non_finite(logits: torch.Tensor, rows: torch.Tensor, samples: Sequence[Sample]) -> None:
    """NaN/inf scores would become NaN probabilities (invalid JSON, meaningless metrics): refuse them."""
    finite = torch.isfinite(logits.float()).all(dim=-1)
    if bool(finite.all()):
        return
    sample = samples[int(rows[int((~finite).nonzero()[0, 0])])]
    raise PredictionError(
        f"the model's scores for dialogue {sample.dialogue_id!r}, utterance {sample.position} (0-based) are not "
        f"finite (NaN or inf), for {int((~finite).sum())} of {len(finite)} utterances in its batch; the model's "
        "weights or this input drive it out of range"
    )


def predict(
    model: "ERCModel",
    dialogues: Sequence[Dialogue],
    *,
    batch_size: int = 32,
    precision: str = "fp32",
    device: str | torch.device | None = None,
    media_policy: str = "zero",
    cache_dir: str | Path | None = None,
    max_context: int | None = None,
) -> list[DialoguePrediction]:
    """One ``DialoguePrediction`` per dialogue (input order), one ``UtterancePrediction`` per utterance.

    ``max_context`` defaults to the model config's ``preprocessing.max_context``;
    ``media_policy`` is ``zero`` (absent media -> stand-in, reported in
    ``missing``) or ``error`` (raise ``MediaError``); ``cache_dir`` caches
    decoded media on disk. ``precision="bf16"`` runs under autocast.
    """
    predictor = Predictor(
        model, batch_size=batch_size, precision=precision, device=device,
        media_policy=media_policy, cache_dir=cache_dir, max_context=max_context,
    )
    return predict_with(predictor, dialogues)


def predict_with(predictor: Predictor, dialogues: Sequence[Dialogue]) -> list[DialoguePrediction]:
    """``predict`` with a ready ``Predictor`` (reused by evaluation and the benchmark).

    Contexts cut to an encoder's token limit are counted and reported once, as a warning.
    """
    samples = dialogue_samples(dialogues, predictor.max_context)
    with count_truncations() as tally:
        probabilities, present = predictor.run(samples)
    results = describe_dialogues(predictor, dialogues, samples, probabilities, present)
    warn_truncations(tally)
    return results


def dialogue_samples(dialogues: Sequence[Dialogue], max_context: int | None) -> list[Sample]:
    """One sample per utterance, dialogues in order, utterances in order (what ``Predictor.run`` takes)."""
    # Gold labels go around the model: make_samples would reject labels it does not know.
    # replace() keeps every other field of the dialogue (its own speaker numbering, if any).
    unlabelled = [replace(d, utterances=tuple(replace(u, label=None) for u in d.utterances)) for d in dialogues]
    return make_samples(unlabelled, [], max_context=max_context)


def describe_dialogues(
    predictor: Predictor, dialogues: Sequence[Dialogue], samples: Sequence[Sample],
    probabilities: torch.Tensor, present: torch.Tensor,
) -> list[DialoguePrediction]:
    """``Predictor.run``'s rows for ``dialogue_samples(dialogues)`` as one ``DialoguePrediction`` per dialogue."""
    results = [DialoguePrediction(d.id, []) for d in dialogues]
    # make_samples emits dialogues in order, utterances in order: walk both in step.
    row = 0
    for result, dialogue in zip(results, dialogues):
        for utterance in dialogue.utterances:  # the original utterance: its gold label goes into the result
            result.utterances.append(predictor.describe(samples[row], probabilities[row], present[row], utterance))
            row += 1
    return results


def warn_truncations(tally: Any) -> None:
    """One warning per encoder that cut contexts to its token limit (at the end of a run)."""
    for message in tally.messages():
        warnings.warn(message, stacklevel=3)


def _context_window(encoders: Iterable[Any], max_context: int | None) -> int | None:
    """The most utterances any encoder reads per sample (None: all), capped by ``max_context``."""
    windows = [getattr(e, "context_window", lambda: None)() for e in encoders]
    window = None if any(w is None for w in windows) else max(windows, default=1)
    if max_context is not None:
        window = max_context if window is None else min(window, max_context)
    return window


# --------------------------------------------------------------------- streaming


class ConversationState:
    """The causal history of every live dialogue, numbering speakers like ``make_samples``.

    Only the last ``window`` utterances of a dialogue are kept (None: all), so a
    never-ending conversation uses bounded memory; the context a sample gets is
    those utterances, read in place.
    """

    def __init__(self, window: int | None):
        self.window = window
        self.history: dict[str, tuple[list[Utterance], list[int]]] = {}
        self.speakers: dict[str, dict[str, int]] = {}
        self.positions: dict[str, int] = {}

    def add(self, dialogue_id: str, utterance: Utterance) -> Sample:
        """Append an utterance and return it as a sample with its context so far."""
        utterances, numbers = self.history.setdefault(dialogue_id, ([], []))
        speakers = self.speakers.setdefault(dialogue_id, {})
        utterances.append(replace(utterance, label=None))
        numbers.append(speakers.setdefault(utterance.speaker, len(speakers) + 1))
        if self.window is not None and len(utterances) >= 2 * self.window:
            # New lists, so windows handed out earlier keep reading the old ones intact.
            utterances, numbers = utterances[-self.window :], numbers[-self.window :]
            self.history[dialogue_id] = (utterances, numbers)
        position = self.positions.get(dialogue_id, 0)
        self.positions[dialogue_id] = position + 1
        first = 0 if self.window is None else max(0, len(utterances) - self.window)
        return Sample(
            dialogue_id=dialogue_id,
            position=position,
            context=Window(utterances, first, len(utterances)),
            speaker_ids=Window(numbers, first, len(numbers)),
        )


def parse_stream_line(line: str, where: str, media_root: Path) -> tuple[str, Utterance]:
    """One streamed utterance: ``{"dialogue", "speaker", "text", "audio"?, "video"?, ...}``; DataError names ``where``."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: invalid JSON: {error}") from None
    return parse_stream_record(record, where, lambda key, value, at: (media_root / value).absolute())


def parse_stream_record(
    record: Any, where: str, locate: Callable[[str, str, str], Path], default_dialogue: str | None = None
) -> tuple[str, Utterance]:
    """``parse_stream_line`` for a decoded object; ``locate(key, value, where)`` turns a media string into a path.

    With ``default_dialogue``, ``"dialogue"`` may be left out (a live conversation of its own).
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - STREAM_KEYS)
    if unknown:
        raise DataError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(STREAM_KEYS))}")
    dialogue = record.get("dialogue", default_dialogue)
    if isinstance(dialogue, bool) or not isinstance(dialogue, (str, int)):
        raise DataError(f"{where}: 'dialogue' (the dialogue id) must be a string or an integer")
    for key in ("speaker", "text"):
        if not isinstance(record.get(key), str):
            raise DataError(f"{where}: '{key}' must be a string")
    label = record.get("label")
    if label is not None and not isinstance(label, str):
        raise DataError(f"{where}: 'label' must be a string")
    media: dict[str, Path | None] = {}
    for key in ("audio", "video"):
        value = record.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise DataError(f"{where}: '{key}' must be a path string")
        media[key] = None if value is None else locate(key, value, where)
    span: dict[str, float | None] = {}
    for key in ("start", "end"):
        value = record.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
        ):
            raise DataError(f"{where}: '{key}' must be a finite, non-negative number of seconds, got {value!r}")
        span[key] = None if value is None else float(value)
    utterance = Utterance(
        speaker=record["speaker"], text=record["text"], label=label, audio=media["audio"], video=media["video"],
        start=span["start"], end=span["end"], id=None if record.get("id") is None else str(record["id"]),
    )
    return str(dialogue), utterance


def predict_stream(
    model: "ERCModel",
    lines: Iterable[str],
    *,
    source: str = "<stdin>",
    media_root: str | Path = ".",
    on_error: Callable[[ErckitError], None] | None = None,
    **options: Any,
) -> Iterator[UtterancePrediction]:
    """Yield a prediction per input line, as soon as that line is read.

    Each line is one utterance (see ``parse_stream_line``); media paths are
    relative to ``media_root``. Blank lines are ignored. A broken line raises
    ``DataError`` naming ``source:line`` unless ``on_error`` is given, which then
    receives the error and the line is skipped (its dialogue is unaffected).
    ``options`` are ``predict``'s keyword options.
    """
    predictor = Predictor(model, **options)
    state = ConversationState(predictor.context_window)
    root = Path(media_root)
    tally = TruncationTally(dedupe=False)  # every line is a new sample; remember none of them
    try:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                dialogue_id, utterance = parse_stream_line(line, f"{source}:{number}", root)
            except DataError as error:
                if on_error is None:
                    raise
                on_error(error)
                continue
            sample = state.add(dialogue_id, utterance)
            with count_truncations(tally):
                probabilities, present = predictor.run([sample])
            yield predictor.describe(sample, probabilities[0], present[0], utterance)  # with its gold label
    finally:
        warn_truncations(tally)  # once, when the stream ends


__all__ = [
    "DialoguePrediction",
    "Predictor",
    "UtterancePrediction",
    "describe_dialogues",
    "dialogue_samples",
    "parse_stream_record",
    "predict",
    "predict_stream",
    "predict_with",
]
