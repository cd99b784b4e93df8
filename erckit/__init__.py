"""erckit: multimodal Emotion Recognition in Conversation, built from registered parts.

Importing ``erckit`` is cheap: torch-backed names (``ModalityOutput``,
``Encoder``, ``ERCModel``, ...) are imported on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ErckitError
from .plugins import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "ModalityOutput": "erckit.components",
    "Encoder": "erckit.components",
    "Distiller": "erckit.components",
    "Fuser": "erckit.components",
    "ERCModel": "erckit.model",
}

if TYPE_CHECKING:
    from .components import Distiller, Encoder, Fuser, ModalityOutput  # noqa: F401
    from .model import ERCModel  # noqa: F401

__all__ = ["ErckitError", "hookimpl", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'erckit' has no attribute {name!r}")
