"""The bag-of-words encoder behind ``example.BagOfWords.v1``."""

from __future__ import annotations

import re
import zlib
from typing import Sequence

import torch
from torch import nn

from erckit.components import Encoder, Features, ModalityOutput

_WORD = re.compile(r"[a-z0-9']+")


class BagOfWordsEncoder(Encoder):
    modality = "text"

    def __init__(self, num_classes: int, buckets: int, dim: int, context: bool):
        super().__init__()
        self.num_classes, self.buckets, self.dim, self.context = num_classes, buckets, dim, context
        self.project = nn.Sequential(nn.Linear(buckets, dim), nn.ReLU())
        self.head = nn.Linear(dim, num_classes)

    def featurize(self, sample) -> Features:
        utterances = sample.context if self.context else sample.context[-1:]
        counts = torch.zeros(self.buckets)
        for utterance in utterances:
            for word in _WORD.findall(utterance.text.lower()):
                # crc32, not hash(): stable across processes and runs.
                counts[zlib.crc32(word.encode()) % self.buckets] += 1.0
        return {"counts": torch.log1p(counts)}

    def collate(self, features: Sequence[Features]) -> Features:
        return {"counts": torch.stack([f["counts"] for f in features])}

    def forward(self, batch: Features) -> ModalityOutput:
        embedding = self.project(batch["counts"])
        return ModalityOutput(embedding=embedding, logits=self.head(embedding))

    def fingerprint(self) -> str:
        return f"example.BagOfWords.v1:buckets={self.buckets}:context={self.context}"
