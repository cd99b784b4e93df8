"""Resumable training state, written atomically at every epoch boundary.

A checkpoint is a directory: ``state.json`` (stage, epoch, step, history),
``model.safetensors`` (all weights), ``best.safetensors`` (the best epoch's
trainable weights so far), ``objective.safetensors`` (trainable tensors of the
stage that live outside the model, e.g. a distiller's projection; only when
there are any), ``optimizer.pt`` (optimizer, scheduler and scaler state, read
back with ``weights_only=True``), ``rng.safetensors`` (torch and CUDA RNG) and
``python_rng.json`` (python's and numpy's RNG). ``checkpoints/latest`` is replaced only once a complete
new checkpoint exists, and the one before it is kept as
``checkpoints/previous``, so an interruption or a full disk never leaves
only a torn checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import random
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..errors import CheckpointError, WriteError
from .runtime import RngState, rng_state

STATE = "state.json"
MODEL = "model.safetensors"
BEST = "best.safetensors"
OBJECTIVE = "objective.safetensors"
OPTIMIZER = "optimizer.pt"
RNG = "rng.safetensors"
PYTHON_RNG = "python_rng.json"
FILES = (STATE, MODEL, OPTIMIZER, RNG, PYTHON_RNG)


@dataclass
class TrainState:
    stage_index: int = 0  # the stage in progress (== number of completed stages)
    epoch: int = 0  # epochs completed in that stage
    step: int = 0  # optimiser steps taken in that stage
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    completed: list[str] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    metrics_rows: int = 0  # lines of metrics.jsonl this state accounts for (trimmed on resume)


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def save_checkpoint(
    run_dir: Path,
    state: TrainState,
    model: nn.Module,
    best: dict[str, torch.Tensor] | None,
    optim_state: dict[str, Any] | None,
    objective_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``checkpoints/latest`` (the old one becomes ``previous``), RNG streams included.

    The caller owns the run directory (holds its lock), so staging folders of killed writers found
    there are removed. ``objective_state``: the stage's trainable tensors outside ``model`` (see
    ``outside_model``).
    """
    from ..fileio import atomic_directory, atomic_save_tensors, remove_stale_staging
    from ..weights import save_weights

    root = checkpoint_dir(run_dir)
    latest = root / "latest"
    try:
        with atomic_directory(latest, replace=True, backup=root / "previous") as staging:
            remove_stale_staging(root, keep=staging)
            (staging / STATE).write_text(json.dumps(asdict(state), indent=1), encoding="utf-8")
            save_weights(model, staging / MODEL)
            if best is not None:
                atomic_save_tensors({k: v.contiguous() for k, v in best.items()}, staging / BEST)
            if objective_state:
                atomic_save_tensors({k: v.contiguous() for k, v in objective_state.items()}, staging / OBJECTIVE)
            # through a Python file, so a full disk surfaces as the OSError behind torch's RuntimeError
            with open(staging / OPTIMIZER, "wb") as handle:
                torch.save(optim_state or {}, handle)
            _write_rng(staging, rng_state())
    except WriteError as error:
        raise CheckpointError(
            f"cannot write checkpoint under {root}: {error.cause}; the previous checkpoint is left as it was"
        ) from None
    return root / "latest"


def outside_model(model: nn.Module, objective: nn.Module) -> dict[str, torch.Tensor]:
    """The objective's tensors that are not the model's (they are not in model.safetensors)."""
    inside = {id(t) for t in model.state_dict(keep_vars=True).values()}
    return {k: v.detach().cpu().clone() for k, v in objective.state_dict(keep_vars=True).items() if id(v) not in inside}


@dataclass
class LoadedCheckpoint:
    """A checkpoint read and checked; the model's weights are already in place.

    ``rng`` is not restored on loading: the engine restores it at the point of the
    run where it was saved (before the next stage is built, or before the next
    epoch of a stage in progress), so whatever rebuilding a stage draws on resume
    cannot shift the streams its epochs draw from.
    """

    path: Path
    state: TrainState
    best: dict[str, torch.Tensor] | None
    optim_state: dict[str, Any]
    rng: RngState
    objective: dict[str, torch.Tensor] = field(default_factory=dict)
    recipe_changes: str = ""

    def restore_stage(self, model: nn.Module, objective: nn.Module, optimizer: Any, scheduler: Any, scaler: Any) -> None:
        """Put a stage in progress back as it was: tensors outside the model, optimiser, scheduler, scaler."""
        checks = [(OBJECTIVE, self.objective, outside_model(model, objective))]
        if self.best is not None:
            checks.append((BEST, self.best, objective.state_dict()))
        for name, found, expected in checks:
            problem = _tensor_mismatch({k: tuple(v.shape) for k, v in found.items()}, expected, "what the recipe's stage trains")
            if problem:
                raise self._mismatch(name, problem)
        if self.objective:
            objective.load_state_dict(self.objective, strict=False)
        try:
            optimizer.load_state_dict(self.optim_state["optimizer"])
            scheduler.load_state_dict(self.optim_state["scheduler"])
        except (KeyError, ValueError, RuntimeError) as error:
            raise self._mismatch(OPTIMIZER, _one_line(error)) from None
        if scaler is not None and "scaler" in self.optim_state:
            scaler.load_state_dict(self.optim_state["scaler"])

    def _mismatch(self, name: str, problem: str) -> CheckpointError:
        return recipe_mismatch(self.path / name, problem, self.recipe_changes)


