"""Input conversion for the filters: images and score maps as float32 tensors.

- :func:`image_tensor`: an (H, W, 3) or (3, H, W) RGB image -> (3, H, W) float32 (0-255).
- :func:`probabilities`: non-negative score maps -> per-pixel probabilities (C, H, W).
- :func:`uniform_where_ignored`: probabilities made uniform on ignored pixels.
- :func:`nonfinite_tensors`: the names of tensors holding NaN or inf (a diverged model's weights).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

__all__ = ["image_tensor", "nonfinite_tensors", "probabilities", "uniform_where_ignored"]


def image_tensor(image: np.ndarray | Tensor, device: torch.device | str = "cpu") -> Tensor:
    """(3, H, W) float32 tensor (values 0-255) from an (H, W, 3) or (3, H, W) RGB image.

    An array whose last axis has 3 entries is read as (H, W, 3) (the project's convention).
    """
    t = image if isinstance(image, Tensor) else torch.from_numpy(np.array(image))
    if t.ndim != 3 or 3 not in (t.shape[0], t.shape[-1]):
        raise ValueError(f"expected an (H, W, 3) or (3, H, W) image, got shape {tuple(t.shape)}")
    if t.shape[-1] == 3:
        t = t.permute(2, 0, 1)
    return t.to(device=device, dtype=torch.float32).contiguous()


def probabilities(scores: np.ndarray | Tensor, clip: float = 0.0,
                  device: torch.device | str = "cpu") -> Tensor:
    """(C, H, W) float32 probabilities: non-negative scores divided by their sum per pixel.

    A pixel whose scores sum to 0 becomes uniform; ``clip`` > 0 keeps every value >= clip
    (then renormalised) so that ``-log`` stays finite.
    """
    s = scores if isinstance(scores, Tensor) else torch.from_numpy(np.array(scores, np.float32))
    s = s.to(device=device, dtype=torch.float32).clamp_min(0.0)
    total = s.sum(0, keepdim=True)
    p = torch.where(total > 0, s / total.clamp_min(1e-30), torch.full_like(s, 1.0 / s.shape[0]))
    if clip > 0:
        p = p.clamp_min(clip)
        p = p / p.sum(0, keepdim=True)
    return p


def uniform_where_ignored(probs: Tensor, ignore: np.ndarray) -> Tensor:
    """(C, H, W) probabilities with ignored pixels made uniform (they carry no evidence)."""
    if not ignore.any():
        return probs
    mask = torch.from_numpy(np.array(ignore, dtype=bool)).to(probs.device)
    return torch.where(mask, torch.full_like(probs, 1.0 / probs.shape[0]), probs)


def nonfinite_tensors(tensors: Mapping[str, Tensor]) -> list[str]:
    """The names of the floating-point tensors of ``tensors`` (e.g. a ``state_dict()``) that
    hold a NaN or an infinity, in order."""
    return [name for name, t in tensors.items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]
