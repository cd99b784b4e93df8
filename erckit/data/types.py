"""The in-memory form of ERC data. Pure Python: importing it never imports torch.

A ``Dialogue`` is a sequence of ``Utterance``s. A ``Sample`` is one target
utterance with its causal context (previous utterances + itself), which is what
every encoder sees. Media specs say what decoded media an encoder needs; they
are frozen and hashable so they can be part of cache keys.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Sequence, overload

MediaPolicy = Literal["error", "skip", "zero"]



def repeated_labels(labels: Sequence[str]) -> list[str]:
    """The labels that occur more than once, sorted: each class needs its own name."""
    return sorted(label for label, count in Counter(labels).items() if count > 1)

@dataclass(frozen=True)
class Utterance:
    speaker: str
    text: str
    label: str | None = None
    audio: Path | None = None  # absolute path to an audio file or a container with audio
    video: Path | None = None  # absolute path to a video container
    start: float | None = None  # seconds into the media files; None = from the beginning
    end: float | None = None  # seconds; None = to the end
    id: str | None = None  # the source's own id ("dia3_utt2", "Ses01F_impro01_F000", ...)
    # The audio file holds this utterance alone (IEMOCAP's per-utterance wav beside a
    # dialogue-level video): decode it whole; start/end then apply to the video only.
    audio_whole: bool = False

    def span(self, modality: str) -> tuple[float | None, float | None]:
        """(start, end) to cut from this utterance's ``modality`` ('audio' or 'visual') file."""
        if modality == "audio" and self.audio_whole:
            return None, None
        return self.start, self.end


@dataclass(frozen=True)
class Dialogue:
    id: str
    utterances: tuple[Utterance, ...]
    # The source's own 1-based speaker numbering, used instead of numbering by first appearance
    # (the TelME authors' preprocessing carries numbers across dialogues: readers' profile "authors").
    speaker_numbers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "utterances", tuple(self.utterances))
        if self.speaker_numbers is not None:
            numbers = _checked_numbers(self.id, self.speaker_numbers, len(self.utterances))
            object.__setattr__(self, "speaker_numbers", numbers)

    def __len__(self) -> int:
        return len(self.utterances)

    def speaker_ids(self) -> tuple[int, ...]:
        """1-based speaker number per utterance: ``speaker_numbers`` when set, else by first appearance."""
        if self.speaker_numbers is not None:
            return self.speaker_numbers
        return number_speakers([u.speaker for u in self.utterances])


def _checked_numbers(dialogue: str, numbers: Sequence[int], count: int) -> tuple[int, ...]:
    from ..errors import DataError

    numbers = tuple(numbers)
    if len(numbers) != count:
        raise DataError(f"dialogue {dialogue!r}: {len(numbers)} speaker numbers for {count} utterances")
    for position, number in enumerate(numbers):
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise DataError(f"dialogue {dialogue!r} utterance {position}: speaker number {number!r} is not an integer >= 1")
    return numbers


@dataclass(frozen=True)
class AudioSpec:
    """An encoder needs mono float audio at ``sample_rate`` Hz."""

    sample_rate: int = 16_000
    max_seconds: float | None = None  # longer clips are cut to this (from the start)

    modality = "audio"


@dataclass(frozen=True)
class VideoSpec:
    """An encoder needs ``num_frames`` RGB frames sampled uniformly over the span."""

    num_frames: int = 8
    size: int | None = 224  # shorter side resized to this (None: native resolution)

    modality = "visual"


MEDIA_MODALITIES = ("audio", "visual")
# "package.module:function", the entry-point notation.
_DECODER_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


@dataclass(frozen=True)
class DecoderSpec:
    """An encoder that decodes its own media. The data pipeline calls
    ``function(path: Path, start: float | None, end: float | None, **dict(options)) -> torch.Tensor``
    where ``decoder = "package.module:function"`` (imported lazily, in workers too), caches the
    result like any decode (the spec is part of the key), and puts it in ``sample.audio``
    (modality "audio") or ``sample.frames`` (modality "visual"). The function raises
    ``erckit.errors.MediaError`` for a file it cannot read."""

    modality: str  # "audio" | "visual"
    decoder: str
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        from ..errors import DataError

        if self.modality not in MEDIA_MODALITIES:
            raise DataError(f"DecoderSpec modality {self.modality!r} is not one of: {', '.join(MEDIA_MODALITIES)}")
        if not isinstance(self.decoder, str) or not _DECODER_NAME.fullmatch(self.decoder):
            raise DataError(f"DecoderSpec decoder {self.decoder!r} is not of the form 'package.module:function'")
        options = tuple(dict(self.options).items()) if isinstance(self.options, Mapping) else tuple(self.options)
        for item in options:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise DataError(f"DecoderSpec options must be (name, value) pairs; got {item!r}")
            if not _plain(item[1]):
                raise DataError(
                    f"DecoderSpec option {item[0]!r} = {item[1]!r}: values must be None, bool, int, float, "
                    "str or tuples of them (they are part of hashes and cache keys)"
                )
        if len({name for name, _ in options}) != len(options):
            raise DataError(f"DecoderSpec options name a key twice: {options!r}")
        # Sorted, so the same options in another order are the same spec (and cache key).
        object.__setattr__(self, "options", tuple(sorted(options, key=lambda item: item[0])))


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return isinstance(value, tuple) and all(_plain(v) for v in value)


MediaSpec = AudioSpec | VideoSpec | DecoderSpec


