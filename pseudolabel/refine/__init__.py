"""Refiners: CAMs -> hard masks through a chain of steps (threshold, fusion, gmm, crf, ...).

    from pseudolabel.refine import REFINERS, create_chain, initial_state, to_mask
    chain = create_chain(["fusion:mode=mean", "gmm"])

The stage (``pseudolabel.refine.stage.run``) applies a chain to every record of a CAM store.
Names are imported on first use (``pseudolabel.refine.config`` stays free of torch); importing
the registry registers every built-in refiner.
"""

from typing import TYPE_CHECKING

from pseudolabel.lazy import lazy_exports

if TYPE_CHECKING:
    from pseudolabel.refine.base import (
        NEEDS,
        Refiner,
        RefineState,
        initial_state,
        resize_maps,
        to_mask,
        with_foreground,
    )
    from pseudolabel.refine.registry import (
        REFINERS,
        create_chain,
        create_refiner,
        describe_refiners,
        load_builtin_refiners,
    )

__all__ = [
    "NEEDS",
    "REFINERS",
    "RefineState",
    "Refiner",
    "create_chain",
    "create_refiner",
    "describe_refiners",
    "initial_state",
    "load_builtin_refiners",
    "resize_maps",
    "to_mask",
    "with_foreground",
]
_BASE = ("NEEDS", "Refiner", "RefineState", "initial_state", "resize_maps", "to_mask",
         "with_foreground")
__getattr__, __dir__ = lazy_exports(
    __name__, {name: "base" if name in _BASE else "registry" for name in __all__})
