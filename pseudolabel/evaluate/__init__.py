"""Confusion matrix and metrics (pure numpy) and the evaluate stage.

Names are imported on first use, so ``pseudolabel.evaluate.config`` stays free of numpy.
"""

from typing import TYPE_CHECKING

from pseudolabel.lazy import lazy_exports

if TYPE_CHECKING:
    from pseudolabel.evaluate.config import EvaluateConfig
    from pseudolabel.evaluate.metrics import (
        ConfusionAccumulator,
        confusion_matrix,
        foreground_iou,
        label_pair_counts,
        metrics_from_confusion,
    )
    from pseudolabel.evaluate.stage import EvalResult, evaluate, run

__all__ = [
    "ConfusionAccumulator",
    "EvalResult",
    "EvaluateConfig",
    "confusion_matrix",
    "evaluate",
    "foreground_iou",
    "label_pair_counts",
    "metrics_from_confusion",
    "run",
]
_MODULE = {"EvaluateConfig": "config", "EvalResult": "stage", "evaluate": "stage", "run": "stage"}
__getattr__, __dir__ = lazy_exports(__name__, {n: _MODULE.get(n, "metrics") for n in __all__})
