"""``erckit import-telme``: the TelME authors' released weights as an ordinary erckit model directory.

Their ``save_model/`` folder holds four plain ``torch.save(module.state_dict())`` files
of their modules (yuntaeyang/TelME, MELD/model.py and IEMOCAP/model.py, transformers
4.27.2): ``Teacher_model`` (``text_model`` = RobertaModel with 9 speaker tokens added,
``W``, ``classifier``), ``Student_Audio`` and ``Student_Video`` (``model`` = the
backbone, ``W`` = the classifier) and ``ASF`` (the names ``telme.ASF.v1`` keeps).

The model is built from the authors' definition (``erckit_telme.authors``, the one the
recipes spell out) through erckit's own resolver, then each file is read with
``torch.load(weights_only=True)`` (nothing in it can run), every key renamed to the
model's, every key and shape checked (the first mismatch is named; missing and
unexpected keys too), the classifier rows put in the model's label order, and the
directory written atomically by ``ERCModel.save_pretrained``: on any error nothing
appears at the output path.

Keys of theirs erckit has no place for, and drops: the teacher's pooler (never used
by their forward, not kept by erckit's teacher) and ``embeddings.position_ids`` (a
buffer transformers 4.27 saved; RoBERTa derives its positions from the ids).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from erckit.errors import ErckitError
from erckit.fileio import file_sha256

from . import __version__
from .authors import BACKBONES, CHECKPOINTS, LABELS, authors_model


@dataclass(frozen=True)
class Part:
    """One of the authors' files: its erckit module and how their key prefixes map onto it."""

    name: str  # the erckit encoder name, or "fuser"
    what: str  # for messages
    prefixes: tuple[tuple[str, str], ...]  # (their prefix, erckit's), first match wins
    classifier: str  # their classifier's prefix (rows in their label order)
    dropped: tuple[str, ...] = ()  # their keys with no counterpart in erckit (prefixes)


PARTS = (
    Part("text", "teacher", (("text_model.", "backbone."), ("W.", "project."), ("classifier.", "classifier.")),
         "classifier.", dropped=("text_model.pooler.", "text_model.embeddings.position_ids")),
    Part("audio", "audio student", (("model.", "backbone."), ("W.", "classifier.")), "W."),
    Part("visual", "visual student", (("model.", "backbone."), ("W.", "classifier.")), "W."),
    Part("fuser", "fusion", (("", ""),), "W."),
)


def import_telme(
    save_model_dir: str | Path,
    output: str | Path,
    dataset: str,
    *,
    text_model: str | None = None,
    audio_model: str | None = None,
    video_model: str | None = None,
    labels: Sequence[str] | None = None,
    settings: Iterable[str] = (),
    overwrite: bool = False,
) -> Path:
    """Write the authors' released TelME for ``dataset`` to ``output``; returns ``output``.

    ``*_model``: the backbones (HF ids or local folders; default the authors').
    ``labels``: the model's label order, a permutation of the authors' (default theirs).
    ``settings``: ``encoders.NAME.KEY=VALUE`` / ``fuser.KEY=VALUE`` changes to the model
    tables (VALUE read as TOML, else as a string).
    """
    from erckit import ERCModel

    save_model_dir, output = Path(save_model_dir), Path(output)
    table = authors_model(dataset)  # refuses an unknown data set
    _check_output(output, overwrite)
    files = _checkpoint_files(save_model_dir)
    authors_labels = LABELS[dataset]
    labels = _model_labels(labels, authors_labels)
    chosen = {"text": text_model, "audio": audio_model, "visual": video_model}
    for name, backbone in chosen.items():
        table["encoders"][name] = {**table["encoders"][name], "pretrained": backbone or BACKBONES[name]}
    for setting in settings:
        _apply_setting(table, setting)

    model = _build(ERCModel, _model_config(table, labels))
    order = [authors_labels.index(label) for label in labels]
    digests = {}
    for part in PARTS:
        module = model.fuser if part.name == "fuser" else model.encoders[part.name]
        path = files[part.name]
        theirs = read_state_dict(path)
        _check_classes(theirs, part, path, dataset, len(authors_labels))
        digests[CHECKPOINTS[part.name]] = file_sha256(path)
        mapped = map_state_dict(theirs, part, module.state_dict(), path)
        for key in (part.classifier + "weight", part.classifier + "bias"):
            mine = _renamed(key, part)
            mapped[mine] = mapped[mine][order]
        module.load_state_dict(mapped, strict=True)
        del theirs, mapped
    model.training_recipe = _provenance(save_model_dir, dataset, table, digests)
    model.eval()
    model.save_pretrained(output)
    return output


