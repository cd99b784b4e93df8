"""BucketBatchSampler: coverage, determinism, padding, DDP shards."""

from __future__ import annotations

import random

import pytest

from erckit.data.batching import BucketBatchSampler, padding_bounded_batches


def _lengths(n: int = 1000, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(3, 200) for _ in range(n)]


@pytest.mark.parametrize("bucket", [True, False])
@pytest.mark.parametrize("n,batch", [(1000, 16), (37, 8), (5, 8)])
def test_every_index_exactly_once_per_epoch(n: int, batch: int, bucket: bool) -> None:
    sampler = BucketBatchSampler(_lengths(n), batch, shuffle=True, seed=3, bucket=bucket)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(n))
        assert len(batches) == len(sampler) == -(-n // batch)
        assert all(1 <= len(b) <= batch for b in batches)


def test_eval_order_covers_everything_sorted_by_length() -> None:
    lengths = _lengths(101)
    batches = list(BucketBatchSampler(lengths, 10, shuffle=False))
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(101))
    assert [lengths[i] for i in flat] == sorted(lengths)


def test_deterministic_per_seed_and_epoch() -> None:
    lengths = _lengths(300)

    def order(seed: int, epoch: int) -> list[list[int]]:
        sampler = BucketBatchSampler(lengths, 16, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 0) == order(0, 0)
    assert order(0, 4) == order(0, 4)
    assert order(0, 0) != order(0, 1)  # a new shuffle each epoch
    assert order(0, 0) != order(1, 0)  # and per seed


def _padding(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)


def test_bucketing_pads_much_less_than_random_batches() -> None:
    lengths = _lengths(2000)
    bucketed = BucketBatchSampler(lengths, 16, shuffle=True, seed=0, bucket=True)
    random_ = BucketBatchSampler(lengths, 16, shuffle=True, seed=0, bucket=False)
    pad_b, pad_r = _padding(lengths, list(bucketed)), _padding(lengths, list(random_))
    assert pad_b < 0.2 * pad_r, (pad_b, pad_r)


def test_bucketed_batches_are_still_shuffled() -> None:
    """Batch order is random (not short-to-long), so the model does not see a length curriculum."""
    lengths = _lengths(2000)
    batches = list(BucketBatchSampler(lengths, 16, shuffle=True, seed=0))
    maxima = [max(lengths[i] for i in b) for b in batches]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


@pytest.mark.parametrize("n,batch,world", [(103, 8, 2), (64, 16, 4), (10, 4, 3)])
def test_ddp_shards_are_disjoint_and_cover_the_global_batch(n: int, batch: int, world: int) -> None:
    lengths = _lengths(n)
    single = BucketBatchSampler(lengths, batch, shuffle=True, seed=7)
    ranks = [BucketBatchSampler(lengths, batch, shuffle=True, seed=7, rank=r, world_size=world) for r in range(world)]
    for epoch in range(2):
        for s in (single, *ranks):
            s.set_epoch(epoch)
        global_batches = list(single)
        shards = [list(r) for r in ranks]
        assert all(len(s) == len(global_batches) for s in shards)  # same number of steps on every rank
        for step, global_batch in enumerate(global_batches):
            parts = [shard[step] for shard in shards]
            assert all(parts), "every rank gets a non-empty share"
            if len(global_batch) >= world:
                flat = [i for p in parts for i in p]
                assert sorted(flat) == sorted(global_batch)  # disjoint, and together the global batch
            else:  # a last batch smaller than the world is padded by repeating items
                assert set(i for p in parts for i in p) == set(global_batch)


def test_padding_bounded_batches_cut_where_padding_passes_the_slack() -> None:
    lengths = [5, 120, 7, 118, 6, 125, 60]
    batches = padding_bounded_batches(lengths, 32, 1.15)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert lengths[batch[0]] == longest
        assert longest * len(batch) <= 1.15 * sum(lengths[i] for i in batch) or len(batch) == 1
    assert [sorted(lengths[i] for i in b) for b in batches] == [[118, 120, 125], [60], [6, 7], [5]]  # 7 x 3 > 1.15 x 18
    assert padding_bounded_batches(lengths, 2, 100.0) == [[5, 1], [3, 6], [2, 4], [0]]  # batch size still caps
    assert padding_bounded_batches([3] * 5, 32, 1.0) == [[0, 1, 2, 3, 4]]  # equal lengths: one batch
    assert padding_bounded_batches([], 8, 1.15) == []
