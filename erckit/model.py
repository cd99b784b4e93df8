"""``ERCModel``: named encoders + an optional fuser, saved as a self-describing directory.

A model directory holds ``config.json`` (the resolved recipe, the label list,
the erckit version), ``model.safetensors`` (every weight), and per encoder
``encoders/<name>/`` with the non-weight files needed to rebuild it offline
(tokenizer, backbone config). Loading never unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from . import __version__
from .components import Encoder, Features, Fuser, ModalityOutput
from .errors import ErckitError, ModelLoadError

if TYPE_CHECKING:
    from .data.types import Dialogue
    from .recipe import Recipe

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1


class ERCModel(nn.Module):
    """Encoders keyed by name (one is the anchor/teacher) and an optional fuser.

    ``forward`` returns the fused logits when a fuser exists (and ``use_fuser``
    is True), else the anchor encoder's own logits.
    """

    def __init__(
        self,
        encoders: Mapping[str, Encoder],
        fuser: Fuser | None,
        anchor: str,
        labels: Sequence[str],
        recipe: dict[str, Any],
    ):
        super().__init__()
        if anchor not in encoders:
            raise ErckitError(f"anchor {anchor!r} is not one of the encoders ({', '.join(encoders)})")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fuser = fuser
        self.anchor = anchor
        self.labels = list(labels)
        self.recipe = recipe
        self.use_fuser = fuser is not None

    @property
    def num_classes(self) -> int:
        return len(self.labels)

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
    def from_recipe(cls, recipe: "Recipe", labels: Sequence[str], assets: Path | None = None) -> "ERCModel":
        """Call every factory in the recipe; with ``assets`` rebuild offline from a model directory."""
        from functools import partial

        from . import registry

        num_classes = len(labels)
        encoders: dict[str, Encoder] = {}
        for name, table in recipe.model.encoders.items():
            factory = registry.encoders.get(table.factory)
            directory = assets / "encoders" / name if assets is not None else None
            build = partial(_build_encoder, factory, table.args, num_classes, directory)
            encoders[name] = _rebuilt(build, f"encoder {name!r} ({table.factory})", directory)
            _check_encoder(name, table.factory, encoders[name], num_classes)
        anchor = recipe.anchor
        ordered = [anchor, *(n for n in encoders if n != anchor)]
        fuser = None
        if recipe.model.fuser is not None:
            table = recipe.model.fuser
            factory = registry.fusers.get(table.factory)
            dims = {n: encoders[n].dim for n in ordered}
            fuser = _rebuilt(
                lambda: _call(factory, table.args, num_classes=num_classes, input_dims=dims, anchor=anchor),
                f"fuser ({table.factory})",
                assets,
            )
        from .recipe import recipe_to_dict

        return cls(encoders, fuser, anchor, labels, recipe_to_dict(recipe))

    # ------------------------------------------------------------- save/load

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json, model.safetensors and encoder assets; atomic per directory."""
        from .fileio import atomic_directory
        from .weights import save_weights

        directory = Path(directory)
        with atomic_directory(directory, replace=True) as staging:
            for name, encoder in self.encoders.items():
                target = staging / "encoders" / name
                target.mkdir(parents=True, exist_ok=True)
                encoder.save_assets(target)
            save_weights(self, staging / WEIGHTS_FILE)
            config = {
                "format_version": FORMAT_VERSION,
                "erckit_version": __version__,
                "labels": self.labels,
                "anchor": self.anchor,
                "encoders": {n: type(e).__name__ for n, e in self.encoders.items()},
                "fuser": self.recipe["model"]["fuser"]["factory"] if self.fuser is not None else None,
                "use_fuser": self.use_fuser,
                "recipe": self.recipe,
            }
            (staging / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> "ERCModel":
        """Load a model directory written by ``save_pretrained`` (or a run directory holding ``model/``).

        The directory is untrusted input: every file read, every name that becomes a path and the
        weights' header are checked before the model is built (see ``erckit.modeldir``), building
        cannot allocate beyond what the weights file holds, and non-finite weights are refused.
        """
        from safetensors import SafetensorError

        from . import modeldir
        from .weights import load_weights, parse_aliases

        directory = resolve_model_dir(directory)
        config_path = directory / CONFIG_FILE
        config = modeldir.read_json(config_path, directory)
        modeldir.check_config(config, config_path)
        recipe = _stored_recipe(config["recipe"], config_path)
        for name in recipe.model.encoders:
            modeldir.check_assets(directory, name, f"{config_path}: recipe -> model -> encoders")
        weights = directory / WEIGHTS_FILE
        header = modeldir.read_header(weights, directory)
        try:
            aliases = parse_aliases(header.metadata)
        except ValueError as error:
            raise ModelLoadError(f"{weights}: {error}") from None
        with modeldir.allocation_guard(header, len(aliases), str(directory)):
            model = cls.from_recipe(recipe, config["labels"], assets=directory)
        modeldir.check_against_header(model.state_dict(), header, aliases, weights)
        try:
            load_weights(model, weights, finite=True)
        except (SafetensorError, OSError, RuntimeError, ValueError) as error:
            raise ModelLoadError(f"{weights} cannot be loaded: {modeldir.one_line(error)}") from None
        model.use_fuser = bool(config.get("use_fuser", model.fuser is not None))
        model.eval()
        if device is not None:
            model.to(device)
        return model

    # --------------------------------------------------------------- predict

    def predict(self, dialogues: Sequence["Dialogue"], **options: Any) -> list:
        """Label every utterance; see ``erckit.predict.predict`` for the options and result types."""
        from .predict import predict

        return predict(self, dialogues, **options)


def resolve_model_dir(directory: str | Path) -> Path:
    directory = Path(directory)
    if not directory.exists():
        raise ModelLoadError(f"model directory {directory} does not exist")
    if not (directory / CONFIG_FILE).exists() and (directory / "model" / CONFIG_FILE).exists():
        return directory / "model"  # a run directory
    if not (directory / CONFIG_FILE).exists():
        raise ModelLoadError(f"{directory / CONFIG_FILE} is missing; is {directory} an erckit model directory?")
    return directory


def _stored_recipe(raw: dict[str, Any], config_path: Path) -> "Recipe":
    """The recipe kept in config.json, validated like a recipe file (schema, then every factory's signature)."""
    from pydantic import ValidationError

    from .modeldir import one_line
    from .recipe.load import check_components
    from .recipe.schema import Recipe

    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = " -> ".join(str(part) for part in first["loc"])
        count = error.error_count()
        more = f" ({count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise ModelLoadError(f"{config_path}: recipe -> {where}: {first['msg']}{more}") from None
    problems = check_components(recipe)
    if problems:
        more = f" ({len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ModelLoadError(f"{config_path}: recipe -> {one_line(problems[0])}{more}")
    return recipe


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


def _build_encoder(factory: Any, args: Mapping[str, Any], num_classes: int, assets: Path | None) -> Any:
    from contextlib import nullcontext

    from .hf import rebuild_from_assets

    with rebuild_from_assets(assets) if assets is not None else nullcontext():
        return _call(factory, args, num_classes=num_classes)


def _call(factory: Any, args: Mapping[str, Any], **injected: Any) -> Any:
    from .recipe.signature import factory_parameters

    accepted = factory_parameters(factory)
    extra = {k: v for k, v in injected.items() if k in accepted and k not in args}
    return factory(**args, **extra)


def _check_encoder(name: str, factory: str, encoder: Any, num_classes: int) -> None:
    if not isinstance(encoder, Encoder):
        raise ErckitError(f"{factory} (encoder {name!r}) returned {type(encoder).__name__}, not an erckit Encoder")
    if not isinstance(getattr(encoder, "dim", None), int):
        raise ErckitError(f"{factory} (encoder {name!r}) does not declare an integer 'dim'")