# ------------------------------------------------------------------ reading their files


def _checkpoint_files(save_model_dir: Path) -> dict[str, Path]:
    layout = ", ".join(CHECKPOINTS.values())
    if not save_model_dir.is_dir():
        raise ErckitError(f"{save_model_dir} is not a directory; pass the authors' save_model/ folder ({layout})")
    files = {}
    for name, relative in CHECKPOINTS.items():
        path = save_model_dir / relative
        if not path.is_file():
            raise ErckitError(f"{path} is missing; the authors' save_model/ folder holds {layout}")
        files[name] = path
    return files


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """``torch.load(path, weights_only=True)``, which must be a plain {name: tensor} state dict."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - every way a file can be unreadable is one line
        raise ErckitError(f"{path}: {_load_failure(error)}") from None
    if not isinstance(loaded, Mapping):
        raise ErckitError(f"{path}: not a state dict (a torch.save'd {type(loaded).__name__}, not a mapping of names to tensors)")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise ErckitError(
                f"{path}: not a plain state dict: key {key!r} holds {type(value).__name__}, not a tensor"
            )
    return dict(loaded)


def _load_failure(error: Exception) -> str:
    import pickle

    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and "weights only" in text.lower():
        found = re.search(r"GLOBAL ([\w.]+)", text)
        needs = f" (it asks for {found.group(1)})" if found else ""
        return (f"refused: not a plain state dict of tensors{needs}; it was read with torch.load(weights_only=True), "
                "which runs and builds nothing else")
    if isinstance(error, EOFError) or "central directory" in text or "zip archive" in text:
        return "cannot be read: truncated or damaged (not a complete torch.save file)"
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return f"cannot be read as a torch.save file: {type(error).__name__}: {first[:200]}"


# ------------------------------------------------------------------- mapping and checks


def _renamed(key: str, part: Part) -> str | None:
    for theirs, mine in part.prefixes:
        if key.startswith(theirs):
            return mine + key[len(theirs):]
    return None


def map_state_dict(theirs: Mapping[str, Tensor], part: Part, expected: Mapping[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Their keys renamed to the module's; refuses missing, unexpected, misshapen or non-finite weights."""
    mapped: dict[str, Tensor] = {}
    origin: dict[str, str] = {}
    unexpected = []
    for key, value in theirs.items():
        if any(key.startswith(prefix) for prefix in part.dropped):
            continue
        mine = _renamed(key, part)
        if mine is None or mine not in expected:
            unexpected.append(key)
            continue
        mapped[mine], origin[mine] = value, key
    where = f"{path} ({part.what})"
    missing = [key for key in expected if key not in mapped]
    if missing:
        theirs_name = next((t + missing[0][len(m):] for t, m in part.prefixes if missing[0].startswith(m)), missing[0])
        raise ErckitError(f"{where}: {len(missing)} weight(s) the model needs are missing, the first: {theirs_name}{_more(missing)}")
    if unexpected:
        raise ErckitError(f"{where}: {len(unexpected)} weight(s) the model has no place for, the first: {unexpected[0]}{_more(unexpected)}")
    for mine, target in expected.items():
        value = mapped[mine]
        if tuple(value.shape) != tuple(target.shape):
            raise ErckitError(
                f"{where}: {origin[mine]} has shape {list(value.shape)}, the model expects {list(target.shape)} "
                f"(its {_prefix(part)}{mine})"
            )
        if target.is_floating_point() and not value.is_floating_point():
            raise ErckitError(f"{where}: {origin[mine]} holds {value.dtype} values, the model expects floating point")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ErckitError(f"{where}: {origin[mine]} holds non-finite values (NaN or infinity)")
        mapped[mine] = value.to(target.dtype)
    return mapped


