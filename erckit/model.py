"""``ERCModel``: named encoders + an optional fuser, saved as a self-describing directory.

A model directory holds ``config.json`` (the resolved recipe, the label list,
the erckit version), ``model.safetensors`` (every weight), and per encoder
``encoders/<name>/`` with the non-weight files needed to rebuild it offline
(tokenizer, backbone config). Loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from . import __version__
from .components import Encoder, Features, Fuser, ModalityOutput
from .errors import ErckitError, ModelLoadError, UnknownComponentError

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
        from contextlib import nullcontext

        from . import registry
        from .hf import rebuild_from_assets

        num_classes = len(labels)
        encoders: dict[str, Encoder] = {}
        for name, table in recipe.model.encoders.items():
            factory = registry.encoders.get(table.factory)
            context = rebuild_from_assets(assets / "encoders" / name) if assets is not None else nullcontext()
            with context:
                encoders[name] = _call(factory, table.args, num_classes=num_classes)
            _check_encoder(name, table.factory, encoders[name], num_classes)
        anchor = recipe.anchor
        ordered = [anchor, *(n for n in encoders if n != anchor)]
        fuser = None
        if recipe.model.fuser is not None:
            factory = registry.fusers.get(recipe.model.fuser.factory)
            fuser = _call(
                factory,
                recipe.model.fuser.args,
                num_classes=num_classes,
                input_dims={n: encoders[n].dim for n in ordered},
                anchor=anchor,
            )
        from .recipe import recipe_to_dict

        return cls(encoders, fuser, anchor, labels, recipe_to_dict(recipe))

    # ------------------------------------------------------------- save/load

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json, model.safetensors and encoder assets; atomic per directory."""
        from .weights import save_weights

        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
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
            _replace_directory(staging, directory)
        except BaseException:
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
            raise
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device | None = None) -> "ERCModel":
        """Load a model directory written by ``save_pretrained`` (or a run directory holding ``model/``)."""
        from pydantic import ValidationError
        from safetensors import SafetensorError

        from .weights import load_weights

        from .recipe.schema import Recipe

        directory = resolve_model_dir(directory)
        config_path = directory / CONFIG_FILE
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ModelLoadError(f"{config_path}: not valid JSON ({error})") from None
        for key in ("labels", "recipe", "anchor"):
            if key not in config:
                raise ModelLoadError(f"{config_path}: missing {key!r}; is this an erckit model directory?")
        labels = config["labels"]
        if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
            raise ModelLoadError(f"{config_path}: 'labels' must be a non-empty list of label strings")
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ModelLoadError(f"{config_path}: 'labels' has duplicate label(s) {', '.join(map(repr, duplicates))}")
        try:
            recipe = Recipe.model_validate(config["recipe"])
        except ValidationError as error:
            raise ModelLoadError(f"{config_path}: recipe does not validate ({error.error_count()} problems)") from None
        try:
            model = cls.from_recipe(recipe, config["labels"], assets=directory)
        except UnknownComponentError as error:
            raise ModelLoadError(f"{directory} needs a component that is not installed: {error}") from None
        weights = directory / WEIGHTS_FILE
        if not weights.exists():
            raise ModelLoadError(f"{weights} is missing")
        try:
            missing, unexpected = load_weights(model, weights)
        except (SafetensorError, OSError, RuntimeError, ValueError) as error:
            raise ModelLoadError(f"{weights} cannot be loaded: {error}") from None
        if missing or unexpected:
            detail = []
            if missing:
                detail.append(f"missing {len(missing)} (e.g. {missing[0]})")
            if unexpected:
                detail.append(f"unexpected {len(unexpected)} (e.g. {unexpected[0]})")
            raise ModelLoadError(f"{weights} does not match {config_path}: {'; '.join(detail)}")
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


def _replace_directory(staging: Path, target: Path) -> None:
    """Swap ``staging`` into place so readers never see a half-written model."""
    import shutil

    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)
