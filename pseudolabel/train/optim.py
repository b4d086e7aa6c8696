"""Optimiser (AdamW or SGD) and the learning-rate schedule (linear warm-up, then cosine/poly)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from pseudolabel.train.config import TrainConfig


def param_groups(nets: Sequence[nn.Module], cfg: TrainConfig) -> list[dict]:
    """Backbone parameters at ``lr``; heads and projectors at ``lr * head_lr_mult``.

    Biases and norm parameters (1-D) get no weight decay.
    """
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for net in nets:
        for name, p in net.named_parameters():
            if not p.requires_grad:
                continue
            is_head = ".backbone." not in f".{name}"
            groups.setdefault((is_head, p.ndim <= 1), []).append(p)
    out = []
    for (is_head, no_decay), params in sorted(groups.items()):
        out.append({"params": params,
                    "lr": cfg.lr * (cfg.head_lr_mult if is_head else 1.0),
                    "weight_decay": 0.0 if no_decay else cfg.weight_decay})
    return out


def make_optimizer(nets: Sequence[nn.Module], cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov momentum) over the trainable parameters of ``nets``."""
    groups = param_groups(nets, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_factor(step: int, total: int, warmup: int, schedule: str, min_ratio: float) -> float:
    """The multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "poly":
        shape = (1 - progress) ** 0.9
    else:
        shape = 0.5 * (1 + math.cos(math.pi * progress))
    return min_ratio + (1 - min_ratio) * shape


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int,
                   epochs: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step LambdaLR: warm-up over ``warmup_epochs``, then the schedule to ``min_lr_ratio``."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))

    def factor(step: int) -> float:
        return lr_factor(step, total, warmup, cfg.schedule, cfg.min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
