"""Validation metrics of a multi-label classifier: AP (sklearn), mAP, F1 per class."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def classification_metrics(scores: np.ndarray, targets: np.ndarray, classes: Sequence[str],
                           threshold: float = 0.5) -> dict:
    """Per-class AP and F1 (at ``threshold`` on the probabilities) and their means.

    scores: (N, K) probabilities; targets: (N, K) multi-hot. A class without a positive image in
    the validation set has AP = NaN (reported as null) and is left out of the mAP.
    """
    from sklearn.metrics import average_precision_score

    targets = targets.astype(bool)
    pred = scores >= threshold
    ap, f1 = {}, {}
    for k, name in enumerate(classes):
        if targets[:, k].any():
            ap[name] = float(average_precision_score(targets[:, k], scores[:, k]))
        else:
            ap[name] = math.nan
        tp = float((pred[:, k] & targets[:, k]).sum())
        denom = float(pred[:, k].sum() + targets[:, k].sum())
        f1[name] = 2 * tp / denom if denom else 0.0
    valid = [v for v in ap.values() if not math.isnan(v)]
    return {"mAP": float(np.mean(valid)) if valid else math.nan,
            "mean_f1": float(np.mean(list(f1.values()))),
            "ap": ap, "f1": f1}
