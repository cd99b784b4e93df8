"""A third-party training plugin, registered through entry points only (see pyproject.toml):

* ``example.LinearProbe.v1``: a stage kind that trains only each named encoder's
  head (the backbone stays frozen, in eval mode): linear probing;
* ``example.ConfidencePenalty.v1``: an objective, cross-entropy minus ``beta``
  times the entropy of the prediction (Pereyra et al., 2017);
* ``example.RMSprop.v1``: an optimizer; ``example.StepSchedule.v1``: a scheduler
  (the learning rate times ``gamma`` every ``step_size`` optimiser steps);
* ``example.CSV.v1``: a logger writing ``metrics.csv`` in the run directory.

Factories are typed (the signature is the recipe schema) and import torch only in
their body: erckit reads them while validating a recipe. Everything used from
erckit is public: ``erckit.train.stage``, ``erckit.components``, ``erckit.errors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from erckit.train.stage import ModelView, StageContext, StageKind, StagePlan


class LinearProbe(StageKind):
    """Train ``encoders``' heads (the submodule named ``head``) with the stage's objective."""

    def __init__(self, encoders: list[str], head: str):
        self.encoders, self.head = encoders, head

    def trains(self) -> list[str]:
        return list(self.encoders)

    def check(self, model: ModelView) -> list[str]:
        return [f"encoders: the model has no encoder {n!r} (have: {', '.join(model.encoders)})"
                for n in self.encoders if n not in model.encoders]

    def build(self, context: StageContext) -> StagePlan:
        from ._training import ProbeModule

        encoders = {n: context.model.encoders[n] for n in self.encoders}
        module = ProbeModule(encoders, self.head, context.objective())
        return StagePlan(module, context.loader(encoders, "train", shuffle=True), context.loader(encoders, "dev", shuffle=False))


def linear_probe(encoders: Annotated[list[str], Field(min_length=1)], head: str = "classifier") -> StageKind:
    """Train only the named encoders' heads (submodule `head`); their backbones stay frozen."""
    return LinearProbe(list(encoders), head)


def confidence_penalty(num_classes: int, beta: Annotated[float, Field(ge=0)] = 0.1) -> Any:
    """Cross-entropy minus beta times the prediction's entropy: penalises over-confident outputs."""
    from ._training import ConfidencePenalty

    return ConfidencePenalty(beta)


def rmsprop(params: Any, lr: Annotated[float, Field(gt=0)] = 1e-3, alpha: float = 0.99, momentum: float = 0.0) -> Any:
    """torch.optim.RMSprop over the stage's trainable parameters."""
    import torch

    return torch.optim.RMSprop([p for _, p in params], lr=lr, alpha=alpha, momentum=momentum)


def step_schedule(
    optimizer: Any, run_steps: int, step_size: Annotated[int, Field(ge=1)] = 10, gamma: Annotated[float, Field(gt=0)] = 0.5
) -> Any:
    """The learning rate times gamma every step_size optimiser steps."""
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)


def csv_logger(run_dir: Path, file: str = "metrics.csv") -> Any:
    """Every metrics row as a line of a CSV file in the run directory (columns: stage, epoch, name, value)."""
    from ._training import CSVLogger

    return CSVLogger(Path(run_dir) / file)
