"""Losses: alignment (knowledge transfer on feature maps), output distillation, negatives' CAMs,
class balance.

Alignment losses live in :data:`ALIGN_LOSSES`; other packages add their own through the
``pseudolabel.align_losses`` entry-point group. Each takes the source map ``s`` (B, C, H, W)
(the student's, already projected) and the target map ``t`` (B, C', H, W) (the teacher's, already
detached and resized to the source's grid) and returns a scalar.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pseudolabel.registry import Registry

ALIGN_LOSSES: Registry[type[AlignLoss]] = Registry("alignment loss", "pseudolabel.align_losses")


class AlignLoss(nn.Module):
    """Base class: ``forward(s (B, C, H, W), t (B, C', H, W)) -> scalar``.

    ``needs_same_channels``: whether C must equal C' (otherwise a projector is required).
    """

    name: ClassVar[str] = ""
    needs_same_channels: ClassVar[bool] = True

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


@ALIGN_LOSSES.register("global")
class GlobalAlign(AlignLoss):
    """1 - cosine similarity between the whole C·H·W maps, averaged over the batch."""

    name = "global"

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (1 - F.cosine_similarity(s.flatten(1).float(), t.flatten(1).float(), dim=1)).mean()


@ALIGN_LOSSES.register("spatial")
class SpatialAlign(AlignLoss):
    """1 - cosine similarity of the C-vectors at each location, averaged over locations and batch.

    (Equals half the MSE between the L2-normalised C-vectors.)
    """

    name = "spatial"

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (1 - F.cosine_similarity(s.float(), t.float(), dim=1)).mean()


def gram(x: torch.Tensor, over: str) -> torch.Tensor:
    """Normalised Gram matrices of (B, C, H, W) maps.

    over="channels": (B, C, C), cosine similarity between channels (each a vector over H·W).
    over="locations": (B, HW, HW), cosine similarity between locations (each a vector over C).
    """
    f = x.float().flatten(2)  # (B, C, HW)
    if over == "channels":
        f = F.normalize(f, dim=2)
        return f @ f.transpose(1, 2)
    f = F.normalize(f, dim=1)
    return f.transpose(1, 2) @ f


@ALIGN_LOSSES.register("channel")
class ChannelAlign(AlignLoss):
    """MSE between normalised Gram matrices (correlation structure, not the values).

    With equal channel counts (e.g. after the projector) the C×C channel-correlation matrices are
    compared. Without a projector and with different channel counts, the C×C matrices cannot be
    compared, so the HW×HW Gram matrices (location-to-location similarity over the channels)
    are, which exist for any channel counts.
    """

    name = "channel"
    needs_same_channels = False

    def forward(self, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        over = "channels" if s.shape[1] == t.shape[1] else "locations"
        return F.mse_loss(gram(s, over), gram(t, over))


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to ``size`` (a no-op when already there)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def logit_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float
                       ) -> torch.Tensor:
    """Multi-label KD: BCE of sigmoid(student / T) against sigmoid(teacher / T), times T².

    The targets' own entropy is subtracted, so the loss is the Bernoulli KL divergence: 0 when
    the student matches the teacher. student, teacher: (B, K) logits; ``teacher`` is detached.
    """
    t_logits = teacher.detach().float() / temperature
    target = torch.sigmoid(t_logits)
    loss = F.binary_cross_entropy_with_logits(student.float() / temperature, target)
    entropy = F.binary_cross_entropy_with_logits(t_logits, target)
    return (loss - entropy) * temperature**2


def normalized_cam(cam: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """ReLU, then each (B, K) map divided by its maximum: (B, K, h, w) -> values in [0, 1]."""
    cam = F.relu(cam.float())
    return cam / (cam.flatten(2).amax(dim=2)[..., None, None] + eps)


def cam_distillation(student_cam: torch.Tensor, teacher_cam: torch.Tensor,
                     labels: torch.Tensor) -> torch.Tensor:
    """MSE between normalised CAMs of the labelled classes, on the student's grid.

    student_cam: (B, K, h, w), teacher_cam: (B, K, h', w') raw CAMs (teacher detached here);
    labels: (B, K) multi-hot. Images without a labelled class contribute nothing.
    """
    target = normalized_cam(resize_to(teacher_cam.detach().float(), student_cam.shape[-2:]))
    source = normalized_cam(student_cam)
    per_map = (source - target).pow(2).mean(dim=(2, 3))  # (B, K)
    weight = labels.float()
    return (per_map * weight).sum() / weight.sum().clamp(min=1.0)


def negative_cam_loss(cam: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor
                      ) -> torch.Tensor:
    """BCE towards 0 of the max-pooled logit of every absent class: a class's CAM must stay low
    everywhere on an image without it (the context a classifier fires on, e.g. chimneys on
    smoke-free tiles), not only on average as the pooled logit asks.

    cam: (B, K, h, w) raw CAMs of layer "features" (no bias); logits: (B, K), which equal
    ``cam.mean((2, 3)) + bias``, so ``logits + cam.amax - cam.mean`` is the max-pooled logit
    with the bias; labels: (B, K) multi-hot. Mean over the absent (image, class) pairs; 0 when
    every class is present.
    """
    cam = cam.float()
    pooled = logits.float() + cam.amax(dim=(2, 3)) - cam.mean(dim=(2, 3))
    absent = (labels < 0.5).float()
    return (F.softplus(pooled) * absent).sum() / absent.sum().clamp(min=1.0)


def positive_weights(targets: np.ndarray, max_weight: float = 50.0) -> torch.Tensor:
    """Class-balanced BCE ``pos_weight``: negatives / positives per class, clipped to [1, max].

    targets: (N, K) multi-hot labels of the training images.
    """
    pos = targets.sum(axis=0).astype(np.float64)
    neg = targets.shape[0] - pos
    return torch.tensor(np.clip(neg / np.maximum(pos, 1.0), 1.0, max_weight), dtype=torch.float32)
