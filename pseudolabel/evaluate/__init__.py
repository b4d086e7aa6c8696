"""Confusion matrix and metrics (pure numpy) and the evaluate stage."""

from pseudolabel.evaluate.metrics import (
    ConfusionAccumulator,
    confusion_matrix,
    foreground_iou,
    label_pair_counts,
    metrics_from_confusion,
)
from pseudolabel.evaluate.stage import EvalResult, EvaluateConfig, evaluate, run

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
