"""The config of a saved model: what ``config.json`` of a model directory holds, and how it is read.

A model's config describes the model, not how it was trained: its labels, its encoders and fuser
as component tables (a registered factory name plus its resolved arguments), which encoder is the
anchor, whether the fuser is used, the preprocessing that prediction must repeat, and the package
and version each component came from. The training recipe is written beside it as
``training_recipe.toml`` for provenance; nothing reads that file to load a model, so renaming or
removing a recipe key never breaks a saved model.

``format_version`` says which layout a ``config.json`` has. Reading accepts every format erckit
ever wrote (older ones are migrated in memory, the directory is left as it is) and refuses a newer
one in one line naming the erckit that made it:

* 1 (erckit 0.1.0): labels, anchor, use_fuser and the whole resolved training recipe under
  ``recipe``; only its model tables and ``data.max_context`` are taken, every training key ignored;
* 2: ``SavedModelConfig`` below;
* 3: the same layout; ``telme.ASF.v1`` became the TelME authors' own fusion network. In formats 1
  and 2 that name meant the multi-token fuser now registered as ``erckit.ModalityShift.v1`` (same
  arguments, same weights), so they are read with that name.

A change to this layout is a new format version plus a migration here, and a frozen directory of
the old format under ``tests/fixtures/`` that must keep loading and predicting the same.

Nothing here imports torch: factories are looked up (to check the tables), never called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Mapping, Sequence

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator

from . import __version__
from .data.types import repeated_labels
from .errors import ErckitError, ModelLoadError

if TYPE_CHECKING:
    from .recipe import Recipe

FORMAT_VERSION = 3
"""The format this erckit writes, and the newest it reads."""

CONFIG_FILE = "config.json"
TRAINING_RECIPE_FILE = "training_recipe.toml"
MAX_TRAINING_RECIPE_BYTES = 1 << 20  # what a recipe file may hold (erckit.recipe.load.MAX_RECIPE_BYTES)

# Components whose name came to mean another network: the name formats before 3 meant -> today's.
RENAMED_BEFORE_3 = {"telme.ASF.v1": "erckit.ModalityShift.v1"}

# A saved model's component tables: where each lives in the config and which registry resolves it.
COMPONENT_REGISTRIES = {"encoders": "encoders", "fuser": "fusers"}


class SavedComponent(BaseModel):
    """``factory`` (a registered name) and the factory's arguments, checked against its signature."""

    model_config = ConfigDict(extra="allow", strict=True)
    factory: str

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})

    def table(self) -> dict[str, Any]:
        return {"factory": self.factory, **self.args}


class Preprocessing(BaseModel):
    """What turns dialogues into the model's inputs beyond the encoders' own arguments."""

    model_config = ConfigDict(extra="forbid", strict=True)
    max_context: int | None = Field(None, ge=1, description="keep only the last N utterances as context")


def _encoder_name(name: str) -> str:
    from .recipe.schema import encoder_name_problem

    problem = encoder_name_problem(name)
    if problem:
        raise ValueError(f"encoder name {name!r} {problem}")
    return name


class ConfigBacked:
    """``labels``, ``anchor`` and ``num_classes`` read from ``self.config`` (a ``SavedModelConfig``):
    a trained model and its ONNX export answer them the same way."""

    config: "SavedModelConfig"

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)

    @property
    def anchor(self) -> str:
        return self.config.anchor

    @property
    def num_classes(self) -> int:
        return len(self.config.labels)


