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


def load_weights(module: nn.Module, path: str | Path) -> tuple[list[str], list[str]]:
    """Load into ``module``; return (missing, unexpected) names instead of raising on them."""
    from safetensors import safe_open

    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as handle:
        aliases = json.loads((handle.metadata() or {}).get(ALIASES, "{}"))
        for name in handle.keys():
            tensors[name] = handle.get_tensor(name)
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
