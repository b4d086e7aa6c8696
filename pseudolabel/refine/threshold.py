"""``threshold``: a background score against the foreground scores, then argmax.

Three ways to score the background (row 0 of the state):

- ``background=constant``: every pixel gets ``t`` (a class wins where its score exceeds t);
- ``background=power``: ``(1 - max_c score_c) ** alpha`` (AffinityNet's background; a larger
  alpha gives more foreground);
- ``lo``/``hi`` (IRN's confident regions): foreground where the best class score is >= hi,
  background where it is < lo, and the band between them ignored (255).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from pseudolabel.refine.base import Refiner, RefineState
from pseudolabel.refine.registry import REFINERS


def _max_foreground(scores: np.ndarray) -> np.ndarray:
    """(H, W) best foreground score (0 where there is no foreground row)."""
    if scores.shape[0] <= 1:
        return np.zeros(scores.shape[1:], dtype=np.float32)
    return scores[1:].max(axis=0)


@REFINERS.register("threshold")
class Threshold(Refiner):
    """Background score (constant t, power (1 - max)^alpha, or a lo/hi band) and argmax."""

    name = "threshold"
    description = "background score t, (1 - max)^alpha, or IRN-style lo/hi band with 255 between"

    @dataclass(frozen=True)
    class Params:
        background: Literal["constant", "power"] = field(
            default="constant", metadata={"help": "constant: t; power: (1 - max)^alpha"})
        t: float = field(default=0.3, metadata={"help": "background score (background=constant)",
                                                "ge": 0, "le": 1})
        alpha: float = field(default=4.0, metadata={"help": "exponent (background=power)"})
        lo: float | None = field(
            default=None, metadata={"help": "confident background below lo (needs hi)"})
        hi: float | None = field(
            default=None, metadata={"help": "confident foreground at or above hi; 255 between"})

        def __post_init__(self) -> None:
            if (self.lo is None) != (self.hi is None):
                raise ValueError("give both lo and hi (the band between them is ignored), or neither")
            if self.lo is not None and self.hi is not None and not self.lo < self.hi:
                raise ValueError(f"lo ({self.lo}) must be below hi ({self.hi})")
            if self.alpha <= 0:
                raise ValueError(f"alpha must be positive, got {self.alpha}")

    def refine(self, state: RefineState) -> RefineState:
        p = self.params
        best = _max_foreground(state.scores)
        ignore = state.ignore
        if p.lo is not None and p.hi is not None:
            # The midpoint decides fg (>= hi) against bg (< lo); the band between is ignored.
            background = np.full(best.shape, 0.5 * (p.lo + p.hi), dtype=np.float32)
            ignore = ignore | ((best >= p.lo) & (best < p.hi))
        elif p.background == "power":
            background = np.power(np.clip(1.0 - best, 0.0, 1.0), p.alpha).astype(np.float32)
        else:
            background = np.full(best.shape, p.t, dtype=np.float32)
        scores = np.concatenate([background[None], state.scores[1:]], axis=0)
        return state.replace(scores=scores, ignore=ignore)
