"""Resumable training state, written atomically at every epoch boundary.

A checkpoint is a directory: ``state.json`` (stage, epoch, step, history,
RNG seeds of python), ``model.safetensors`` (all weights), ``best.safetensors``
(the best epoch's trainable weights so far), ``optimizer.pt`` (optimizer,
scheduler and scaler state, read back with ``weights_only=True``) and
``rng.safetensors``. ``checkpoints/latest`` is replaced only once a complete
new checkpoint exists, and the one before it is kept as
``checkpoints/previous``, so an interruption or a full disk never leaves
only a torn checkpoint.
"""

from __future__ import annotations

import json
import pickle
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, WriteError

STATE = "state.json"
MODEL = "model.safetensors"
BEST = "best.safetensors"
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
) -> Path:
    """Write ``checkpoints/latest`` (the old one becomes ``previous``). The caller owns the run
    directory (holds its lock), so staging folders of killed writers found there are removed."""
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
            # through a Python file, so a full disk surfaces as the OSError behind torch's RuntimeError
            with open(staging / OPTIMIZER, "wb") as handle:
                torch.save(optim_state or {}, handle)
            rng = {"torch": torch.get_rng_state()}
            if torch.cuda.is_available():
                rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
            atomic_save_tensors(rng, staging / RNG)
            (staging / PYTHON_RNG).write_text(json.dumps(_python_rng()), encoding="utf-8")
    except WriteError as error:
        raise CheckpointError(
            f"cannot write checkpoint under {root}: {error.cause}; the previous checkpoint is left as it was"
        ) from None
    return root / "latest"


@dataclass
class LoadedCheckpoint:
    path: Path
    state: TrainState
    best: dict[str, torch.Tensor] | None
    optim_state: dict[str, Any]


def find_checkpoint(run_dir: Path) -> Path | None:
    root = checkpoint_dir(run_dir)
    # "previous" alone: interrupted between the two renames. A "latest" that exists but is
    # torn is returned as is, so loading it fails loudly instead of silently going back an epoch.
    for name in ("latest", "previous"):
        if (root / name).is_dir():
            return root / name
    return None


def load_checkpoint(path: Path, model: nn.Module) -> LoadedCheckpoint:
    """Restore weights and RNG into place; return the rest. Raise a clear error if anything is torn."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..weights import load_weights

    for name in FILES:
        if not (path / name).exists():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing{_hint(path)}")
    try:
        state = TrainState(**json.loads((path / STATE).read_text(encoding="utf-8")))
        missing, unexpected = load_weights(model, path / MODEL)
        if missing or unexpected:
            raise CheckpointError(
                f"checkpoint {path / MODEL} does not match the recipe's model "
                f"(missing {len(missing)}, unexpected {len(unexpected)} tensors); was the recipe changed?"
            )
        best = load_file(str(path / BEST)) if (path / BEST).exists() else None
        optim_state = torch.load(path / OPTIMIZER, weights_only=True, map_location="cpu")
        rng = load_file(str(path / RNG))
        python_rng = json.loads((path / PYTHON_RNG).read_text(encoding="utf-8"))
    except CheckpointError:
        raise
    except (SafetensorError, json.JSONDecodeError, pickle.UnpicklingError, TypeError, RuntimeError, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated: {error}{_hint(path)}") from None
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available():
        states = [rng[k] for k in sorted(rng) if k.startswith("cuda")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    _restore_python_rng(python_rng)
    return LoadedCheckpoint(path, state, best, optim_state)


def _hint(path: Path) -> str:
    previous = path.parent / "previous"
    if path.name == "latest" and (previous / STATE).exists():
        return f"; the previous checkpoint {previous} is intact: resume from it with --resume-from {previous}"
    return ""


def _python_rng() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _restore_python_rng(data: dict[str, Any]) -> None:
    random.setstate((data["version"], tuple(data["internal"]), data["gauss"]))