def _check_classes(theirs: Mapping[str, Tensor], part: Part, path: Path, dataset: str, classes: int) -> None:
    """A classifier of another size is most likely the other data set's release: say so."""
    weight = theirs.get(part.classifier + "weight")
    if weight is None or weight.ndim != 2 or weight.shape[0] == classes:
        return
    other = next((d for d, labels in LABELS.items() if len(labels) == weight.shape[0]), None)
    hint = f"; is this the {other} release? (--dataset {other})" if other else ""
    raise ErckitError(
        f"{path} ({part.what}): {part.classifier}weight has {weight.shape[0]} classes, the authors' {dataset} model "
        f"{classes}{hint}"
    )


def _more(keys: Sequence[str]) -> str:
    return f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""


def _prefix(part: Part) -> str:
    return "fuser." if part.name == "fuser" else f"encoders.{part.name}."


# --------------------------------------------------------------------- the model itself


def _model_labels(labels: Sequence[str] | None, authors: Sequence[str]) -> list[str]:
    if labels is None:
        return list(authors)
    labels = list(labels)
    if sorted(labels) != sorted(authors) or len(set(labels)) != len(labels):
        raise ErckitError(f"labels {labels} must name each of the authors' labels once, in any order: {', '.join(authors)}")
    return labels


def _build(model_class: Any, config: Mapping[str, Any]) -> Any:
    """The model through erckit's resolver, as for a recipe; a backbone that fails to load is one line."""
    from transformers.utils import logging as hf_logging

    # Their backbones' pretrained weights are about to be replaced: no loading bars, no resize notice.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return model_class.from_config(config)
    except ErckitError:
        raise
    except Exception as error:  # noqa: BLE001 - HF raises many kinds for a bad folder or id
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise ErckitError(f"cannot build the authors' TelME model: {type(error).__name__}: {first}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _apply_setting(table: dict[str, Any], setting: str) -> None:
    key, sep, text = setting.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path) or not (
        (path[0] == "encoders" and len(path) == 3 and path[1] in table["encoders"]) or (path[0] == "fuser" and len(path) == 2)
    ):
        names = ", ".join(table["encoders"])
        raise ErckitError(f"--set {setting!r}: expected encoders.NAME.KEY=VALUE (NAME one of {names}) or fuser.KEY=VALUE")
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        value = text  # a bare word: a string
    target = table["encoders"][path[1]] if path[0] == "encoders" else table["fuser"]
    target[path[-1]] = value


def _model_config(table: Mapping[str, Any], labels: Sequence[str]) -> dict[str, Any]:
    from erckit import registry

    factories = [(registry.encoders, t["factory"]) for t in table["encoders"].values()]
    factories.append((registry.fusers, table["fuser"]["factory"]))
    components = {}
    for kind, name in factories:
        origin = kind.origins.get(name)
        components[name] = origin.package if origin is not None else "unknown"
    return {
        "labels": list(labels),
        "anchor": table["anchor"],
        "use_fuser": True,
        "encoders": table["encoders"],
        "fuser": table["fuser"],
        "components": components,
    }


def _provenance(save_model_dir: Path, dataset: str, table: Mapping[str, Any], digests: Mapping[str, str]) -> str:
    """training_recipe.toml: no recipe trained this model here, so it says where the weights came from."""
    lines = [
        f"# Imported by `erckit import-telme --dataset {dataset}` (erckit-telme {__version__}) from the TelME",
        f"# authors' released weights in {save_model_dir.resolve()}:",
        *(f"#   {name}  sha256 {digest}" for name, digest in digests.items()),
        "# trained by their scripts (yuntaeyang/TelME); recipes/telme_" + dataset + ".toml is that procedure in erckit.",
        "# Backbones: " + ", ".join(f"{name} {t['pretrained']}" for name, t in table["encoders"].items()),
        "",
    ]
    return "\n".join(lines)


def _check_output(output: Path, overwrite: bool) -> None:
    if not (output.exists() or output.is_symlink()):
        return
    if output.is_dir() and not output.is_symlink() and not any(output.iterdir()):
        return
    if not overwrite:
        raise ErckitError(f"{output} already exists; choose another -o or pass --overwrite to replace it")
    if not output.is_dir() or output.is_symlink():
        raise ErckitError(f"{output} exists and is not a directory; --overwrite replaces only a model directory")
