"""One training epoch and one validation pass.

A *phase* trains some roles ("student", "teacher") while the others, if any, are frozen
targets. The loss of a trainable net is its classification BCE plus, when there is another
net, the knowledge-transfer terms towards it (the other's outputs are detached):

    kd_weight · mean over pairs of align(project(own map), resize(other map))
    + out_kd_weight · logit distillation + cam_kd_weight · CAM distillation

and, with ``neg_cam_weight``, a term on its own CAMs: absent classes' max-pooled logits
towards 0 (:func:`~pseudolabel.train.losses.negative_cam_loss`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pseudolabel.progress import progress
from pseudolabel.train.config import TrainConfig
from pseudolabel.train.losses import (
    AlignLoss,
    cam_distillation,
    logit_distillation,
    negative_cam_loss,
    resize_to,
)


@dataclass
class Phase:
    """A stretch of training: its name, the roles it trains, the frozen roles, its epochs."""

    name: str
    train: tuple[str, ...]
    frozen: tuple[str, ...]
    epochs: int


def transfer_losses(own: dict, other: dict, labels: torch.Tensor, pairs_other: Sequence[str],
                    cfg: TrainConfig, align: AlignLoss | None) -> dict[str, torch.Tensor]:
    """The knowledge-transfer terms of one net (``own``) towards another (``other``, detached).

    own/other: TrainNet outputs; pairs_other: the other net's layer of each aligned pair.
    """
    terms: dict[str, torch.Tensor] = {}
    if align is not None and own["sources"]:
        per_pair = []
        for source, layer in zip(own["sources"], pairs_other, strict=True):
            target = resize_to(other["maps"][layer].detach().float(), source.shape[-2:])
            per_pair.append(align(source.float(), target))
        terms["align"] = cfg.kd_weight * torch.stack(per_pair).mean()
    if cfg.out_kd_weight > 0:
        terms["out_kd"] = cfg.out_kd_weight * logit_distillation(
            own["logits"], other["logits"], cfg.temperature)
    if cfg.cam_kd_weight > 0:
        terms["cam_kd"] = cfg.cam_kd_weight * cam_distillation(own["cam"], other["cam"], labels)
    return terms


def phase_loss(phase: Phase, nets: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor,
               criterion: nn.Module, cfg: TrainConfig, align: AlignLoss | None,
               layers: dict[str, list[str]]) -> tuple[torch.Tensor, dict[str, float]]:
    """The summed loss of the trainable nets on one batch and its parts (for the log).

    x: (B, 3, S, S) in [0, 1]; y: (B, K) multi-hot; layers: role -> its layer of each pair.
    """
    outputs = {role: nets[role](x) for role in phase.train}
    for role in phase.frozen:
        with torch.no_grad():
            outputs[role] = nets[role](x)
    total = x.new_zeros((), dtype=torch.float32)
    parts: dict[str, float] = {}
    for role in phase.train:
        cls = criterion(outputs[role]["logits"].float(), y)
        total = total + cls
        parts[f"{role}/cls"] = float(cls.detach())
        if cfg.neg_cam_weight > 0:
            neg = cfg.neg_cam_weight * negative_cam_loss(outputs[role]["cam"],
                                                         outputs[role]["logits"], y)
            total = total + neg
            parts[f"{role}/neg_cam"] = float(neg.detach())
        others = [r for r in (*phase.train, *phase.frozen) if r != role]
        for other in others:
            for name, term in transfer_losses(outputs[role], outputs[other], y, layers[other],
                                              cfg, align).items():
                total = total + term
                parts[f"{role}/{name}"] = float(term.detach())
    parts["loss"] = float(total.detach())
    return total, parts


def train_epoch(phase: Phase, nets: dict[str, nn.Module], loader, optimizer, scheduler, scaler,
                criterion: nn.Module, cfg: TrainConfig, align: AlignLoss | None,
                layers: dict[str, list[str]], device: torch.device, desc: str,
                show_progress: bool = True) -> dict[str, float]:
    """One pass over ``loader`` with gradient accumulation and AMP; returns the mean losses."""
    for role in phase.train:
        nets[role].train()
    for role in phase.frozen:
        nets[role].eval()
    use_amp = cfg.amp and device.type == "cuda"
    sums: dict[str, float] = {}
    batches, images, start = 0, 0, time.perf_counter()
    n = len(loader)
    optimizer.zero_grad(set_to_none=True)
    bar = progress(loader, total=n, desc=desc, disable=None if show_progress else True)
    for i, (x, y, _) in enumerate(bar):
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        step_now = (i + 1) % cfg.accumulate == 0 or i + 1 == n
        sync = contextlib.ExitStack()
        if not step_now:
            for role in phase.train:
                if hasattr(nets[role], "no_sync"):
                    sync.enter_context(nets[role].no_sync())
        with sync:
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss, parts = phase_loss(phase, nets, x, y, criterion, cfg, align, layers)
            scaler.scale(loss / cfg.accumulate).backward()
        if step_now:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        batches += 1
        images += x.shape[0]
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{parts['loss']:.4f}")
    seconds = time.perf_counter() - start
    out = {k: v / max(batches, 1) for k, v in sums.items()}
    out["images_per_s"] = images / max(seconds, 1e-9)
    out["lr"] = float(optimizer.param_groups[0]["lr"])
    return out


@torch.no_grad()
def predict(net: nn.Module, loader, device: torch.device, amp: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, K) and targets (N, K) of ``net`` (a TrainNet) over ``loader``."""
    net.eval()
    scores, targets = [], []
    use_amp = amp and device.type == "cuda"
    for x, y, _ in loader:
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            logits = net.classifier(x.to(device, non_blocking=True))
        scores.append(torch.sigmoid(logits.float()).cpu().numpy())
        targets.append(y.numpy())
    return np.concatenate(scores), np.concatenate(targets)


def bce_criterion(pos_weight: torch.Tensor | None) -> nn.Module:
    """Multi-label BCE on logits, optionally class-balanced (``pos_weight`` (K,))."""
    return nn.BCEWithLogitsLoss(pos_weight=pos_weight)
