"""The default ``Encoder.collate``: the documented ``<key>_mask`` is always there."""

from __future__ import annotations

import torch

from erckit.components import Encoder


class TokenEncoder(Encoder):
    """What a plugin written from docs/architecture.md looks like: it keeps the default collate."""

    def featurize(self, sample):  # not used: features are built by hand below
        raise NotImplementedError


def tokens(*ids: int) -> dict[str, torch.Tensor]:
    return {"ids": torch.tensor(ids), "speaker": torch.tensor(1)}


def test_equal_lengths_still_get_a_mask():
    """Length bucketing often gives batches of equal lengths: the mask must not depend on luck."""
    batch = TokenEncoder().collate([tokens(5, 6, 7), tokens(8, 9, 10)])
    assert batch["ids"].tolist() == [[5, 6, 7], [8, 9, 10]]
    assert batch["ids_mask"].dtype == torch.bool
    assert batch["ids_mask"].tolist() == [[True] * 3, [True] * 3]


def test_different_lengths_are_right_padded_and_masked():
    batch = TokenEncoder().collate([tokens(5), tokens(8, 9, 10)])
    assert batch["ids"].tolist() == [[5, 0, 0], [8, 9, 10]]
    assert batch["ids_mask"].tolist() == [[True, False, False], [True, True, True]]


def test_scalars_are_stacked_without_a_mask_and_own_masks_are_kept():
    own = [{"ids": torch.tensor([1, 2]), "ids_mask": torch.tensor([True, False])},
           {"ids": torch.tensor([3]), "ids_mask": torch.tensor([True])}]
    batch = TokenEncoder().collate(own)
    assert batch["ids_mask"].tolist() == [[True, False], [True, False]]  # the encoder's own, padded with False
    assert sorted(batch) == ["ids", "ids_mask"]
    plain = TokenEncoder().collate([tokens(1), tokens(2)])
    assert plain["speaker"].tolist() == [1, 1] and "speaker_mask" not in plain