def find_checkpoint(run_dir: Path) -> Path | None:
    root = checkpoint_dir(run_dir)
    # "previous" alone: interrupted between the two renames. A "latest" that exists but is
    # torn is returned as is, so loading it fails loudly instead of silently going back an epoch.
    for name in ("latest", "previous"):
        if (root / name).is_dir():
            return root / name
    return None


def load_checkpoint(path: Path, model: nn.Module, stages: list[str] | None = None, recipe_changes: str = "") -> LoadedCheckpoint:
    """Read and check every file, load the weights into ``model``; raise a one-line error if anything is wrong.

    A file that cannot be read or parsed is "corrupt or truncated"; a checkpoint that
    is fine but was written for another recipe (other stages, other tensor names or
    shapes) says so, with ``recipe_changes`` (see ``recipe_changes``) when known.
    """
    from safetensors.torch import load_file

    from ..weights import load_weights

    for name in FILES:
        if not (path / name).is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing{_hint(path)}")
    with _reading(path / STATE):
        state = _parse_state(json.loads((path / STATE).read_text(encoding="utf-8")))
    if stages is not None:
        running = dict.fromkeys(row.get("stage") for row in state.history if isinstance(row, dict) and "stage" in row)
        seen = [*state.completed, *running]  # completed stages, then the one in progress
        if seen != stages[: len(seen)]:
            raise recipe_mismatch(path / STATE, f"the run's stages so far are {seen}, this recipe's are {stages}", recipe_changes)
    with _reading(path / MODEL):
        problem = _tensor_mismatch(_header_shapes(path / MODEL), model.state_dict())
    if problem:
        raise recipe_mismatch(path / MODEL, problem, recipe_changes)
    best, objective = None, {}
    if (path / BEST).exists():
        with _reading(path / BEST):
            best = load_file(str(path / BEST))
    if (path / OBJECTIVE).exists():
        with _reading(path / OBJECTIVE):
            objective = load_file(str(path / OBJECTIVE))
    with _reading(path / OPTIMIZER):
        optim_state = torch.load(path / OPTIMIZER, weights_only=True, map_location="cpu")
        if not isinstance(optim_state, dict):
            raise ValueError(f"expected a dictionary, found {type(optim_state).__name__}")
    rng = _read_rng(path)
    with _reading(path / MODEL):  # last: the model is left as it was unless every file reads
        load_weights(model, path / MODEL)
    return LoadedCheckpoint(path, state, best, optim_state, rng, objective, recipe_changes)


def recipe_mismatch(file: Path, problem: str, changes: str) -> CheckpointError:
    differs = f"this recipe differs from the run's ({changes})" if changes else "the recipe differs from the run's"
    command = ""
    if file.parent.parent.name == "checkpoints":  # <run>/checkpoints/<latest|previous>/<file>
        run_dir = file.parent.parent.parent
        command = f" (erckit train {run_dir / 'recipe.toml'} -o {run_dir} --resume)"
    return CheckpointError(
        f"cannot resume from {file}: {problem}; {differs}. Resume with the run's own recipe{command} "
        "or start a new run (another --output, or --overwrite)"
    )


def recipe_changes(run_recipe: Path, recipe_toml: str, limit: int = 5) -> str:
    """What differs between the run's saved recipe.toml and ``recipe_toml``: "key: old -> new; ...", or ""."""
    try:
        saved = tomllib.loads(run_recipe.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""  # no readable recipe.toml: nothing to compare with
    labels: dict[str, str] = {}
    old, new = _flatten(saved, "", labels), _flatten(tomllib.loads(recipe_toml), "", labels)
    changed = [
        f"{_label(key, labels)}: {_show(old.get(key))} -> {_show(new.get(key))}"
        for key in sorted(set(old) | set(new), key=lambda k: (k not in old, k))
        if old.get(key, _UNSET) != new.get(key, _UNSET)
    ]
    more = f"; and {len(changed) - limit} more" if len(changed) > limit else ""
    return "; ".join(changed[:limit]) + more


_UNSET = object()


def _flatten(data: Any, prefix: str, labels: dict[str, str]) -> dict[str, Any]:
    """Dotted keys; the tables of an array (stages) by position, labelled by their name where they have one."""
    if isinstance(data, dict):
        items: list[tuple[str, Any]] = list(data.items())
    elif isinstance(data, list) and data and all(isinstance(v, dict) for v in data):
        items = [(str(i), v) for i, v in enumerate(data)]
        for i, table in enumerate(data):
            if isinstance(table.get("name"), str):
                labels.setdefault(f"{prefix}.{i}", f"{prefix}.{table['name']}")
    else:
        return {prefix: data}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else key, labels))
    return flat


def _label(key: str, labels: dict[str, str]) -> str:
    for position, label in labels.items():
        if key.startswith(position + "."):
            return label + key[len(position):]
    return key


