"""Token contexts assembled from per-utterance pieces, bounded per sample. Pure Python.

A text encoder that reads "the last N tokens of the dialogue so far" needs only
the few latest utterances that fill N. ``context_tail`` walks a sample's context
backwards from the target, taking each utterance's ids from a ``PieceCache``
(tokenised once, however many samples include that utterance), and stops as
soon as the budget is full: the work per sample is bounded by the budget, not
by the dialogue's length, so predicting or training on a dialogue is linear in
its length. The result is exactly the concatenation of every piece, cut to the
last ``budget`` ids.

``count_truncations()`` opens a tally for one run (train, predict, evaluate, a
live stream): ``context_tail`` records every context it had to cut, and the run
reports the count once (``TruncationTally.message``) instead of per sample.
"""

from __future__ import annotations

import contextvars
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Iterator, Sequence

from .types import Sample


class PieceCache:
    """Memoised ``compute(key) -> ids`` (e.g. the token ids of one utterance's text).

    Least recently used entries beyond ``capacity`` are dropped, so memory stays
    bounded on a never-ending stream. With ``keep``, only the last ``keep`` ids of
    a piece are stored (a context never uses more), and ``len`` of the stored
    tuple is then ``keep + 1`` for any longer piece: still "longer than the
    budget", which is all ``context_tail`` needs to know.
    """

    def __init__(self, compute: Callable[[Hashable], Sequence[int]], *, keep: int | None = None, capacity: int = 16_384):
        self.compute, self.keep, self.capacity = compute, keep, capacity
        self._pieces: OrderedDict[Hashable, tuple[int, ...]] = OrderedDict()

    def __call__(self, key: Hashable) -> tuple[int, ...]:
        piece = self._pieces.get(key)
        if piece is not None:
            self._pieces.move_to_end(key)
            return piece
        ids = self.compute(key)
        if self.keep is not None and len(ids) > self.keep:
            ids = ids[-(self.keep + 1) :]
        piece = tuple(ids)
        self._pieces[key] = piece
        if len(self._pieces) > self.capacity:
            self._pieces.popitem(last=False)
        return piece

    def __len__(self) -> int:
        return len(self._pieces)

    def clear(self) -> None:
        self._pieces.clear()


def context_tail(
    sample: Sample,
    pieces_newest_first: Iterable[Sequence[int]],
    budget: int | None,
    *,
    reporter: str = "text encoder",
    limit: int | None = None,
) -> list[int]:
    """The last ``budget`` ids of the pieces joined oldest first (all of them if ``budget`` is None).

    ``pieces_newest_first`` yields one piece per utterance of ``sample.context``,
    the target's first, then the previous utterances' (typically a generator
    over ``reversed(sample.context)``): it is read only until the budget is full. A context that had to be cut is
    recorded in the run's tally as ``reporter``'s, quoting ``limit`` (the
    user-facing token limit; default ``budget``).
    """
    chosen: list[Sequence[int]] = []
    total = 0
    for piece in pieces_newest_first:
        chosen.append(piece)
        total += len(piece)
        if budget is not None and total >= budget:
            break
    ids = [token for piece in reversed(chosen) for token in piece]
    truncated = budget is not None and (total > budget or len(chosen) < len(sample.context))
    if truncated:
        ids = ids[len(ids) - budget :] if budget else []
    tally = _tally.get()
    if tally is not None:
        target_cut = bool(chosen) and budget is not None and len(chosen[0]) > budget
        tally.note(sample, reporter, budget if limit is None else limit, truncated, target_cut)
    return ids


# ----------------------------------------------------------------------- tally


@dataclass
class _Counts:
    seen: int = 0
    truncated: int = 0
    target_cut: int = 0


@dataclass
class TruncationTally:
    """Contexts seen and cut in one run, per (encoder, limit); each sample counted once.

    ``dedupe`` remembers the samples already counted (a run may featurise the
    same sample in several stages); a live stream, whose samples are new every
    line, turns it off so nothing is retained.
    """

    dedupe: bool = True
    counts: dict[tuple[str, int | None], _Counts] = field(default_factory=dict)
    _counted: dict[tuple[str, int], Sample] = field(default_factory=dict, repr=False)

    def note(self, sample: Sample, reporter: str, limit: int | None, truncated: bool, target_cut: bool) -> None:
        if self.dedupe:
            key = (reporter, id(sample))
            if self._counted.get(key) is sample:
                return
            self._counted[key] = sample  # kept alive: its id cannot be reused by another sample in this run
        counts = self.counts.setdefault((reporter, limit), _Counts())
        counts.seen += 1
        counts.truncated += truncated
        counts.target_cut += target_cut

    def messages(self) -> list[str]:
        """One line per encoder that cut at least one context, e.g. for ``warnings.warn``."""
        lines = []
        for (reporter, limit), c in self.counts.items():
            if not c.truncated:
                continue
            line = (
                f"{reporter}: {c.truncated:,} of {c.seen:,} contexts were longer than its {limit}-token limit "
                f"and lost their oldest tokens"
            )
            if c.target_cut:
                line += f"; in {c.target_cut:,} of them the target utterance itself was cut to the limit"
            lines.append(line + " (raise max_length to keep more, if the model allows)")
        return lines


_tally: contextvars.ContextVar[TruncationTally | None] = contextvars.ContextVar("erckit_truncation_tally", default=None)


@contextmanager
def count_truncations(tally: TruncationTally | None = None, *, dedupe: bool = True) -> Iterator[TruncationTally]:
    """Within this block, ``context_tail`` counts into the yielded tally (``tally``, or a new one).

    Nested blocks share the outermost tally (an ``evaluate`` calling
    ``predict`` reports once); pass the same ``tally`` to several blocks to
    count a run made of many short calls (a live stream).
    """
    outer = _tally.get()
    if outer is not None:
        yield outer
        return
    tally = tally if tally is not None else TruncationTally(dedupe=dedupe)
    token = _tally.set(tally)
    try:
        yield tally
    finally:
        _tally.reset(token)
