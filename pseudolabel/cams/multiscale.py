"""Multi-scale and flip CAMs, merged per layer on one output grid.

For every scale ``s`` the batch is resized to ``round(s·H) × round(s·W)`` (for a ViT, rounded
to whole patches); with ``flip`` the
mirrored copy rides in the same forward pass. Each view's raw CAM (B, K, h_s, w_s) is flipped
back, resized (bilinear) to the output grid ``ceil(H / stride) × ceil(W / stride)``, and summed
over views; then ReLU and each class map divided by its maximum (a map that is zero everywhere
stays zero). One forward pass per scale serves every layer and every class.

The output stride of a layer (:func:`cam_stride`) is its own stride (``grid="layer"``: the
grid of the scale-1 view) or the finest view's (``grid="finest"``: the stride divided by the
largest scale, so that the detail of the scale-2 view of a stride-32 CNN survives on a
stride-16 grid).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F

from pseudolabel.cams.methods import CamMethod
from pseudolabel.models import Classifier


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """(H, W) times ``scale``, rounded, at least 1 pixel."""
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def view_size(model: Classifier, size: tuple[int, int], scale: float) -> tuple[int, int]:
    """The input size of one view: ``size`` times ``scale``; for a ViT, rounded to whole
    patches (its patch embedding refuses other sizes)."""
    h, w = scaled_size(size, scale)
    if model.family == "vit":
        ph, pw = model.backbone.patch_embed.patch_size
        h, w = max(ph, round(h / ph) * ph), max(pw, round(w / pw) * pw)
    return h, w


GRIDS = ("layer", "finest")


def cam_stride(reduction: int, scales: Sequence[float], grid: str = "layer") -> int:
    """The stride of the stored CAMs of a layer of stride ``reduction``.

    ``grid="layer"``: ``reduction`` (the scale-1 view's grid); ``grid="finest"``: the finest
    view's, ``reduction / max(scales)`` rounded, at least 1 (never coarser than the layer's).
    """
    if grid == "layer":
        return reduction
    if grid == "finest":
        return max(1, min(reduction, round(reduction / max(scales))))
    raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")


def layer_grid(size: tuple[int, int], stride: int) -> tuple[int, int]:
    """The grid of a layer of stride ``stride`` on an (H, W) image: ``ceil(H/s), ceil(W/s)``."""
    return math.ceil(size[0] / stride), math.ceil(size[1] / stride)


def normalize_max(cams: torch.Tensor) -> torch.Tensor:
    """ReLU, then each (b, k) map divided by its maximum: (B, K, h, w) -> [0, 1]."""
    cams = cams.clamp_min(0)
    peak = cams.amax(dim=(2, 3), keepdim=True)
    return torch.where(peak > 0, cams / peak.clamp_min(torch.finfo(cams.dtype).tiny), cams)


def multiscale_cams(
    method: CamMethod,
    model: Classifier,
    x: torch.Tensor,
    layers: Sequence[str],
    strides: Mapping[str, int],
    scales: Sequence[float] = (1.0,),
    flip: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CAMs of a batch of equally sized images, merged over scales and flips.

    Args:
        x: (B, 3, H, W) float RGB in [0, 1].
        strides: layer -> output stride (:func:`cam_stride` of the layer's
            ``model.layer_info(layer).reduction``).
    Returns:
        probs (B, K): sigmoid of the logits, averaged over every view;
        {layer: (B, K, ceil(H/stride), ceil(W/stride)) float32 in [0, 1]}.
    """
    b = x.shape[0]
    size = (x.shape[-2], x.shape[-1])
    grids = {n: layer_grid(size, strides[n]) for n in layers}
    merged: dict[str, torch.Tensor] = {}
    prob_sum: torch.Tensor | None = None
    for scale in scales:
        target = view_size(model, size, scale)
        xs = x if target == size else F.interpolate(
            x, size=target, mode="bilinear", align_corners=False, antialias=scale < 1)
        if flip:
            xs = torch.cat([xs, xs.flip(-1)])
        logits, cams = method.cam(model, xs, layers)
        probs = torch.sigmoid(logits.float()).view(-1, b, logits.shape[1]).sum(0)
        prob_sum = probs if prob_sum is None else prob_sum + probs
        for name in layers:
            cam = cams[name].float()
            if flip:
                cam = cam[:b] + cam[b:].flip(-1)
            if cam.shape[-2:] != grids[name]:
                cam = F.interpolate(cam, size=grids[name], mode="bilinear", align_corners=False)
            merged[name] = cam if name not in merged else merged[name] + cam
    assert prob_sum is not None, "at least one scale"
    views = len(scales) * (2 if flip else 1)
    return prob_sum / views, {n: normalize_max(c) for n, c in merged.items()}
