"""The stage-kind interface: what a ``[[stages]]`` table's ``kind`` names.

A stage kind is a registered factory (registry ``stages``, entry-point group
``erckit_stages``) whose signature is the schema of the stage table's own keys
(``teacher``, ``students``...; the keys every stage shares, ``epochs``,
``optimizer``..., belong to erckit). The factory returns a ``StageKind``: it is
called while the recipe is validated, so it must be cheap and import no torch.
Its ``check`` reports problems with the recipe's model before anything runs;
``build`` is called when the stage starts and returns a ``StagePlan``: the module
to train (its parameters are exactly what the stage optimises) and the batches.

The engine owns everything else: optimiser, schedule, precision, gradient
accumulation and clipping, DDP, dev selection, early stopping, checkpoints,
resume and logging. See ``erckit.train.kinds`` for the built-in kinds and
docs/plugins.md for a third-party one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Protocol, Sequence

from ..recipe.schema import ModelView  # noqa: F401  (part of this interface; defined with the recipe)

if TYPE_CHECKING:
    from torch import nn

    from ..components import Encoder, Objective
    from ..data.types import Sample
    from ..model import ERCModel
    from ..recipe.schema import StageConfig
    from .frozen import Outputs
    from .runtime import Runtime


class StageKind:
    """Returned by a stage kind's factory. Subclasses override ``build`` (and usually ``trains``/``check``)."""

    uses_fuser: bool = False
    """True when the stage trains the fuser: the saved model then predicts through it."""

    def trains(self) -> list[str]:
        """Encoders whose weights this stage trains (their heads are dev-scored)."""
        return []

    def check(self, model: ModelView) -> list[str]:
        """Problems with the recipe, each starting with the offending key (``"teacher: ..."``)."""
        return []

    def build(self, context: "StageContext") -> "StagePlan":
        raise NotImplementedError(f"{type(self).__name__} does not implement build()")


class BatchSource(Protocol):
    """Batches of one split for one stage: iterable, sized, re-shuffled per epoch."""

    def __iter__(self) -> Iterator[Any]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    def describe(self, batch: Any) -> str: ...


@dataclass
class StagePlan:
    """What ``StageKind.build`` returns.

    ``module``: an ``nn.Module`` whose ``forward(batch)`` returns the scalar training
    loss and whose ``predict(batch)`` returns class probabilities per head
    (``{"text": [B, C], ...}``); its parameters are the ones the stage trains.
    Batches must have ``.to(device)`` and ``.labels``.
    """

    module: "nn.Module"
    train: BatchSource
    dev: BatchSource


class StageContext(Protocol):
    """What the engine offers a stage kind's ``build``."""

    model: "ERCModel"
    labels: list[str]
    runtime: "Runtime"
    stage: "StageConfig"
    seed: int

    def samples(self, split: str) -> "list[Sample]":
        """Every sample of ``split`` ('train', 'dev')."""

    def usable(self, samples: "Sequence[Sample]", encoders: Iterable[str], split: str) -> "list[Sample]":
        """``samples`` whose media ``encoders`` need is decoded (cached) and not skipped by the media policy."""

    def loader(self, encoders: "Mapping[str, Encoder]", split: str, *, shuffle: bool) -> BatchSource:
        """Featurised, length-bucketed ``Batch``es of the usable samples of ``split`` for ``encoders``;
        its ``samples`` are those samples, in the order ``Batch.indices`` refer to."""

    def frozen_outputs(self, encoder: str, samples: "Sequence[Sample]", split: str) -> "Outputs":
        """``encoder``'s outputs on ``samples``, computed once (eval mode, cached on disk when allowed)."""

    def index_source(self, split: str, samples: "Sequence[Sample]", *, shuffle: bool) -> BatchSource:
        """Batches of row indices into ``samples`` (for stages over cached outputs), with their labels."""

    def objective(self) -> "Objective":
        """The stage's ``objective`` table, built (with num_classes, labels, class_counts injected)."""

    def create(self, registry: str, table: Mapping[str, Any], *, reserved: Iterable[str] = ()) -> Any:
        """Build a nested component table (a distiller, say) with erckit's injections."""
