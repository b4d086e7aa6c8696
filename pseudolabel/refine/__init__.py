"""Refiners: CAMs -> hard masks through a chain of steps (threshold, fusion, gmm, crf, ...).

    from pseudolabel.refine import REFINERS, create_chain, initial_state, to_mask
    chain = create_chain(["fusion:mode=mean", "gmm"])

The stage (``pseudolabel.refine.stage.run``) applies a chain to every record of a CAM store.
"""

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

load_builtin_refiners()

__all__ = [
    "NEEDS",
    "REFINERS",
    "RefineState",
    "Refiner",
    "create_chain",
    "create_refiner",
    "describe_refiners",
    "initial_state",
    "resize_maps",
    "to_mask",
    "with_foreground",
]
