"""The bag-of-words encoder behind ``example.BagOfWords.v1``."""

from __future__ import annotations

import re
import zlib
from typing import Sequence

import torch
from torch import nn

from erckit.components import Encoder, Features, ModalityOutput
from erckit.data.context import PieceCache

_WORD = re.compile(r"[a-z0-9']+")


class BagOfWordsEncoder(Encoder):
    modality = "text"

    def __init__(self, num_classes: int, buckets: int, dim: int, context: bool):
        super().__init__()
        self.num_classes, self.buckets, self.dim, self.context = num_classes, buckets, dim, context
        self.project = nn.Sequential(nn.Linear(buckets, dim), nn.ReLU())
        self.head = nn.Linear(dim, num_classes)
        self._words = PieceCache(self._hash_words)  # each utterance's text is hashed once

    def _hash_words(self, text: str) -> list[int]:
        # crc32, not hash(): stable across processes and runs.
        return [zlib.crc32(word.encode()) % self.buckets for word in _WORD.findall(text.lower())]

    def featurize(self, sample) -> Features:
        # With context, every previous utterance counts: the cost grows with the
        # context (bound it with the recipe's data.max_context).
        utterances = sample.context if self.context else sample.context[-1:]
        words = [bucket for utterance in utterances for bucket in self._words(utterance.text)]
        counts = torch.bincount(torch.tensor(words, dtype=torch.long), minlength=self.buckets).float()
        return {"counts": torch.log1p(counts)}

    def context_window(self) -> int | None:
        return None if self.context else 1

    def collate(self, features: Sequence[Features]) -> Features:
        return {"counts": torch.stack([f["counts"] for f in features])}

    def forward(self, batch: Features) -> ModalityOutput:
        embedding = self.project(batch["counts"])
        return ModalityOutput(embedding=embedding, logits=self.head(embedding))

    def fingerprint(self) -> str:
        return f"example.BagOfWords.v1:buckets={self.buckets}:context={self.context}"
