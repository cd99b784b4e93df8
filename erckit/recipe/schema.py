"""The recipe schema: what a TOML recipe may contain, with defaults.

Tables with a ``factory`` key name a registered component; their other keys are
the factory's arguments, checked against its signature in ``validate.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

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


@dataclass(frozen=True)
class ModelView:
    """What a stage kind may check a recipe's model against (no weights are built): see
    ``erckit.train.stage.StageKind.check``."""

    encoders: tuple[str, ...]
    anchor: str
    has_fuser: bool
    trained: frozenset[str] = field(default_factory=frozenset)  # encoders earlier stages train


class ModelConfig(Strict):
    anchor: str | None = Field(None, description="encoder whose embedding the fuser shifts (default: the first)")
    encoders: dict[Annotated[str, AfterValidator(_plain_encoder_name)], ComponentTable] = Field(min_length=1)
    fuser: ComponentTable | None = None


STAGE_KINDS = {"supervised": "erckit.Supervised.v1", "distill": "erckit.Distill.v1", "fuse": "erckit.Fuse.v1"}
OPTIMIZERS = {"adamw": "erckit.AdamW.v1", "adam": "erckit.Adam.v1", "sgd": "erckit.SGD.v1"}
SCHEDULERS = {
    "linear": "erckit.LinearSchedule.v1", "cosine": "erckit.CosineSchedule.v1", "constant": "erckit.ConstantSchedule.v1",
}
LOGGERS = {"jsonl": "erckit.JSONL.v1", "tensorboard": "erckit.TensorBoard.v1", "mlflow": "erckit.MLflow.v1"}
"""Short names a recipe may use for built-in components (``kind = "distill"``, ``optimizer = "sgd"``)."""

# Stage keys that are shorthands for arguments of the stage's component tables.
OPTIMIZER_SHORTHAND_KEYS = ("lr", "weight_decay")
SCHEDULER_SHORTHAND_KEYS = ("warmup_ratio", "warmup_steps")


def short_kind(kind: str) -> str:
    """A built-in stage kind by its short name (``erckit.Distill.v1`` -> ``distill``), for people to read."""
    return next((short for short, full in STAGE_KINDS.items() if full == kind), kind)


def full_name(name: Any, shorthands: dict[str, str]) -> Any:
    return shorthands.get(name, name) if isinstance(name, str) else name


def expand_stage_shorthands(stage: dict[str, Any]) -> list[str]:
    """Rewrite a raw stage table's shorthands into component tables, in place; return problems.

    ``kind = "distill"`` -> ``erckit.Distill.v1``; ``optimizer = "adamw"`` and the stage's
    ``lr``/``weight_decay`` -> ``optimizer = {factory = "erckit.AdamW.v1", lr = ..., ...}``;
    ``scheduler`` likewise with ``warmup_ratio``/``warmup_steps``; ``class_weights = true`` ->
    ``objective = "erckit.WeightedCrossEntropy.v1"``. Keys set in a table win over shorthands.
    """
    problems: list[str] = []
    where = f"stages -> {stage.get('name', '?')}"
    stage["kind"] = full_name(stage.get("kind"), STAGE_KINDS)

    def table(key: str, default: str, shorthands: dict[str, str], moved: tuple[str, ...]) -> None:
        value = stage.get(key, default)
        if isinstance(value, str):
            value = {"factory": full_name(value, shorthands)}
        elif isinstance(value, dict) and "factory" in value:
            value = {**value, "factory": full_name(value["factory"], shorthands)}
        else:
            return  # the schema reports the wrong shape
        for short in moved:
            if short in stage:
                value.setdefault(short, stage.pop(short))
        stage[key] = value

    table("optimizer", "adamw", OPTIMIZERS, OPTIMIZER_SHORTHAND_KEYS)
    table("scheduler", "linear", SCHEDULERS, SCHEDULER_SHORTHAND_KEYS)
    class_weights = stage.pop("class_weights", None)
    if class_weights is not None and not isinstance(class_weights, bool):
        problems.append(f"{where} -> class_weights: expected true or false (got {class_weights!r})")
    if class_weights is True and "objective" in stage:
        problems.append(
            f"{where}: class_weights = true is a shorthand for objective = \"erckit.WeightedCrossEntropy.v1\"; "
            "set one of them"
        )
    default_objective = "erckit.WeightedCrossEntropy.v1" if class_weights is True else "erckit.CrossEntropy.v1"
    table("objective", default_objective, {}, ())
    return problems


class StageConfig(BaseModel):
    """One ``[[stages]]`` table: what every stage kind shares. Keys not declared here are the
    arguments of the stage kind's factory (``encoders``, ``teacher``, ``students``...), checked
    against its signature like any component table."""

    model_config = ConfigDict(extra="allow", validate_default=True)
    name: str | None = None
    kind: str = Field(description="a registered stage kind (erckit.Supervised.v1 or short: supervised, distill, fuse)")
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimiser step")
    max_grad_norm: float | None = Field(1.0, gt=0)
    patience: int | None = Field(None, ge=1, description="stop after N epochs without dev weighted-F1 gain")
    # Strict: pydantic would read "no" or 0 as false and "yes" as true; a recipe says true or false.
    bucket_by_length: StrictBool = True
    precision: Literal["fp32", "bf16", "fp16"] | None = Field(None, description="this stage's precision (default: runtime's)")
    objective: ComponentTable
    optimizer: ComponentTable
    scheduler: ComponentTable

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: Any) -> Any:
        # load_recipe expands them first (to report their problems with the rest); a stage built
        # directly from data (Recipe.model_validate) gets the same reading.
        if isinstance(data, dict):
            data = dict(data)
            problems = expand_stage_shorthands(data)
            if problems:
                raise ValueError("; ".join(problems))
        return data

    @property
    def args(self) -> dict[str, Any]:
        """The stage kind's arguments."""
        return dict(self.__pydantic_extra__ or {})

    def kind_table(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.args}


STAGE_RESERVED = frozenset(StageConfig.model_fields)


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
    stages: list[StageConfig] = Field(min_length=1)
    loggers: list[ComponentTable] = Field(
        default_factory=lambda: [ComponentTable(factory="erckit.JSONL.v1")],
        description="where metrics go (default: metrics.jsonl in the run directory)",
    )
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    def stage_names(self) -> list[str]:
        return [s.name or "" for s in self.stages]

    @property
    def anchor(self) -> str:
        return self.model.anchor or next(iter(self.model.encoders))

    def stage(self, name: str) -> StageConfig:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)


DATA_RESERVED = frozenset(DataConfig.model_fields)
