"""``par``: training-free pixel-adaptive refinement (the PAR idea of AFA / ToCo).

Each pixel looks at 8 neighbours at each of several dilations (replicate border). Its affinity
to a neighbour combines

- colour: ``-(|I_p - I_q| / (std_q I + eps) / w_color)^2``, averaged over the RGB channels, where
  the std is taken over the pixel's neighbours (so the scale of the image does not matter);
- position: ``-(|p - q| / std |p - q| / w_color)^2`` (nearer neighbours count more),

each turned into weights by a softmax over the neighbours; the position weights are scaled by
``w_position`` and the two are averaged so that they sum to 1. The score maps are then
propagated ``iterations`` times: ``P <- sum_q a_pq P_q``. Being a convex combination, it keeps
probabilities normalised.

Pure function :func:`pixel_adaptive_refine`, module :class:`PixelAdaptiveRefinement`, refiner
:class:`Par`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from pseudolabel.ops.convert import image_tensor, probabilities
from pseudolabel.ops.devices import check_device
from pseudolabel.ops.kernels import shifted_views
from pseudolabel.refine._glue import refine_probabilities
from pseudolabel.refine.base import Refiner, RefineState
from pseudolabel.refine.registry import REFINERS

_EPS = 1e-8


@dataclass(frozen=True)
class ParParams:
    """Parameters of PAR (defaults of AFA / ToCo)."""

    dilations: tuple[int, ...] = field(
        default=(1, 2, 4, 8, 12, 24), metadata={"help": "neighbour distances (8 neighbours each)"})
    iterations: int = field(default=10, metadata={"help": "propagation steps"})
    w_color: float = field(default=0.3, metadata={"help": "temperature of the colour and position affinities"})
    w_position: float = field(default=0.01, metadata={"help": "weight of the position affinity"})

    def __post_init__(self) -> None:
        if not self.dilations or any(d < 1 for d in self.dilations):
            raise ValueError(f"dilations must be positive integers, got {self.dilations}")
        if self.iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {self.iterations}")
        if self.w_color <= 0 or self.w_position < 0:
            raise ValueError("w_color must be positive and w_position >= 0")


def neighbour_offsets(dilations: tuple[int, ...]) -> list[tuple[int, int]]:
    """The (dy, dx) of the 8 neighbours at each dilation, dilation by dilation."""
    ring = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]
    return [(d * dy, d * dx) for d in dilations for dy, dx in ring]


def affinities(image: Tensor, params: ParParams) -> tuple[list[tuple[int, int]], Tensor]:
    """The propagation weights of one image.

    Args:
        image: (3, H, W) float colour.
    Returns:
        the neighbour offsets (n of them) and (n, H, W) weights, non-negative, summing to 1
        over the neighbours.
    """
    offsets = neighbour_offsets(params.dilations)
    w1 = params.w_color
    logits = torch.zeros(len(offsets), *image.shape[1:], dtype=torch.float32, device=image.device)
    for channel in image:
        nb = torch.stack(shifted_views(channel[None], offsets))[:, 0]  # (n, H, W)
        std = nb.std(0, keepdim=True)
        logits -= ((nb - channel) / (std + _EPS) / w1) ** 2
    logits /= image.shape[0]
    colour = torch.softmax(logits, 0)
    dist = torch.tensor([float(np.hypot(dy, dx)) for dy, dx in offsets], device=image.device)
    position = torch.softmax(-(dist / (dist.std() + _EPS) / w1) ** 2, 0)
    return offsets, (colour + params.w_position * position[:, None, None]) / (1.0 + params.w_position)


def propagate(probs: Tensor, offsets: list[tuple[int, int]], weights: Tensor,
              iterations: int) -> Tensor:
    """``iterations`` steps of ``P_p <- sum_n weights[n, p] P_{p + offset_n}`` on (C, H, W)."""
    for _ in range(iterations):
        out = torch.zeros_like(probs)
        for w, view in zip(weights, shifted_views(probs, offsets), strict=True):
            out.addcmul_(w, view)
        probs = out
    return probs


def pixel_adaptive_refine(image: np.ndarray | Tensor, probs: np.ndarray | Tensor,
                          params: ParParams = ParParams(), *,
                          device: torch.device | str | None = None) -> Tensor:
    """PAR on one image.

    Args:
        image: (H, W, 3) or (3, H, W) RGB (any scale: the affinities are scale-free).
        probs: (C, H, W) probabilities (or non-negative scores, normalised here).
        params: dilations, iterations, temperatures.
        device: where to compute (default: the device of ``probs`` when a tensor, else cpu).
    Returns:
        (C, H, W) float32 probabilities.
    """
    if device is None:
        device = probs.device if isinstance(probs, Tensor) else "cpu"
    img = image_tensor(image, device)
    p = probabilities(probs, 0.0, device)
    if img.shape[1:] != p.shape[1:]:
        raise ValueError(f"image {tuple(img.shape[1:])} and probs {tuple(p.shape[1:])} differ in size")
    if p.shape[0] == 1 or params.iterations == 0:
        return p
    with torch.no_grad():
        offsets, weights = affinities(img, params)
        return propagate(p, offsets, weights, params.iterations)


class PixelAdaptiveRefinement(nn.Module):
    """Module form of :func:`pixel_adaptive_refine` (no learnable parameters)."""

    def __init__(self, params: ParParams = ParParams()) -> None:
        super().__init__()
        self.params = params

    def forward(self, image: Tensor, probs: Tensor) -> Tensor:
        """(3, H, W) or (H, W, 3) image, (C, H, W) probs -> (C, H, W) probs."""
        return pixel_adaptive_refine(image, probs, self.params)


@REFINERS.register("par")
class Par(Refiner):
    """Pixel-adaptive refinement: colour/position affinities over dilated neighbours, propagated."""

    name = "par"
    description = "pixel-adaptive refinement (AFA/ToCo PAR): propagate scores along colour affinities"
    needs = frozenset({"image"})

    @dataclass(frozen=True)
    class Params(ParParams):
        device: str = field(default="cpu", metadata={"help": "torch device"})
        fill_ignore: bool = field(
            default=False, metadata={"help": "label ignored (255) pixels too instead of keeping them 255"})

        def __post_init__(self) -> None:
            super().__post_init__()
            check_device(self.device)

    def refine(self, state: RefineState) -> RefineState:
        p = self.params

        def run(image: np.ndarray, probs: Tensor) -> Tensor:
            return pixel_adaptive_refine(image, probs, p, device=p.device)

        return refine_probabilities(state, self.name, run, fill_ignore=p.fill_ignore)
