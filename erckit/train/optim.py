"""Optimisers and learning-rate schedules, warm-up counted in optimiser steps."""

from __future__ import annotations

import math

import torch
from torch import nn


def build_optimizer(stage, module: nn.Module) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        # Biases and norm weights are not decayed (standard for transformers).
        (no_decay if parameter.ndim < 2 else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": stage.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if stage.optimizer in ("adamw", "adam"):
        kind = torch.optim.AdamW if stage.optimizer == "adamw" else torch.optim.Adam
        try:
            # One fused kernel per step instead of a Python loop over every parameter tensor.
            return kind(groups, lr=stage.lr, fused=True)
        except (RuntimeError, TypeError, ValueError):  # a device or dtype without a fused kernel
            return kind(groups, lr=stage.lr)
    return torch.optim.SGD(groups, lr=stage.lr, momentum=0.9)


def warmup_steps(stage, total_steps: int) -> int:
    if stage.warmup_steps is not None:
        return min(stage.warmup_steps, total_steps)
    return int(round(stage.warmup_ratio * total_steps))


def build_scheduler(stage, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = warmup_steps(stage, total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if stage.scheduler == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        if stage.scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return max(0.0, 1.0 - progress)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
