"""``fusion``: combine several CAM keys (layers, teacher and student) into the foreground scores.

Each key's maps are normalised per class (``norm``), resized to a common grid (the finest or the
coarsest of the keys), combined (``mode``) and resized to the image size. The background row
becomes ``1 - max`` of the fused maps; follow with ``threshold`` or ``gmm`` to decide.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pseudolabel.errors import BadInputError
from pseudolabel.refine.base import Refiner, RefineState, resize_maps, with_foreground
from pseudolabel.refine.registry import REFINERS

log = logging.getLogger(__name__)

_EPS = 1e-8


def normalise(maps: np.ndarray, how: str) -> np.ndarray:
    """(k, h, w) maps normalised per class: ``max`` (x / max), ``minmax`` or ``none``.

    A constant (or all-zero) map becomes 0 under ``minmax`` and stays 0 under ``max``.
    """
    maps = np.asarray(maps, dtype=np.float32)
    if how == "none" or maps.shape[0] == 0:
        return maps
    flat = maps.reshape(maps.shape[0], -1)
    hi = flat.max(axis=1)[:, None, None]
    if how == "max":
        return np.where(hi > _EPS, maps / np.maximum(hi, _EPS), 0.0).astype(np.float32)
    lo = flat.min(axis=1)[:, None, None]
    span = hi - lo
    return np.where(span > _EPS, (maps - lo) / np.maximum(span, _EPS), 0.0).astype(np.float32)


def combine(stack: np.ndarray, mode: str, weights: Sequence[float] = ()) -> np.ndarray:
    """Fuse (n_keys, k, h, w) maps into (k, h, w).

    ``mean``, ``max``, ``product`` (the geometric mean: the product's n-th root, so that values
    keep the scale of a single map) or ``weighted`` (weighted mean; weights are normalised).
    """
    if mode == "mean":
        return stack.mean(axis=0)
    if mode == "max":
        return stack.max(axis=0)
    if mode == "product":
        return np.prod(np.clip(stack, 0.0, None), axis=0) ** (1.0 / stack.shape[0])
    w = np.asarray(weights, dtype=np.float32)
    return np.tensordot(w / w.sum(), stack, axes=1)


@REFINERS.register("fusion")
class Fusion(Refiner):
    """Fuse CAM keys: mean, max, product or weighted; per-key normalisation; common grid."""

    name = "fusion"
    description = "combine CAM keys (layers, teacher and student): mean, max, product, weighted"
    needs = frozenset({"all_keys"})

    @dataclass(frozen=True)
    class Params:
        keys: tuple[str, ...] = field(
            default=(), metadata={"help": "CAM keys to fuse, e.g. [student/features,teacher/features]; empty = all"})
        mode: Literal["mean", "max", "product", "weighted"] = field(
            default="mean", metadata={"help": "how to combine (product = geometric mean)"})
        weights: tuple[float, ...] = field(
            default=(), metadata={"help": "one weight per key (mode=weighted)"})
        norm: Literal["max", "minmax", "none"] = field(
            default="max", metadata={"help": "per-key, per-class normalisation before fusing"})
        grid: Literal["finest", "coarsest"] = field(
            default="finest", metadata={"help": "the common grid the keys are resized to"})

        def __post_init__(self) -> None:
            if self.mode == "weighted":
                if not self.weights:
                    raise ValueError("mode=weighted needs weights=[w1,w2,...], one per key")
                if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                    raise ValueError(f"weights must be >= 0 with a positive sum, got {self.weights}")
                if self.keys and len(self.keys) != len(self.weights):
                    raise ValueError(f"{len(self.weights)} weights for {len(self.keys)} keys")

    def check_keys(self, keys: Sequence[str]) -> None:
        """Warn once when the store gives a single key to fuse: the chain then equals the same
        chain without ``fusion``."""
        chosen = [k for k in self.params.keys if k in keys] if self.params.keys else list(keys)
        if len(chosen) == 1:
            log.warning("fusion has a single CAM key to fuse (%s): the chain gives the same masks "
                        "without it; store more keys (make-cams --layers features,LAYER or "
                        "--models student,teacher) or drop fusion", chosen[0])

    def _keys(self, state: RefineState) -> list[str]:
        keys = list(self.params.keys) or sorted(state.cams)
        missing = [k for k in keys if k not in state.cams]
        if missing:
            raise BadInputError(
                f"fusion: CAM key(s) {', '.join(missing)} not in the store",
                fix=f"use keys among: {', '.join(sorted(state.cams))}")
        if self.params.mode == "weighted" and len(keys) != len(self.params.weights):
            raise BadInputError(
                f"fusion: {len(self.params.weights)} weights for the {len(keys)} keys "
                f"{', '.join(keys)}", fix="give one weight per key, or list keys=[...]")
        return keys

    def fuse(self, state: RefineState) -> np.ndarray:
        """(k, h, w) fused maps on the common grid."""
        p = self.params
        keys = self._keys(state)
        maps = [np.asarray(state.cams[k], dtype=np.float32) for k in keys]
        sizes = [m.shape[1] * m.shape[2] for m in maps]
        pick = int(np.argmax(sizes)) if p.grid == "finest" else int(np.argmin(sizes))
        grid = maps[pick].shape[1:]
        stack = np.stack([resize_maps(normalise(m, p.norm), grid) for m in maps])
        return combine(stack, p.mode, p.weights).astype(np.float32)

    def refine(self, state: RefineState) -> RefineState:
        fused = self.fuse(state)
        return with_foreground(state, resize_maps(fused, state.size))
