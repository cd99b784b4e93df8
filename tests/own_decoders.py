"""Media decoders of the kind an encoder names in a ``DecoderSpec`` (``"own_decoders:read_bytes"``).

Importable by name because ``tests/`` is on sys.path through its conftest.py.
``CALLS`` counts the decodes, so tests can see what the cache saved.
"""

from __future__ import annotations

from pathlib import Path

import torch

from erckit.errors import MediaError

CALLS: list[tuple[str, float | None, float | None]] = []


def read_bytes(path: Path, start: float | None, end: float | None, scale: float = 1.0) -> torch.Tensor:
    """The file's bytes as floats times ``scale``; a file starting with b"garbage" is unreadable."""
    CALLS.append((Path(path).name, start, end))
    data = Path(path).read_bytes()
    if data.startswith(b"garbage"):
        raise MediaError(path, "not a file this decoder reads")
    return torch.tensor(list(data[:64]), dtype=torch.float32) * scale


def not_a_tensor(path: Path, start: float | None, end: float | None) -> list[int]:
    return [1, 2, 3]


NOT_CALLABLE = 3
