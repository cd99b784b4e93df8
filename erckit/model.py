"""``ERCModel``: named encoders + an optional fuser, saved as a self-describing directory.

A model directory holds ``config.json`` (the model's own versioned config: labels, anchor, the
encoders and fuser as component tables, preprocessing, component versions; see
``erckit.modelconfig``), ``model.safetensors`` (every weight), per encoder ``encoders/<name>/`` with
the non-weight files needed to rebuild it offline (tokenizer, backbone config), and
``training_recipe.toml``, the recipe it was trained with, kept for provenance and never read to
load. Loading never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from .components import Encoder, Features, Fuser, ModalityOutput
from .errors import ErckitError, ModelLoadError
from .modelconfig import (
    CONFIG_FILE,
    FORMAT_VERSION,
    MAX_TRAINING_RECIPE_BYTES,
    TRAINING_RECIPE_FILE,
    ConfigBacked,
    SavedModelConfig,
)

if TYPE_CHECKING:
    from .data.types import Dialogue
    from .recipe import Recipe

WEIGHTS_FILE = "model.safetensors"
__all__ = ["CONFIG_FILE", "FORMAT_VERSION", "TRAINING_RECIPE_FILE", "WEIGHTS_FILE", "ERCModel", "resolve_model_dir"]


class ERCModel(ConfigBacked, nn.Module):
    """Encoders keyed by name (one is the anchor/teacher) and an optional fuser, described by ``config``.

    ``forward`` returns the fused logits when a fuser exists (and ``use_fuser``
    is True), else the anchor encoder's own logits. ``training_recipe`` is the TOML
    text of the recipe the model was built from, if known (provenance only).
    """

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        fuser: Fuser | None,
        config: SavedModelConfig,
        training_recipe: str | None = None,
    ):
        super().__init__()
        if list(encoders) != list(config.encoders) or (fuser is None) != (config.fuser is None):
            raise ErckitError(
                f"the modules ({', '.join(encoders)}{', fuser' if fuser is not None else ''}) are not the ones "
                f"the config describes ({', '.join(config.encoders)}{', fuser' if config.fuser is not None else ''})"
            )
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fuser = fuser
        self.config = config
        self.training_recipe = training_recipe

    @property
    def use_fuser(self) -> bool:
        return self.config.use_fuser

    @use_fuser.setter
    def use_fuser(self, value: bool) -> None:
        if value and self.fuser is None:
            raise ErckitError("this model has no fuser to use")
        self.config = self.config.model_copy(update={"use_fuser": bool(value)})

    def encode(self, name: str, features: Features, present: Tensor | None = None) -> ModalityOutput:
        output = self.encoders[name](features)
        return ModalityOutput(output.embedding, output.logits, present)

    def fuse(self, outputs: Mapping[str, ModalityOutput]) -> Tensor:
        if self.fuser is None or not self.use_fuser:
            return outputs[self.anchor].logits
        others = {name: out for name, out in outputs.items() if name != self.anchor}
        return self.fuser(outputs[self.anchor], others)

    def forward(self, features: Mapping[str, Features], present: Mapping[str, Tensor] | None = None) -> Tensor:  # type: ignore[override]
        present = present or {}
        names = list(self.encoders) if self.use_fuser and self.fuser is not None else [self.anchor]
        outputs = {name: self.encode(name, features[name], present.get(name)) for name in names if name in features}
        return self.fuse(outputs)

    # ------------------------------------------------------------------ build

    @classmethod
    def from_recipe(cls, recipe: "Recipe", labels: Sequence[str]) -> "ERCModel":
        """The model a recipe describes, freshly initialised; the recipe is kept as its provenance."""
        from .modelconfig import config_from_recipe
        from .recipe import recipe_to_toml

        model = cls.from_config(config_from_recipe(recipe, labels))
        model.training_recipe = recipe_to_toml(
            recipe, header="the training recipe of this model (provenance only: erckit never reads it to load the model)"
        )
        return model

    @classmethod
    def from_config(cls, config: SavedModelConfig | Mapping[str, Any], assets: Path | None = None) -> "ERCModel":
        """Call every factory the config names; with ``assets`` (a model directory) rebuild offline from its files.

        A mapping is validated as a current-format config first. Every component table is checked
        against its factory's signature before any factory runs.
        """
        from functools import partial

        from .modelconfig import check_components, with_tables
        from .recipe import resolve

        failure = ModelLoadError if assets is not None else ErckitError
        if not isinstance(config, SavedModelConfig):
            config = _validated(config, f"{assets / CONFIG_FILE}" if assets is not None else "model config", failure)
        encoder_tables, fuser_table, problems = check_components(config)
        if problems:
            more = f" ({len(problems) - 1} more)" if len(problems) > 1 else ""
            raise failure(f"{assets / CONFIG_FILE}: {problems[0]}{more}" if assets is not None else "; ".join(problems))
        config = with_tables(config, encoder_tables, fuser_table)

        num_classes = config.num_classes
        encoders: dict[str, Encoder] = {}
        for name, table in encoder_tables.items():
            factory_name = table["factory"]
            directory = assets / "encoders" / name if assets is not None else None
            build = partial(_build_encoder, table, num_classes, directory)
            encoders[name] = _rebuilt(build, f"encoder {name!r} ({factory_name})", directory)
            _check_encoder(name, factory_name, encoders[name], num_classes)
        anchor = config.anchor
        ordered = [anchor, *(n for n in encoders if n != anchor)]
        fuser = None
        if fuser_table is not None:
            factory_name = fuser_table["factory"]
            dims = {n: encoders[n].dim for n in ordered}
            fuser = _rebuilt(
                lambda: resolve.create("fusers", fuser_table, num_classes=num_classes, input_dims=dims, anchor=anchor),
                f"fuser ({factory_name})",
                assets,
            )
        return cls(encoders, fuser, config)

    # ------------------------------------------------------------- save/load

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json, model.safetensors, encoder assets and training_recipe.toml; atomic per directory."""
        from .fileio import atomic_directory
        from .weights import save_weights

        directory = Path(directory)
        with atomic_directory(directory, replace=True) as staging:
            for name, encoder in self.encoders.items():
                target = staging / "encoders" / name
                target.mkdir(parents=True, exist_ok=True)
                encoder.save_assets(target)
            save_weights(self, staging / WEIGHTS_FILE)
            config = json.dumps(self.config.to_json_dict(), indent=2, ensure_ascii=False)
            (staging / CONFIG_FILE).write_text(config + "\n", encoding="utf-8")
            if self.training_recipe is not None:
                (staging / TRAINING_RECIPE_FILE).write_text(self.training_recipe, encoding="utf-8")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> "ERCModel":
        """Load a model directory written by ``save_pretrained`` (or a run directory holding ``model/``).

        Every model format erckit wrote loads (older ones are migrated in memory); a newer one is
        refused, naming the erckit that made it. The directory is untrusted input: every file read,
        every name that becomes a path and the weights' header are checked before the model is
        built (see ``erckit.modeldir``), building cannot allocate beyond what the weights file
        holds, and non-finite weights are refused.
        """
        from safetensors import SafetensorError

        from . import modeldir
        from .modelconfig import read_model_config
        from .weights import load_weights, parse_aliases

        directory = resolve_model_dir(directory)
        config_path = directory / CONFIG_FILE
        config = read_model_config(modeldir.read_json(config_path, directory), config_path)
        for name in config.encoders:
            modeldir.check_assets(directory, name, f"{config_path}: encoders")
        weights = directory / WEIGHTS_FILE
        header = modeldir.read_header(weights, directory)
        try:
            aliases = parse_aliases(header.metadata)
        except ValueError as error:
            raise ModelLoadError(f"{weights}: {error}") from None
        with modeldir.allocation_guard(header, len(aliases), str(directory)):
            model = cls.from_config(config, assets=directory)
        modeldir.check_against_header(model.state_dict(), header, aliases, weights)
        try:
            load_weights(model, weights, finite=True)
        except (SafetensorError, OSError, RuntimeError, ValueError) as error:
            raise ModelLoadError(f"{weights} cannot be loaded: {modeldir.one_line(error)}") from None
        model.training_recipe = _provenance(directory)
        model.eval()
        if device is not None:
            model.to(device)
        return model

    # --------------------------------------------------------------- predict

    def predict(self, dialogues: Sequence["Dialogue"], **options: Any) -> list:
        """Label every utterance; see ``erckit.predict.predict`` for the options and result types."""
        from .predict import predict

        return predict(self, dialogues, **options)

    def predict_media(self, media: str | Path, **options: Any) -> Any:
        """Label every cue of one long recording: ``subtitles=``, ``transcript=`` or ``asr=``, plus
        ``gap``, ``speaker_pattern``, ``encoding`` and ``predict``'s options; see ``erckit.episode.predict_media``."""
        from .episode import predict_media

        return predict_media(self, media, **options)