def _show(value: Any) -> str:
    return "(not set)" if value is None else json.dumps(value)


def _tensor_mismatch(
    found: dict[str, tuple[int, ...]], expected: dict[str, torch.Tensor], what: str = "the recipe's model"
) -> str:
    """'' if names and shapes agree, else what differs (counts and a first example of each)."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [k for k in expected if k in found and tuple(found[k]) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensor(s) of {what} are not in it, e.g. {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} tensor(s) in it are not in {what}, e.g. {unexpected[0]}")
    if reshaped:
        k = reshaped[0]
        parts.append(
            f"{len(reshaped)} tensor(s) have another shape, e.g. {k}: {tuple(found[k])} in the checkpoint, "
            f"{tuple(expected[k].shape)} in {what}"
        )
    return "; ".join(parts)


def _header_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names (tied aliases included) and shapes from a safetensors header, without reading the data."""
    from safetensors import safe_open

    from ..weights import ALIASES

    with safe_open(str(file), framework="pt") as handle:
        shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
        aliases = json.loads((handle.metadata() or {}).get(ALIASES, "{}"))
    for alias, source in aliases.items():
        if source in shapes:
            shapes[alias] = shapes[source]
    return shapes


def _parse_state(data: Any) -> TrainState:
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    known = {f.name for f in fields(TrainState)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    for name, value in data.items():
        kinds = _STATE_TYPES[name]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise ValueError(f"{name} = {json.dumps(value)[:40]} is not {' or '.join(k.__name__ for k in kinds)}")
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise ValueError(f"{name} = {value} is negative")
    if not all(isinstance(name, str) for name in data.get("completed", [])):
        raise ValueError("completed holds something other than stage names")
    if not all(isinstance(row, dict) and isinstance(row.get("epoch"), int) for row in data.get("history", [])):
        raise ValueError("history holds something other than epoch rows")
    return TrainState(**data)


_STATE_TYPES: dict[str, tuple[type, ...]] = {
    "stage_index": (int,), "epoch": (int,), "step": (int,), "bad_epochs": (int,), "metrics_rows": (int,),
    "best_metric": (float, int, type(None)), "best_epoch": (int, type(None)),
    "completed": (list,), "history": (list,), "stopped_early": (bool,),
}


def _write_rng(directory: Path, rng: RngState) -> None:
    from ..fileio import atomic_save_tensors

    atomic_save_tensors({"torch": rng.torch, **{f"cuda{i}": s for i, s in enumerate(rng.cuda)}}, directory / RNG)
    version, internal, gauss = rng.python
    data: dict[str, Any] = {"version": version, "internal": list(internal), "gauss": gauss}
    if rng.numpy is not None:
        kind, keys, position, has_gauss, cached = rng.numpy
        data["numpy"] = {
            "bit_generator": kind, "keys": keys.tolist(), "pos": int(position),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached),
        }
    (directory / PYTHON_RNG).write_text(json.dumps(data), encoding="utf-8")


def _read_rng(path: Path) -> RngState:
    """Both RNG files, each checked by setting it into a scratch generator (so restoring cannot fail)."""
    from safetensors.torch import load_file

    with _reading(path / RNG):
        tensors = load_file(str(path / RNG))
        if "torch" not in tensors:
            raise ValueError("no 'torch' generator state")
        torch.Generator().set_state(tensors["torch"])
        cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda")), key=lambda k: int(k[4:]))]
    with _reading(path / PYTHON_RNG):
        data = json.loads((path / PYTHON_RNG).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not {"version", "internal", "gauss"} <= set(data):
            raise ValueError("expected a JSON object with version, internal and gauss")
        python = (data["version"], tuple(data["internal"]), data["gauss"])
        random.Random().setstate(python)
        numpy_state = None
        if data.get("numpy") is not None:  # checkpoints before numpy's state was kept have none
            import numpy

            saved = data["numpy"]
            numpy_state = (
                saved["bit_generator"], numpy.asarray(saved["keys"], dtype=numpy.uint32),
                int(saved["pos"]), int(saved["has_gauss"]), float(saved["cached_gaussian"]),
            )
            numpy.random.RandomState().set_state(numpy_state)
    return RngState(tensors["torch"], cuda, python, numpy_state)


@contextlib.contextmanager
def _reading(file: Path) -> Iterator[None]:
    """Any failure to read or parse ``file`` becomes one line naming it and where to go instead."""
    from safetensors import SafetensorError

    try:
        yield
    except CheckpointError:
        raise
    except (SafetensorError, pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError, KeyError,
            IndexError, AttributeError, RuntimeError, OverflowError) as error:
        raise CheckpointError(
            f"checkpoint file {file} is corrupt or truncated: {_one_line(error)}{_hint(file.parent)}"
        ) from None


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _hint(path: Path) -> str:
    previous = path.parent / "previous"
    if path.name == "latest" and (previous / STATE).exists():
        return f"; the previous checkpoint {previous} is intact: resume from it with --resume-from {previous}"
    return "; resume from another checkpoint with --resume-from DIR, or start the run again with --overwrite"
