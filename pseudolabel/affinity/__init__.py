"""Learned pixel affinities (AffinityNet / IRN idea): training stage, model, random walk.

    from pseudolabel.affinity import AffinityTrainConfig, run, load_affinity_net, random_walk

The refiner that uses them is ``affinity`` (:mod:`pseudolabel.refine.affinity`). Names are
imported on first use, so ``pseudolabel.affinity.config`` stays free of torch.
"""

from typing import TYPE_CHECKING

from pseudolabel.lazy import lazy_exports

if TYPE_CHECKING:
    from pseudolabel.affinity.config import AffinityTrainConfig
    from pseudolabel.affinity.net import AffinityNet, load_affinity_net, save_affinity_net
    from pseudolabel.affinity.train import confident_labels, run
    from pseudolabel.affinity.walk import (
        affinity_loss,
        colour_affinity,
        embedding_affinity,
        half_offsets,
        neighbour_offsets,
        random_walk,
        sample_pairs,
        transition_weights,
    )

__all__ = [
    "AffinityNet",
    "AffinityTrainConfig",
    "affinity_loss",
    "colour_affinity",
    "confident_labels",
    "embedding_affinity",
    "half_offsets",
    "load_affinity_net",
    "neighbour_offsets",
    "random_walk",
    "run",
    "sample_pairs",
    "save_affinity_net",
    "transition_weights",
]
_MODULE = {"AffinityTrainConfig": "config", "AffinityNet": "net", "load_affinity_net": "net",
           "save_affinity_net": "net", "confident_labels": "train", "run": "train"}
__getattr__, __dir__ = lazy_exports(__name__, {name: _MODULE.get(name, "walk") for name in __all__})