def resolve_model_dir(directory: str | Path) -> Path:
    directory = Path(directory)
    if not directory.exists():
        raise ModelLoadError(f"model directory {directory} does not exist")
    if not (directory / CONFIG_FILE).exists() and (directory / "model" / CONFIG_FILE).exists():
        return directory / "model"  # a run directory
    if not (directory / CONFIG_FILE).exists():
        raise ModelLoadError(f"{directory / CONFIG_FILE} is missing; is {directory} an erckit model directory?")
    return directory


def _validated(raw: Mapping[str, Any], what: str, failure: type[ErckitError]) -> SavedModelConfig:
    from pydantic import ValidationError

    from .modelconfig import validation_problem

    try:
        return SavedModelConfig.model_validate(raw)
    except ValidationError as error:
        raise failure(f"{what}: {validation_problem(error, {})}") from None


def _provenance(directory: Path) -> str | None:
    """``training_recipe.toml`` as opaque text, to be written again when this model is saved.

    It is never parsed, and any problem with it (absent, oversized, not a regular file, not
    UTF-8) only drops it: what it says cannot change how the model loads.
    """
    from .modeldir import read_regular

    path = directory / TRAINING_RECIPE_FILE
    if not path.exists() and not path.is_symlink():
        return None
    try:
        return read_regular(path, directory, MAX_TRAINING_RECIPE_BYTES).decode("utf-8")
    except (ModelLoadError, UnicodeDecodeError, OSError):
        return None