class SavedModelConfig(BaseModel):
    """``config.json`` of a model directory, format 3 (older formats are migrated to it on reading)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    format_version: int = FORMAT_VERSION
    erckit_version: str = Field(__version__, description="the erckit that wrote the directory")
    labels: list[str] = Field(description="class names; the position of a name is its class index")
    anchor: str = Field(description="the encoder whose logits answer without the fuser, and whose embedding it shifts")
    use_fuser: StrictBool = Field(description="answer with the fuser (false: the anchor encoder's own head)")
    # An encoder name becomes a module name and a directory.
    encoders: dict[Annotated[str, AfterValidator(_encoder_name)], SavedComponent] = Field(min_length=1)
    fuser: SavedComponent | None = None
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    components: dict[str, str] = Field(
        default_factory=dict, description="factory name -> 'package version' it came from (informative)"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_use_fuser(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "use_fuser" not in data:
            return {**data, "use_fuser": data.get("fuser") is not None}
        return data

    @field_validator("format_version")
    @classmethod
    def _current_format(cls, version: int) -> int:
        if version != FORMAT_VERSION:
            raise ValueError(f"must be {FORMAT_VERSION} here (read older and newer ones with read_model_config)")
        return version

    @field_validator("labels")
    @classmethod
    def _distinct_labels(cls, labels: list[str]) -> list[str]:
        if not labels or not all(labels):
            raise ValueError("must be a non-empty list of non-empty strings")
        duplicates = repeated_labels(labels)
        if duplicates:
            raise ValueError(f"duplicate label(s) {', '.join(map(repr, duplicates))}")
        return labels

    @model_validator(mode="after")
    def _consistent(self) -> "SavedModelConfig":
        if self.anchor not in self.encoders:
            raise ValueError(f"anchor {self.anchor!r} is not one of the encoders ({', '.join(self.encoders)})")
        if self.use_fuser and self.fuser is None:
            raise ValueError("use_fuser is true but the model has no fuser")
        return self

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_json_dict(self) -> dict[str, Any]:
        """What ``config.json`` holds (the erckit writing it named as its maker)."""
        data = self.model_dump(mode="json")
        data["erckit_version"] = __version__
        return data


# ------------------------------------------------------------------------- reading


def read_model_config(raw: Mapping[str, Any], path: Path) -> SavedModelConfig:
    """The config of a model directory from its parsed ``config.json``, any format erckit ever wrote.

    Refuses, in one ``ModelLoadError`` line naming ``path`` and the key: a newer format (naming the
    erckit that made it), a missing or malformed ``format_version``, keys or values of the wrong
    kind, and component tables that do not fit their factory's signature. The tables come back with
    every default filled in.
    """
    from .modeldir import check_config

    version = _format_version(raw, path)
    check_config(raw, path)
    if version == 1:
        data, where = _migrate_v1(raw, path)
    else:
        data, where = dict(raw), {}
    if version < 3:
        data = _rename_components(data)
    try:
        config = SavedModelConfig.model_validate(data)
    except ValidationError as error:
        raise ModelLoadError(f"{path}: {validation_problem(error, where)}") from None
    encoders, fuser, problems = check_components(config, where)
    if problems:
        more = f" ({len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise ModelLoadError(f"{path}: {_one_line(problems[0])}{more}")
    return with_tables(config, encoders, fuser)


def _format_version(raw: Mapping[str, Any], path: Path) -> int:
    if "format_version" not in raw:
        raise ModelLoadError(f"{path}: missing 'format_version'; is this an erckit model directory?")
    version = raw["format_version"]
    if type(version) is not int:
        raise ModelLoadError(
            f"{path}: 'format_version' must be an integer (the model format), got {_one_line(repr(version), 40)}"
        )
    if version > FORMAT_VERSION:
        made_by = raw.get("erckit_version")
        maker = f"erckit {_one_line(made_by, 40)}" if isinstance(made_by, str) and made_by else "an unknown erckit"
        raise ModelLoadError(
            f"{path}: made by {maker} (model format {version}); this erckit {__version__} reads formats up to "
            f"{FORMAT_VERSION}; upgrade erckit (pip install -U erckit)"
        )
    if version < 1:
        raise ModelLoadError(f"{path}: 'format_version' {version} is not a model format (erckit wrote 1 to {FORMAT_VERSION})")
    return version


def _migrate_v1(raw: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Format 1 in the layout of format 2, plus where each migrated key came from (for messages).

    Format 1 kept the whole training recipe; only what describes the model is taken from it
    (its model tables and ``data.max_context``), leniently: every other key, whatever its name or
    value, is ignored, so a recipe schema change cannot stop these directories from loading.
    """
    recipe = raw.get("recipe")
    if not isinstance(recipe, Mapping):
        got = "missing" if recipe is None else f"got {_json_kind(recipe)}"
        raise ModelLoadError(f"{path}: 'recipe' must be an object (format 1 keeps the model in it), {got}")
    model = recipe.get("model")
    if not isinstance(model, Mapping):
        raise ModelLoadError(f"{path}: recipe -> model must be an object, got {_json_kind(model)}")
    data = recipe.get("data")
    max_context = data.get("max_context") if isinstance(data, Mapping) else None
    migrated = {
        "format_version": FORMAT_VERSION,
        "erckit_version": raw["erckit_version"] if isinstance(raw.get("erckit_version"), str) else "unknown",
        "labels": raw["labels"],
        "anchor": raw["anchor"],
        "use_fuser": raw.get("use_fuser", model.get("fuser") is not None) and model.get("fuser") is not None,
        "encoders": model.get("encoders"),
        "fuser": model.get("fuser"),
        "preprocessing": {"max_context": max_context},
    }
    where = {
        "encoders": "recipe -> model -> encoders",
        "fuser": "recipe -> model -> fuser",
        "preprocessing": "recipe -> data",
    }
    return migrated, where


