"""The built-in stage kinds: supervised, distill and fuse, registered like any plugin's.

Each is a ``StageKind`` (``erckit.train.stage``) built by a factory in
``erckit.builtin.stages``; torch is imported only when a stage is built. Each
stage module holds only what it trains (so DDP wraps exactly that), returns a
scalar loss from ``forward`` and per-head class probabilities from ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .stage import ModelView, StageContext, StageKind, StagePlan


def _unknown(names: Sequence[str], model: ModelView, key: str) -> list[str]:
    return [
        f"{key}: the model has no encoder {name!r} (have: {', '.join(model.encoders)})"
        for name in names if name not in model.encoders
    ]


@dataclass
class Supervised(StageKind):
    """Train encoders, each on its own head, with the stage's objective (losses averaged)."""

    encoders: list[str]

    def trains(self) -> list[str]:
        return list(self.encoders)

    def check(self, model: ModelView) -> list[str]:
        return _unknown(self.encoders, model, "encoders")

    def build(self, context: StageContext) -> StagePlan:
        from .modules import SupervisedModule

        encoders = {n: context.model.encoders[n] for n in self.encoders}
        train = context.loader(encoders, "train", shuffle=True)
        dev = context.loader(encoders, "dev", shuffle=False)
        return StagePlan(SupervisedModule(encoders, context.objective()), train, dev)


@dataclass
class Distill(StageKind):
    """Train students with the objective (weighted by ``ce_weight``) plus weighted distillers
    against frozen teachers. Each loss names its ``teacher`` when the stage has several."""

    students: list[str]
    teachers: list[str]
    ce_weight: float = 1.0
    losses: list[dict[str, Any]] = field(default_factory=list)

    def trains(self) -> list[str]:
        return list(self.students)

    def check(self, model: ModelView) -> list[str]:
        problems = _unknown(self.teachers, model, "teachers") + _unknown(self.students, model, "students")
        if not self.teachers:
            problems.append("teacher: a distill stage needs a teacher (teacher = \"text\") or teachers = [...]")
        for name in self.students:
            if name in self.teachers:
                problems.append(f"students: {name!r} cannot distil from itself")
        for index, loss in enumerate(self.losses):
            teacher = loss.get("teacher")
            if teacher is None and len(self.teachers) > 1:
                problems.append(
                    f"losses -> {index} -> teacher: the stage has several teachers ({', '.join(self.teachers)}); "
                    "name the one this loss compares with"
                )
            elif teacher is not None and teacher not in self.teachers:
                problems.append(
                    f"losses -> {index} -> teacher: {teacher!r} is not one of the stage's teachers "
                    f"({', '.join(self.teachers) or 'none'})"
                )
        return problems

    def build(self, context: StageContext) -> StagePlan:
        from .modules import DistillModule

        students = {n: context.model.encoders[n] for n in self.students}
        train = context.loader(students, "train", shuffle=True)
        teachers = {n: context.frozen_outputs(n, train.samples, "train") for n in self.teachers}
        distillers = [
            (
                float(loss.get("weight", 1.0)),
                loss.get("teacher") or self.teachers[0],
                context.create("distillers", loss, reserved=("weight", "teacher")),
            )
            for loss in self.losses
        ]
        dev = context.loader(students, "dev", shuffle=False)
        module = DistillModule(students, context.objective(), distillers, teachers, self.ce_weight)
        return StagePlan(module, train, dev)


@dataclass
class Fuse(StageKind):
    """Train the fuser on the cached outputs of frozen encoders: an epoch costs only the fuser."""

    encoders: list[str] | None = None
    untrained_encoders_reason: str | None = None
    uses_fuser: bool = True

    def check(self, model: ModelView) -> list[str]:
        problems = []
        if not model.has_fuser:
            problems.append("kind: a fuse stage needs [model.fuser]")
        problems += _unknown(self.encoders or [], model, "encoders")
        used = self.encoders or list(model.encoders)
        untrained = [n for n in used if n in model.encoders and n not in model.trained]
        if untrained and not self.untrained_encoders_reason:
            problems.append(
                f"encoders: fuses encoder(s) {', '.join(untrained)} that no earlier stage trained; "
                "train them first, or set untrained_encoders_reason (e.g. \"pretrained encoders\")"
            )
        return problems

    def build(self, context: StageContext) -> StagePlan:
        from .modules import FuseModule

        model = context.model
        assert model.fuser is not None  # check() refused the recipe otherwise
        names = self.encoders or list(model.encoders)
        if model.anchor not in names:
            names = [model.anchor, *names]
        outputs: dict[str, Mapping[str, Any]] = {}
        sources = {}
        for split in ("train", "dev"):
            samples = context.usable(context.samples(split), names, split)
            outputs[split] = {n: context.frozen_outputs(n, samples, split) for n in names}
            sources[split] = context.index_source(split, samples, shuffle=split == "train")
        return StagePlan(FuseModule(model.fuser, model.anchor, outputs, context.objective()), sources["train"], sources["dev"])
