"""Staged training: registered stage kinds run by one engine, with checkpoints, resume and DDP.

``erckit.train.stage`` (the stage-kind interface) and ``erckit.train.kinds`` import
without torch, so recipe validation can build stage kinds; the engine is imported
on first use of ``train`` and friends.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RunInfo", "TrainOptions", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
