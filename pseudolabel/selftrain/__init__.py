"""Self-training: a segmenter trained on pseudo-masks predicts new masks for the same images.

``run(SelfTrainConfig(...), root, masks_dir, out_dir, run_dir)`` is the stage;
:class:`FpnSegmenter` the light segmenter (a timm ``features_only`` encoder and an FPN decoder).
Names are imported on first use, so ``pseudolabel.selftrain.config`` stays free of torch.
"""

from typing import TYPE_CHECKING

from pseudolabel.lazy import lazy_exports

if TYPE_CHECKING:
    from pseudolabel.selftrain.config import SelfTrainConfig
    from pseudolabel.selftrain.model import FpnSegmenter, keep_classes, masked_cross_entropy
    from pseudolabel.selftrain.stage import load_model, run

__all__ = ["FpnSegmenter", "SelfTrainConfig", "keep_classes", "load_model",
           "masked_cross_entropy", "run"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "FpnSegmenter": "model", "SelfTrainConfig": "config", "keep_classes": "model",
    "load_model": "stage", "masked_cross_entropy": "model", "run": "stage"})
