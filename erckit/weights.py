"""Saving and loading module weights with safetensors (never pickle).

safetensors refuses tensors that share storage; real models have both tied
weights (same tensor under two names) and buffers that are views of a larger
storage. Tied names are stored once and recorded in the file's metadata;
views are copied out.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

ALIASES = "erckit.aliases"


def save_weights(module: nn.Module, path: str | Path) -> None:
    """Write ``module``'s state dict to ``path`` atomically; a failure raises WriteError naming it."""
    from .fileio import atomic_save_tensors


    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, tuple[int, ...], tuple[int, ...], torch.dtype], str] = {}
    for name, tensor in module.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        tensors[name] = tensor.detach().to("cpu").contiguous().clone()
    atomic_save_tensors(tensors, path, metadata={ALIASES: json.dumps(aliases)})


def parse_aliases(metadata: dict[str, str] | None) -> dict[str, str]:
    """The tied-name table ``save_weights`` records (``{}`` when absent); ValueError if malformed."""
    aliases = json.loads((metadata or {}).get(ALIASES, "{}"))
    if not isinstance(aliases, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        raise ValueError(f"metadata {ALIASES!r} must map tensor names to tensor names")
    return aliases


def load_weights(module: nn.Module, path: str | Path, *, finite: bool = False) -> tuple[list[str], list[str]]:
    """Load into ``module``; return (missing, unexpected) names instead of raising on them.

    With ``finite``, a floating-point tensor holding NaN or inf is refused (ValueError naming it):
    it would only ever produce NaN probabilities.
    """
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as handle:
        aliases = parse_aliases(handle.metadata())
        for name in handle.keys():
            tensor = handle.get_tensor(name)
            bad = _non_finite(tensor) if finite else 0
            if bad:
                raise ValueError(f"tensor {name!r} holds {bad:,} non-finite value(s) (NaN or inf)")
            tensors[name] = tensor
    for alias, source in aliases.items():
        if source in tensors:
            tensors[alias] = tensors[source]
    expected = module.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    mismatched = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if mismatched:
        k = mismatched[0]
        raise ValueError(
            f"{len(mismatched)} tensor(s) have the wrong shape, e.g. {k}: "
            f"file {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        )
    module.load_state_dict({k: v for k, v in tensors.items() if k in expected}, strict=False)
    return missing, unexpected


def _non_finite(tensor: torch.Tensor) -> int:
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return 0
    values = tensor if tensor.element_size() > 1 else tensor.float()  # no float8 kernels
    # min and max propagate NaN and are ~10x faster than isfinite over the whole tensor.
    low, high = torch.aminmax(values)
    if bool(torch.isfinite(low)) and bool(torch.isfinite(high)):
        return 0
    return int((~torch.isfinite(values)).sum())
