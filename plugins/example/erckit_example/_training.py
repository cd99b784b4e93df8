"""The torch side of ``erckit_example.training``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from erckit.components import Encoder, ModalityOutput, Objective
from erckit.errors import ErckitError


class ProbeModule(nn.Module):
    """Registers only the heads, so only they train; the encoders run frozen in eval mode."""

    def __init__(self, encoders: Mapping[str, Encoder], head: str, objective: Objective):
        super().__init__()
        missing = [n for n, e in encoders.items() if not isinstance(getattr(e, head, None), nn.Module)]
        if missing:
            raise ErckitError(f"example.LinearProbe.v1: encoder(s) {', '.join(missing)} have no submodule {head!r}")
        self.frozen = dict(encoders)  # a plain dict: not submodules, so not trained
        self.heads = nn.ModuleDict({n: getattr(e, head) for n, e in encoders.items()})
        self.objective = objective

    def _outputs(self, batch: Any) -> dict[str, ModalityOutput]:
        return {n: encoder(batch.features[n]) for n, encoder in self.frozen.items()}

    def forward(self, batch: Any) -> Tensor:
        losses = [self.objective(out, batch.labels, {}) for out in self._outputs(batch).values()]
        return torch.stack(losses).mean()

    def predict(self, batch: Any) -> dict[str, Tensor]:
        return {n: out.logits.float().softmax(-1) for n, out in self._outputs(batch).items()}


class ConfidencePenalty(Objective):
    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def forward(self, output: ModalityOutput, labels: Tensor, teachers: Mapping[str, ModalityOutput] | None = None) -> Tensor:
        logits = output.logits.float()
        log_p = logits.log_softmax(-1)
        entropy = -(log_p.exp() * log_p).sum(-1).mean()
        return F.cross_entropy(logits, labels) - self.beta * entropy


class CSVLogger:
    """One CSV line per metric of every row; on resume, the rows after the checkpoint are dropped."""

    def __init__(self, path: Path):
        self.path = path
        self.rows = 0

    def start(self, run: Any, params: Mapping[str, Any], resumed_rows: int | None) -> None:
        if resumed_rows is None or not self.path.exists():
            with open(self.path, "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerow(["row", "stage", "epoch", "name", "value"])
            return
        with open(self.path, newline="", encoding="utf-8") as handle:
            kept = [line for line in csv.reader(handle) if line[0] == "row" or int(line[0]) < resumed_rows]
        with open(self.path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows(kept)
        self.rows = resumed_rows

    def log(self, row: Mapping[str, Any]) -> None:
        with open(self.path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            for name, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "epoch":
                    writer.writerow([self.rows, row.get("stage", ""), row.get("epoch", ""), name, value])
        self.rows += 1

    def finish(self, model_dir: Path | None) -> None:
        pass
