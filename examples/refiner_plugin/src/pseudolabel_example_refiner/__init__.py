"""``border``: ignore (255) a band of ``width`` pixels along the image border.

An example of a pseudolabel refiner shipped as its own package: the class below subclasses
:class:`pseudolabel.refine.Refiner`, and pyproject.toml names it in the entry-point group
``pseudolabel.refiners``. pseudolabel finds it when a user asks for ``--refiner border``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pseudolabel.refine.base import Refiner, RefineState

__all__ = ["IgnoreBorder"]


class IgnoreBorder(Refiner):
    """Mark the outer ``width`` pixels of every side as ignored; scores are left unchanged."""

    name = "border"  # the entry point's name: what users write after --refiner
    description = "ignore (255) a band of `width` pixels along the image border"
    needs = frozenset()  # nothing beyond the CAM ("image" would also load the RGB image)

    @dataclass(frozen=True)
    class Params:
        width: int = field(default=4, metadata={"help": "band width in pixels"})

        def __post_init__(self) -> None:
            if self.width < 0:
                raise ValueError(f"width must be 0 or more, got {self.width}")

    def refine(self, state: RefineState) -> RefineState:
        """state.ignore (H, W) bool gets the border band; never modify the input arrays."""
        w = self.params.width
        if w == 0:
            return state
        band = np.ones(state.size, dtype=bool)
        band[w:-w, w:-w] = False
        return state.replace(ignore=state.ignore | band)
