"""The batcher alone, with a stand-in predictor: batch forming, the size cap, failures kept to their request."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
import torch

from erckit.serve.batcher import Batcher


class Recorder:
    """A ``Predictor.run`` stand-in: a sample is an int; its 'probability' row is [value]; -1 fails."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def run(self, samples):
        self.batches.append(list(samples))
        if -1 in samples:
            raise ValueError("a broken sample")
        values = torch.tensor([[float(s)] for s in samples])
        return values, torch.ones(len(samples), 1, dtype=torch.bool)


async def submit_all(batcher: Batcher, requests: list[list[int]]) -> list[object]:
    async def one(samples: list[int]) -> object:
        try:
            probabilities, _ = await batcher.predict(samples)
            return probabilities[:, 0].tolist()
        except ValueError as error:
            return error

    return await asyncio.gather(*(one(r) for r in requests))


def run(requests: list[list[int]], **options) -> tuple[list[object], list[list[int]]]:
    recorder = Recorder()
    batcher = Batcher(recorder, **options)  # type: ignore[arg-type]
    batcher.start()
    try:
        answers = asyncio.run(submit_all(batcher, requests))
    finally:
        batcher.stop()
    return answers, recorder.batches


def test_requests_within_the_wait_share_a_batch_and_get_their_own_rows() -> None:
    answers, batches = run([[1, 2], [3], [4, 5, 6]], max_batch=32, max_wait_ms=200)
    assert answers == [[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]]
    assert batches == [[1, 2, 3, 4, 5, 6]]


def test_a_batch_closes_at_max_batch_and_the_request_that_did_not_fit_goes_first_next() -> None:
    answers, batches = run([[1, 2], [3, 4], [5, 6], [7]], max_batch=4, max_wait_ms=200)
    assert answers == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0]]
    assert batches == [[1, 2, 3, 4], [5, 6, 7]]
    answers, batches = run([[1, 2, 3, 4, 5]], max_batch=2, max_wait_ms=0)  # larger than a batch: alone
    assert answers == [[1.0, 2.0, 3.0, 4.0, 5.0]] and batches == [[1, 2, 3, 4, 5]]


def test_without_batching_every_request_is_its_own_pass() -> None:
    _, batches = run([[1], [2], [3]], max_batch=1, max_wait_ms=0)
    assert sorted(batches) == [[1], [2], [3]]


def test_a_failing_request_fails_alone() -> None:
    answers, batches = run([[1], [-1, 2], [3]], max_batch=32, max_wait_ms=200)
    assert answers[0] == [1.0] and answers[2] == [3.0]
    assert isinstance(answers[1], ValueError)
    assert batches[0] == [1, -1, 2, 3] and sorted(batches[1:]) == [[-1, 2], [1], [3]]


def run_conversations(script, conversations: int, **options) -> tuple[list[list[int]], float]:
    """``script(batcher)`` (a coroutine) with ``conversations`` live conversations held open; batches, seconds."""
    recorder = Recorder()
    batcher = Batcher(recorder, **options)  # type: ignore[arg-type]
    batcher.start()
    began = time.perf_counter()
    try:
        async def held_open() -> None:
            with contextlib.ExitStack() as stack:
                for _ in range(conversations):
                    stack.enter_context(batcher.conversation())
                await script(batcher)

        asyncio.run(held_open())
    finally:
        batcher.stop()
    return recorder.batches, time.perf_counter() - began


async def later(seconds: float, coroutine):
    await asyncio.sleep(seconds)
    return await coroutine


def test_a_batch_closes_without_waiting_once_every_open_conversation_has_its_turn_queued() -> None:
    async def both_turns(batcher: Batcher) -> None:
        await asyncio.gather(batcher.predict([1], turn=True), batcher.predict([2], turn=True))

    batches, seconds = run_conversations(both_turns, 2, max_batch=32, max_wait_ms=5000)
    assert batches == [[1, 2]]
    assert seconds < 2.5  # the 5 s wait could add nobody


def test_an_open_conversation_without_a_queued_turn_is_waited_for() -> None:
    async def one_late(batcher: Batcher) -> None:
        await asyncio.gather(batcher.predict([1], turn=True), later(0.3, batcher.predict([2], turn=True)))

    batches, _ = run_conversations(one_late, 2, max_batch=32, max_wait_ms=3000)
    assert batches == [[1, 2]]


def test_other_recent_requests_keep_the_wait_open() -> None:
    async def mixed(batcher: Batcher) -> None:
        await asyncio.gather(batcher.predict([1]), batcher.predict([2], turn=True), later(0.3, batcher.predict([3])))

    batches, _ = run_conversations(mixed, 1, max_batch=32, max_wait_ms=3000)
    assert batches == [[1, 2, 3]]


def test_a_closed_conversation_is_no_longer_waited_on() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder, max_batch=32, max_wait_ms=5000)  # type: ignore[arg-type]
    batcher.start()
    try:
        async def script() -> float:
            with batcher.conversation():
                with batcher.conversation():
                    pass  # the second connection left
                began = time.perf_counter()
                await batcher.predict([1], turn=True)
                return time.perf_counter() - began

        assert asyncio.run(script()) < 2.5
    finally:
        batcher.stop()


def test_bad_settings() -> None:
    from erckit.errors import UsageError

    with pytest.raises(UsageError, match="max-batch"):
        Batcher(Recorder(), max_batch=0, max_wait_ms=1)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="max-wait-ms"):
        Batcher(Recorder(), max_batch=1, max_wait_ms=-1)  # type: ignore[arg-type]