def _rebuilt(build: Callable[[], Any], what: str, assets: Path | None) -> Any:
    """``build()``; when rebuilding from a model directory, its failures become one-line load errors.

    The saved files are untrusted input there, so a factory choking on them (a float where an
    int belongs, heads that do not divide the width) is the directory's fault, not a bug.
    """
    if assets is None:
        return build()
    try:
        return build()
    except ModelLoadError:
        raise
    except ErckitError as error:
        where = f"{what}: " if str(assets) in str(error) else f"{assets}: {what}: "
        raise ModelLoadError(where + str(error)) from None
    except Exception as error:  # noqa: BLE001 - see the docstring
        from .modeldir import one_line

        raise ModelLoadError(f"{assets}: {what} cannot be rebuilt from the saved files: {type(error).__name__}: {one_line(error)}") from None


def _build_encoder(table: Mapping[str, Any], num_classes: int, assets: Path | None) -> Any:
    from contextlib import nullcontext

    from .hf import rebuild_from_assets
    from .recipe import resolve

    with rebuild_from_assets(assets) if assets is not None else nullcontext():
        return resolve.create("encoders", table, num_classes=num_classes)


def _check_encoder(name: str, factory: str, encoder: Any, num_classes: int) -> None:
    if not isinstance(encoder, Encoder):
        raise ErckitError(f"{factory} (encoder {name!r}) returned {type(encoder).__name__}, not an erckit Encoder")
    if not isinstance(getattr(encoder, "dim", None), int):
        raise ErckitError(f"{factory} (encoder {name!r}) does not declare an integer 'dim'")
