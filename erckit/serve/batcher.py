"""Dynamic micro-batching: requests that arrive within ``max_wait`` share one forward pass.

One inference thread owns the model (torch is not re-entrant on one module, and
one thread keeps the event loop free). Requests hand it their samples through a
queue and await an asyncio future that the thread resolves with
``loop.call_soon_threadsafe``. A batch closes when it holds ``max_batch``
samples or ``max_wait`` has passed since its *first* request arrived, so a
request that queued behind a running batch does not wait again. A request larger
than ``max_batch`` runs alone (``Predictor.run`` splits it into batches).

A batch also closes early when waiting cannot add to it: every open live
conversation already has its turn queued (its client awaits the answer before
the next turn) and no other request came within ``max_wait``. A lone
conversation then pays no wait, and the last turns of a busy minute do not idle.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Sequence

from ..data.context import TruncationTally, count_truncations
from ..errors import UsageError

if TYPE_CHECKING:
    import torch

    from ..data.types import Sample
    from ..predict import Predictor
    from .metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class _Job:
    samples: Sequence["Sample"]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.perf_counter)
    turn: bool = False  # a live conversation's utterance (its client sends nothing until answered)


def _resolve(future: asyncio.Future, result: object, error: BaseException | None) -> None:
    if future.done():  # the client went away and its request was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Batcher:
    """``await batcher.predict(samples)`` -> (probabilities [N, C], presence [N, E]) as ``Predictor.run``."""

    def __init__(self, predictor: "Predictor", *, max_batch: int, max_wait_ms: float, metrics: "Metrics | None" = None):
        if max_batch < 1:
            raise UsageError(f"--max-batch must be at least 1, got {max_batch}")
        if max_wait_ms < 0:
            raise UsageError(f"--max-wait-ms must not be negative, got {max_wait_ms}")
        self.predictor = predictor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.metrics = metrics
        self.tally = TruncationTally(dedupe=False)  # every request brings new samples: remember none
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._held: _Job | None = None  # the job that did not fit into the last batch: first in the next
        self._thread = threading.Thread(target=self._serve, name="erckit-inference", daemon=True)
        # What the early close reads (see the module docstring); the event loop and the thread share them.
        self._lock = threading.Lock()
        self._open_conversations = 0
        self._queued_turns = 0
        self._last_other = float("-inf")  # arrival of the last request that is not a conversation turn

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    async def predict(self, samples: Sequence["Sample"], *, turn: bool = False) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Queue ``samples``; ``turn=True`` for a turn of a conversation held open with ``conversation()``."""
        loop = asyncio.get_running_loop()
        job = _Job(samples, loop.create_future(), loop, turn=turn)
        with self._lock:
            if turn:
                self._queued_turns += 1
            else:
                self._last_other = job.arrived
        self._queue.put(job)
        return await job.future

    @contextmanager
    def conversation(self) -> Iterator[None]:
        """Hold a live conversation open for as long as its connection lasts (its turns: ``turn=True``)."""
        with self._lock:
            self._open_conversations += 1
        try:
            yield
        finally:
            with self._lock:
                self._open_conversations -= 1

    def _nothing_more_can_come(self) -> bool:
        with self._lock:
            return (self._open_conversations > 0 and self._queued_turns >= self._open_conversations
                    and time.perf_counter() - self._last_other >= self.max_wait)

    # ------------------------------------------------------------ the thread

    def _serve(self) -> None:
        while True:
            jobs, stopping = self._collect()
            if jobs:
                self._run(jobs)
            if stopping:
                return

    def _collect(self) -> tuple[list[_Job], bool]:
        """The next batch's jobs, and whether the stop signal came."""
        first = self._held if self._held is not None else self._queue.get()
        self._held = None
        if first is None:
            return [], True
        jobs, size = [first], len(first.samples)
        deadline = first.arrived + self.max_wait
        while size < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                if self._nothing_more_can_come():
                    if self.metrics is not None:
                        self.metrics.count("erckit_batches_closed_early_total")
                    break
                try:
                    job = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            if job is None:
                return jobs, True
            if size + len(job.samples) > self.max_batch:
                self._held = job
                break
            jobs.append(job)
            size += len(job.samples)
        return jobs, False

    def _run(self, jobs: list[_Job]) -> None:
        try:
            self._predict(jobs)
        finally:
            turns = sum(job.turn for job in jobs)
            if turns:
                with self._lock:
                    self._queued_turns -= turns

    def _predict(self, jobs: list[_Job]) -> None:
        samples = [sample for job in jobs for sample in job.samples]
        began = time.perf_counter()
        try:
            with count_truncations(self.tally):
                probabilities, present = self.predictor.run(samples)
        except Exception as error:  # noqa: BLE001 - handed to the requests, never kills the thread
            if len(jobs) > 1:  # one request's bad input must not fail the others: run each alone
                for job in jobs:
                    self._predict([job])
                return
            jobs[0].loop.call_soon_threadsafe(_resolve, jobs[0].future, None, error)
            return
        if self.metrics is not None:
            self.metrics.count("erckit_batches_total")
            self.metrics.observe("erckit_batch_size", len(samples))
            self.metrics.observe("erckit_batch_seconds", time.perf_counter() - began)
        row = 0
        for job in jobs:
            rows = slice(row, row + len(job.samples))
            job.loop.call_soon_threadsafe(_resolve, job.future, (probabilities[rows], present[rows]), None)
            row += len(job.samples)
