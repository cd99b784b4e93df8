"""Staged training: supervised, distill and fuse stages with checkpoints and DDP."""

from .engine import RunInfo, TrainOptions, TrainResult, train

__all__ = ["RunInfo", "TrainOptions", "TrainResult", "train"]
