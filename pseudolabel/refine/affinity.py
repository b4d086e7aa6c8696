"""``affinity``: propagate the score maps by a random walk over pixel affinities (AffinityNet/IRN).

On a grid of stride ``s`` (the model's, or ``stride`` without a model) each cell links to the
cells within ``radius``. Affinities come from the model trained by ``pseudolabel
train-affinity`` (``model=AFF_DIR``) or, with no model, from colour (a training-free stand-in).
The transition matrix ``T = D^-1 A^beta`` is applied ``iterations`` times to the score maps:
foreground rows as they are, background ``(1 - max fg)^bg_power`` as IRN/AffinityNet do; the
walked maps are upsampled back to the image size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pseudolabel.affinity.net import AffinityNet, load_affinity_net, math_ceil
from pseudolabel.affinity.walk import (
    colour_affinity,
    embedding_affinity,
    random_walk,
    transition_weights,
)
from pseudolabel.ops.convert import image_tensor
from pseudolabel.ops.devices import check_device
from pseudolabel.refine.base import Refiner, RefineState
from pseudolabel.refine.registry import REFINERS


@dataclass(frozen=True)
class AffinityParams:
    """Parameters of the affinity random walk (AffinityNet defaults where they apply)."""

    model: str | None = field(
        default=None, metadata={"help": "AFF_DIR of train-affinity; none = colour affinities"})
    radius: float = field(default=5.0, metadata={"help": "link radius on the grid (cells)"})
    beta: float = field(default=8.0, metadata={"help": "power of the affinities"})
    iterations: int = field(default=32, metadata={"help": "random walk steps"})
    bg_power: float = field(default=1.0, metadata={"help": "background = (1 - max fg) ** bg_power"})
    stride: int = field(default=4, metadata={"help": "grid stride without a model"})
    sigma: float = field(default=10.0, metadata={"help": "colour width (0-255) without a model"})
    device: str = field(default="cpu", metadata={"help": "torch device"})
    fill_ignore: bool = field(
        default=False, metadata={"help": "label ignored (255) pixels too instead of keeping them"})

    def __post_init__(self) -> None:
        if self.radius < 1 or self.beta <= 0 or self.iterations < 0:
            raise ValueError("radius must be >= 1, beta > 0, iterations >= 0")
        if self.bg_power <= 0 or self.stride < 1 or self.sigma <= 0:
            raise ValueError("bg_power and sigma must be positive, stride >= 1")
        check_device(self.device)


def walk_scores(scores: torch.Tensor, offsets: list[tuple[int, int]], affinity: torch.Tensor,
                params: AffinityParams) -> torch.Tensor:
    """(C, h, w) grid scores after ``iterations`` steps of ``T = D^-1 A^beta``.

    ``affinity`` is (n, h, w), the affinity of each cell to its neighbour at each offset.
    """
    weights = transition_weights(affinity, params.beta)
    return random_walk(scores, offsets, weights, params.iterations)


@REFINERS.register("affinity")
class Affinity(Refiner):
    """Random walk of the score maps over learned (or colour) pixel affinities."""

    name = "affinity"
    description = "random walk of the scores over learned affinities (AffinityNet/IRN; model=AFF_DIR)"
    needs = frozenset({"image"})
    Params = AffinityParams

    def __init__(self, params: Any = None) -> None:
        super().__init__(params)
        self._model: AffinityNet | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}  # workers load the model themselves

    def check_keys(self, keys: Sequence[str]) -> None:
        """Before a run: load ``model`` (when given), so that a missing or damaged AFF_DIR stops
        the run before its first mask (images without a class never reach the model)."""
        if self.params.model is not None:
            self._net()

    def _net(self) -> AffinityNet:
        if self._model is None:
            self._model = load_affinity_net(str(self.params.model), self.params.device)
        return self._model

    def _links(self, image: np.ndarray) -> tuple[list[tuple[int, int]], torch.Tensor]:
        """Offsets and (n, h, w) affinities of the grid's links for an (H, W, 3) uint8 image."""
        p = self.params
        x = image_tensor(image, p.device)
        with torch.no_grad():
            if p.model is None:
                grid = (math_ceil(x.shape[1], p.stride), math_ceil(x.shape[2], p.stride))
                small = F.adaptive_avg_pool2d(x[None], grid)[0]
                return colour_affinity(small, p.radius, p.sigma)
            return embedding_affinity(self._net()(x[None] / 255.0)[0], p.radius)

    def refine(self, state: RefineState) -> RefineState:
        p = self.params
        image = state.require_image(self.name)
        height, width = state.size
        ignore = np.zeros_like(state.ignore) if p.fill_ignore else state.ignore.copy()
        fg = torch.from_numpy(np.array(state.scores[1:], np.float32)).to(p.device).clamp(0, 1)
        if fg.shape[0] == 0:
            return state.replace(scores=np.ones((1, height, width), np.float32), ignore=ignore)
        bg = (1.0 - fg.max(0, keepdim=True).values) ** p.bg_power
        scores = torch.cat([bg, fg])
        scores = scores * torch.from_numpy(~state.ignore).to(p.device)  # no evidence when ignored
        offsets, affinity = self._links(image)
        small = F.adaptive_avg_pool2d(scores[None], affinity.shape[1:])[0]
        with torch.no_grad():
            walked = walk_scores(small, offsets, affinity, p)
        out = F.interpolate(walked[None], size=(height, width), mode="bilinear",
                            align_corners=False)[0]
        return state.replace(scores=np.ascontiguousarray(out.cpu().numpy(), np.float32),
                             ignore=ignore)
