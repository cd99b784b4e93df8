"""The recipe schema: what a TOML recipe may contain, with defaults.

Tables with a ``factory`` key name a registered component; their other keys are
the factory's arguments, checked against its signature in ``validate.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator

from ..data.types import repeated_labels

MediaPolicy = Literal["error", "skip", "zero"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class ComponentTable(BaseModel):
    """``factory = "ns.Name.vN"`` plus the factory's keyword arguments."""

    model_config = ConfigDict(extra="allow")
    factory: str

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class DataConfig(BaseModel):
    """``dataset`` names a registered reader; keys not declared here are its arguments."""

    model_config = ConfigDict(extra="allow")
    dataset: str
    labels: list[str] | None = Field(None, description="override the dataset's label list (order = class index)")
    media_policy: MediaPolicy = Field("error", description="missing/undecodable media: error | skip | zero")
    cache_dir: str = Field(".erckit-cache", description="decoded media and frozen-encoder outputs")
    max_context: int | None = Field(None, ge=1, description="keep only the last N utterances as context")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    train_split: str = "train"
    dev_split: str = "dev"
    test_split: str | None = "test"

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[str] | None) -> list[str] | None:
        if labels is not None:
            if not labels:
                raise ValueError("the label list is empty")
            duplicates = repeated_labels(labels)
            if duplicates:
                raise ValueError(f"duplicate label(s) {', '.join(map(repr, duplicates))}; each class needs its own name")
        return labels

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


def encoder_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an encoder (it becomes a module name and a directory), or None."""
    if not name or len(name) > 128:
        return "must be 1-128 characters"
    bad = sorted({c for c in name if c in "./\\:\0" or not c.isprintable()})
    if bad:
        return f"cannot contain {', '.join(map(repr, bad))}"
    return None


def _plain_encoder_name(name: str) -> str:
    problem = encoder_name_problem(name)
    if problem:
        raise ValueError(f"encoder name {name!r} {problem} (it names a module and a directory)")
    return name


class ModelConfig(Strict):
    anchor: str | None = Field(None, description="encoder whose embedding the fuser shifts (default: the first)")
    encoders: dict[Annotated[str, AfterValidator(_plain_encoder_name)], ComponentTable] = Field(min_length=1)
    fuser: ComponentTable | None = None


class StageBase(Strict):
    name: str | None = None
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimiser step")
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0, le=1, description="warm-up as a fraction of optimiser steps")
    warmup_steps: int | None = Field(None, ge=0, description="warm-up in optimiser steps (overrides warmup_ratio)")
    max_grad_norm: float | None = Field(1.0, gt=0)
    patience: int | None = Field(None, ge=1, description="stop after N epochs without dev weighted-F1 gain")
    # Strict: pydantic would read "no" or 0 as false and "yes" as true; a recipe says true or false.
    class_weights: StrictBool = False
    bucket_by_length: StrictBool = True


class SupervisedStage(StageBase):
    """Train encoders (each with its own head) with cross-entropy."""

    kind: Literal["supervised"]
    encoders: list[str] = Field(min_length=1)


class DistillLoss(ComponentTable):
    weight: float = Field(1.0, ge=0)


class DistillStage(StageBase):
    """Train students with CE plus weighted distillers against a frozen teacher."""

    kind: Literal["distill"]
    teacher: str
    students: list[str] = Field(min_length=1)
    ce_weight: float = Field(1.0, ge=0)
    losses: list[DistillLoss] = Field(default_factory=list)


class FuseStage(StageBase):
    """Train the fuser on frozen encoders."""

    kind: Literal["fuse"]
    encoders: list[str] | None = Field(None, description="encoders feeding the fuser (default: all)")
    untrained_encoders_reason: str | None = Field(
        None, description="why fusing encoders no earlier stage trained is intended (e.g. pretrained)"
    )


Stage = Annotated[Union[SupervisedStage, DistillStage, FuseStage], Field(discriminator="kind")]


class RuntimeConfig(Strict):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    deterministic: StrictBool = False
    threads: int | Literal["auto"] = Field(
        "auto", description="torch intra-op threads; auto: the CPUs this process may use, shared by local ranks"
    )

    @field_validator("threads")
    @classmethod
    def _positive_threads(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 1:
            raise ValueError("threads must be at least 1 (or \"auto\")")
        return value


class Recipe(Strict):
    seed: int = 0
    output_dir: str | None = Field(None, description="run directory (default: runs/<recipe name>)")
    data: DataConfig
    model: ModelConfig
    stages: list[Stage] = Field(min_length=1)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    def stage_names(self) -> list[str]:
        return [s.name or "" for s in self.stages]

    @property
    def anchor(self) -> str:
        return self.model.anchor or next(iter(self.model.encoders))

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


DATA_RESERVED = frozenset(DataConfig.model_fields)
