"""Classification metrics of the ERC literature, computed from label indices.

Weighted F1 (per-class F1 averaged by support) is the field's headline number;
macro F1 and accuracy come with it. Pure Python over sequences: usable without
torch and identical on every rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence


@dataclass
class ClassReport:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Report:
    labels: list[str]
    accuracy: float
    weighted_f1: float
    macro_f1: float
    per_class: list[ClassReport]
    confusion: list[list[int]]  # rows: gold, columns: predicted
    count: int
    extra: dict[str, float] = field(default_factory=dict)

    def summary(self, prefix: str = "") -> dict[str, float]:
        values = {"weighted_f1": self.weighted_f1, "macro_f1": self.macro_f1, "accuracy": self.accuracy}
        values.update({f"f1/{c.label}": c.f1 for c in self.per_class})
        values.update(self.extra)
        return {f"{prefix}{k}": v for k, v in values.items()}

    def to_dict(self) -> dict:
        return {
            "count": self.count,
            "accuracy": self.accuracy,
            "weighted_f1": self.weighted_f1,
            "macro_f1": self.macro_f1,
            "per_class": [c.__dict__ for c in self.per_class],
            "labels": self.labels,
            "confusion": self.confusion,
        }


def classification_report(gold: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> Report:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    n = len(labels)
    confusion = [[0] * n for _ in range(n)]
    for g, p in zip(gold, predicted):
        confusion[g][p] += 1
    per_class: list[ClassReport] = []
    for c in range(n):
        tp = confusion[c][c]
        support = sum(confusion[c])
        predicted_c = sum(row[c] for row in confusion)
        precision = tp / predicted_c if predicted_c else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(ClassReport(labels[c], precision, recall, f1, support))
    total = len(gold)
    correct = sum(confusion[c][c] for c in range(n))
    weighted = sum(c.f1 * c.support for c in per_class) / total if total else 0.0
    present = [c for c in per_class if c.support > 0 or any(row[labels.index(c.label)] for row in confusion)]
    macro = sum(c.f1 for c in present) / len(present) if present else 0.0
    return Report(
        labels=list(labels),
        accuracy=correct / total if total else 0.0,
        weighted_f1=weighted,
        macro_f1=macro,
        per_class=per_class,
        confusion=confusion,
        count=total,
    )