def _rename_components(data: Mapping[str, Any]) -> dict[str, Any]:
    """A format 1 or 2 config (format 1 already migrated) as format 3: components renamed since then."""
    def renamed(table: Any) -> Any:
        if isinstance(table, Mapping) and table.get("factory") in RENAMED_BEFORE_3:
            return {**table, "factory": RENAMED_BEFORE_3[table["factory"]]}
        return table

    migrated = {**data, "format_version": FORMAT_VERSION, "fuser": renamed(data.get("fuser"))}
    if isinstance(data.get("encoders"), Mapping):
        migrated["encoders"] = {name: renamed(table) for name, table in data["encoders"].items()}
    if isinstance(data.get("components"), Mapping):
        migrated["components"] = {RENAMED_BEFORE_3.get(name, name): origin for name, origin in data["components"].items()}
    return migrated


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), "a number")


def _located(parts: Sequence[Any], where: Mapping[str, str]) -> str:
    """A config location as ``a -> b``; keys migrated from an older format named where they were."""
    shown = [str(part) for part in parts if part != "[key]"]
    if shown and shown[0] in where:
        shown[0] = where[shown[0]]
    return " -> ".join(shown)


_FRIENDLY = {
    "model_type": "must be an object (a component table with 'factory')",
    "dict_type": "must be an object",
    "list_type": "must be an array",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
}


def validation_problem(error: ValidationError, where: Mapping[str, str]) -> str:
    first = error.errors()[0]
    location = _located(first["loc"], where)
    kind = first["type"]
    if kind == "extra_forbidden":
        known = ", ".join(SavedModelConfig.model_fields if len(first["loc"]) == 1 else Preprocessing.model_fields)
        message = f"unknown key (model format {FORMAT_VERSION} has: {known})"
    elif kind == "missing":
        message = "required key is missing"
    elif kind in _FRIENDLY:
        message = f"{_FRIENDLY[kind]}, got {_one_line(repr(first.get('input')), 60)}"
    else:
        message = first["msg"].removeprefix("Value error, ")
    count = error.error_count()
    more = f" ({count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    return f"{location}: {message}{more}" if location else f"{message}{more}"


def _one_line(text: object, limit: int = 300) -> str:
    from .modeldir import one_line

    return one_line(text, limit)


# ---------------------------------------------------------------- component tables


