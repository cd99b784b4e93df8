"""The batcher alone, with a stand-in predictor: batch forming, the size cap, failures kept to their request."""

from __future__ import annotations

import asyncio

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


def test_bad_settings() -> None:
    from erckit.errors import UsageError

    with pytest.raises(UsageError, match="max-batch"):
        Batcher(Recorder(), max_batch=0, max_wait_ms=1)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="max-wait-ms"):
        Batcher(Recorder(), max_batch=1, max_wait_ms=-1)  # type: ignore[arg-type]