class Window(Sequence):
    """Items ``start:stop`` of a shared sequence, read in place (never copied).

    A sample's ``context`` and ``speaker_ids`` are windows onto their
    dialogue's, so one sample per utterance costs O(1) each instead of a copy
    of the whole history (which made a long dialogue quadratic in time and
    memory). It behaves like the tuple it replaces: indexing, slicing (a
    narrower window), ``reversed``, ``len``, ``==`` and ``+`` with tuples.
    """

    __slots__ = ("source", "start", "stop")

    def __init__(self, source: Sequence, start: int = 0, stop: int | None = None):
        stop = len(source) if stop is None else stop
        if not 0 <= start <= stop <= len(source):
            raise ValueError(f"window {start}:{stop} is outside a sequence of {len(source)} items")
        self.source, self.start, self.stop = source, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence: ...
    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return tuple(self)[index]
            return Window(self.source, self.start + start, self.start + max(start, stop))
        n = self.stop - self.start
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("window index out of range")
        return self.source[self.start + index]

    def __iter__(self) -> Iterator[Any]:
        return map(self.source.__getitem__, range(self.start, self.stop))

    def __reversed__(self) -> Iterator[Any]:
        return map(self.source.__getitem__, range(self.stop - 1, self.start - 1, -1))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Window, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other: Sequence) -> tuple:
        return tuple(self) + tuple(other)

    def __radd__(self, other: Sequence) -> tuple:
        return tuple(other) + tuple(self)

    def __repr__(self) -> str:
        return f"Window({self.start}:{self.stop} of {len(self.source)} items)"


@dataclass
class Sample:
    """One target utterance (the last of ``context``) with its causal context.

    ``context`` is a sequence (a ``Window`` onto the dialogue when made by
    ``make_samples``, or any tuple): read it from the end when only the latest
    turns matter, so the cost per sample stays bounded however long the
    dialogue. ``speaker_ids`` numbers speakers 1, 2, ... by first appearance
    *within this dialogue* (or as the dialogue's ``speaker_numbers`` say),
    parallel to ``context``. ``label`` indexes the label list (None when
    unlabelled). ``audio`` ([T] float32 tensor) and ``frames`` ([N, H, W, 3]
    uint8 RGB tensor) are filled by the data pipeline for encoders that declare
    a media spec; None means the modality is absent for this sample.
    """

    dialogue_id: str
    position: int
    context: Sequence[Utterance]
    speaker_ids: Sequence[int]
    label: int | None = None
    audio: Any = None
    frames: Any = None
    present: dict[str, bool] = field(default_factory=dict)

    @property
    def target(self) -> Utterance:
        return self.context[-1]

    @property
    def key(self) -> str:
        """Stable id of the target utterance: '<dialogue id>/<position>'."""
        return f"{self.dialogue_id}/{self.position}"


def number_speakers(speakers: Sequence[str]) -> tuple[int, ...]:
    """1-based speaker numbers by first appearance, e.g. (A, B, A, C) -> (1, 2, 1, 3)."""
    numbers: dict[str, int] = {}
    return tuple(numbers.setdefault(s, len(numbers) + 1) for s in speakers)


def make_samples(
    dialogues: Sequence[Dialogue],
    labels: Sequence[str],
    *,
    max_context: int | None = None,
    require_labels: bool = False,
) -> list[Sample]:
    """One sample per utterance; context is causal and never crosses dialogues.

    ``max_context`` keeps only the last N utterances of the context (the target
    included); speaker numbers are computed over the whole dialogue first so a
    speaker keeps their number when early turns are cut (a dialogue's own
    ``speaker_numbers``, when set, are used as they are).
    """
    from ..errors import DataError

    index = {label: i for i, label in enumerate(labels)}
    samples: list[Sample] = []
    for dialogue in dialogues:
        speaker_ids = dialogue.speaker_ids()
        for position, utterance in enumerate(dialogue.utterances):
            label: int | None = None
            if utterance.label is not None:
                if utterance.label not in index:
                    raise DataError(
                        f"dialogue {dialogue.id!r} utterance {position}: label {utterance.label!r} "
                        f"is not in the label set ({', '.join(labels)})"
                    )
                label = index[utterance.label]
            elif require_labels:
                raise DataError(f"dialogue {dialogue.id!r} utterance {position}: no label")
            first = 0 if max_context is None else max(0, position + 1 - max_context)
            samples.append(
                Sample(
                    dialogue_id=dialogue.id,
                    position=position,
                    context=Window(dialogue.utterances, first, position + 1),
                    speaker_ids=Window(speaker_ids, first, position + 1),
                    label=label,
                )
            )
    return samples


@dataclass
class Corpus:
    """What a dataset factory returns: a label list and named splits of dialogues.

    ``splits`` maps split names ('train', 'dev', 'test') to loaders so a split is
    only read when asked for; ``problems`` collects per-file issues the reader
    tolerated (reported at the end of loading, never silently).
    """

    name: str
    labels: tuple[str, ...]
    splits: dict[str, Any]  # name -> Callable[[], list[Dialogue]]
    problems: list[str] = field(default_factory=list)
    _loaded: dict[str, list[Dialogue]] = field(default_factory=dict, repr=False)

    def split(self, name: str) -> list[Dialogue]:
        from ..errors import DataError

        if name not in self.splits:
            raise DataError(
                f"{self.name} has no split {name!r}; available: {', '.join(self.splits)}"
            )
        if name not in self._loaded:
            self._loaded[name] = list(self.splits[name]())
        return self._loaded[name]