def check_components(
    config: SavedModelConfig, where: Mapping[str, str] | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any] | None, list[str]]:
    """Check every component table against its factory's signature.

    Returns (encoder tables, fuser table, problems); the tables have every default filled in, with
    the values the factories' signatures validated (what the factories are called with). The
    recipe's resolver does the checking, so a model table is held to exactly a recipe table's rules.
    """
    from .recipe.resolve import check_table

    where = where or {}
    problems: list[str] = []
    encoders: dict[str, dict[str, Any]] = {}
    for name, component in config.encoders.items():
        path = f"{where.get('encoders', 'encoders')} -> {name}"
        filled, found = check_table("encoders", component.table(), path)
        if filled is None:
            found = _unknown_with_origin(found, path, component.factory, config.components)
        problems.extend(found)
        encoders[name] = filled if filled is not None else component.table()
    fuser = None
    if config.fuser is not None:
        path = where.get("fuser", "fuser")
        filled, found = check_table("fusers", config.fuser.table(), path)
        if filled is None:
            found = _unknown_with_origin(found, path, config.fuser.factory, config.components)
        problems.extend(found)
        fuser = filled if filled is not None else config.fuser.table()
    return encoders, fuser, problems


def _unknown_with_origin(problems: list[str], path: str, factory: str, components: Mapping[str, str]) -> list[str]:
    """An unknown factory's problem, naming the package the model's maker had it from (first: lists get long)."""
    made_with = components.get(factory)
    if not made_with:
        return problems
    prefix = f"{path} -> factory: "
    return [p.replace(prefix, f"{prefix}made with {made_with}, not installed here: ", 1) for p in problems]


def with_tables(
    config: SavedModelConfig, encoders: Mapping[str, Mapping[str, Any]], fuser: Mapping[str, Any] | None
) -> SavedModelConfig:
    """``config`` holding these (checked) component tables, as JSON data."""
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    def saved(table: Mapping[str, Any], path: str) -> SavedComponent:
        try:
            return SavedComponent.model_validate(to_jsonable_python(dict(table)))
        except PydanticSerializationError as error:
            raise ErckitError(f"{path}: the arguments of {table['factory']} cannot be saved as JSON ({error})") from None

    return config.model_copy(update={
        "encoders": {name: saved(table, f"encoders -> {name}") for name, table in encoders.items()},
        "fuser": saved(fuser, "fuser") if fuser is not None else None,
    })


# ------------------------------------------------------------------ from a recipe


def config_from_recipe(recipe: "Recipe", labels: Sequence[str]) -> SavedModelConfig:
    """The config of the model a recipe describes (its model tables, anchor and preprocessing).

    ``use_fuser`` starts true when the recipe has a fuser; training sets it to whether a stage
    trains the fuser.
    """
    from . import registry

    model = recipe.model
    raw = {
        "labels": list(labels),
        "anchor": recipe.anchor,
        "encoders": {name: {"factory": table.factory, **table.args} for name, table in model.encoders.items()},
        "fuser": {"factory": model.fuser.factory, **model.fuser.args} if model.fuser is not None else None,
        "preprocessing": {"max_context": recipe.data.max_context},
    }
    try:
        config = SavedModelConfig.model_validate(raw)
    except ValidationError as error:
        raise ErckitError(f"the model of this recipe: {validation_problem(error, {'encoders': 'model -> encoders', 'fuser': 'model -> fuser'})}") from None
    where = {"encoders": "model -> encoders", "fuser": "model -> fuser"}
    encoders, fuser, problems = check_components(config, where)
    if problems:
        raise ErckitError("the model of this recipe: " + "; ".join(problems))
    used = [(registry.encoders, table["factory"]) for table in encoders.values()]
    if fuser is not None:
        used.append((registry.fusers, fuser["factory"]))
    components = {}
    for kind, name in used:
        origin = kind.origins.get(name)
        components[name] = origin.package if origin is not None else "unknown"
    return with_tables(config, encoders, fuser).model_copy(update={"components": components})
