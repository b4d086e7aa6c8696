"""Segmentation metrics in pure numpy, the torchmetrics way: one confusion matrix, then ratios.

Conventions (those of sklearn and torchmetrics): ``cm[i, j]`` counts pixels whose ground truth is
``i`` and prediction ``j``. A pixel whose ground truth or prediction is ``ignore`` (255) is left
out of the matrix; a prediction of 255 is counted as "not covered" by :class:`ConfusionAccumulator`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pseudolabel.data.masks import IGNORE


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                     ignore: int | None = IGNORE) -> np.ndarray:
    """(C, C) int64 confusion matrix of integer label maps of one shape (any shape, any int dtype).

    Pixels with ``gt == ignore`` or ``pred == ignore`` are left out. Any other value outside
    ``0..num_classes-1`` is a ValueError.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    p = pred.reshape(-1).astype(np.int64)
    g = gt.reshape(-1).astype(np.int64)
    if ignore is not None:
        keep = (p != ignore) & (g != ignore)
        p, g = p[keep], g[keep]
    c = int(num_classes)
    if p.size and (min(p.min(), g.min()) < 0 or max(p.max(), g.max()) >= c):
        raise ValueError(f"label values must lie in 0..{c - 1} (or be {ignore}); got "
                         f"{sorted((set(np.unique(p).tolist()) | set(np.unique(g).tolist())) - set(range(c)))[:5]}")
    return np.bincount(g * c + p, minlength=c * c).reshape(c, c).astype(np.int64)


def label_pair_counts(pred: np.ndarray, gt: np.ndarray, num_classes: int,
                      ignore: int = IGNORE) -> np.ndarray:
    """(C + 2, C + 2) int64 counts of (gt, pred) pairs of two uint8 maps of one shape.

    Index ``C`` stands for ``ignore``, ``C + 1`` for any other value outside ``0..C-1`` (bad
    input): the confusion matrix is the top-left (C, C) block; the rest gives coverage counts and
    out-of-range checks. Two table lookups and one small bincount, no masking.
    """
    if pred.dtype != np.uint8 or gt.dtype != np.uint8:
        raise TypeError("label_pair_counts takes uint8 maps")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    c = int(num_classes)
    lut = np.full(256, c + 1, dtype=np.intp)
    lut[:c] = np.arange(c)
    lut[ignore] = c
    codes = lut[gt.reshape(-1)] * (c + 2) + lut[pred.reshape(-1)]
    return np.bincount(codes, minlength=(c + 2) ** 2).reshape(c + 2, c + 2)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def metrics_from_confusion(cm: np.ndarray) -> dict[str, Any]:
    """Scores of a (C, C) confusion matrix (rows ground truth, columns prediction).

    Returns a dict of
        iou, precision, recall   (C,) float64; NaN where undefined (empty union / column / row)
        miou                     mean IoU over the classes whose union is not empty
        miou_present             mean IoU over the classes present in the ground truth
        pixel_accuracy           trace / total
        gt_pixels, pred_pixels   (C,) int64 row and column sums
    Scalars are NaN when nothing is defined (an empty matrix).
    """
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got {cm.shape}")
    tp = np.diag(cm).astype(np.float64)
    gt_pixels = cm.sum(axis=1)
    pred_pixels = cm.sum(axis=0)
    union = gt_pixels + pred_pixels - np.diag(cm)
    iou = _ratio(tp, union)
    total = cm.sum()
    defined = union > 0
    present = gt_pixels > 0
    return {
        "iou": iou,
        "precision": _ratio(tp, pred_pixels),
        "recall": _ratio(tp, gt_pixels),
        "miou": float(iou[defined].mean()) if defined.any() else float("nan"),
        "miou_present": float(iou[present].mean()) if present.any() else float("nan"),
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "gt_pixels": gt_pixels,
        "pred_pixels": pred_pixels,
    }


def foreground_iou(cm: np.ndarray) -> float:
    """Mean IoU over the foreground classes (1..C-1) whose union is not empty; NaN if none."""
    cm = np.asarray(cm, dtype=np.int64)
    inter = np.diag(cm)[1:].astype(np.float64)
    union = (cm.sum(0) + cm.sum(1) - np.diag(cm))[1:]
    keep = union > 0
    return float((inter[keep] / union[keep]).mean()) if keep.any() else float("nan")


def context_counts(pred: np.ndarray, context: np.ndarray, num_classes: int,
                   gt: np.ndarray | None = None, ignore: int = IGNORE) -> np.ndarray:
    """(2, C) int64 counts of context pixels: row 0 labelled as class c, row 1 the pixels counted.

    ``context`` is an (H, W) uint8 map of the same shape as ``pred``: 0 = not context, 1..254 =
    context (the value may name a type: chimney, rails, water; it is not used here), ``ignore``
    (255) = unknown, left out. A context pixel counts for class ``c`` unless its ground truth is
    ``c`` (smoke drawn in front of a chimney is not a leak) or ``ignore``; a prediction of
    ``ignore`` counts in row 1, not in row 0 (marking a pixel unsure is not labelling it).
    Leakage of class c = ``counts[0, c] / counts[1, c]`` (:func:`context_leakage`).
    """
    pred = np.asarray(pred)
    context = np.asarray(context)
    if pred.shape != context.shape:
        raise ValueError(f"prediction {pred.shape} and context {context.shape} differ in shape")
    c = int(num_classes)
    inside = (context != 0) & (context != ignore)
    p = pred[inside].astype(np.int64)
    if gt is None:
        g = np.full(p.shape, -1, np.int64)
    else:
        gt = np.asarray(gt)
        if gt.shape != pred.shape:
            raise ValueError(f"ground truth {gt.shape} and prediction {pred.shape} differ in shape")
        g = gt[inside].astype(np.int64)
        keep = g != ignore
        p, g = p[keep], g[keep]
    counted = p.size - np.bincount(g[(g >= 0) & (g < c)], minlength=c)[:c]
    hit = (p >= 0) & (p < c) & (p != g)
    labelled = np.bincount(p[hit], minlength=c)[:c]
    return np.stack([labelled, counted]).astype(np.int64)


def context_leakage(counts: np.ndarray) -> np.ndarray:
    """(C,) float64 share of context pixels labelled as each class from :func:`context_counts`'
    (2, C) counts (summed over images); NaN where no context pixel was counted."""
    counts = np.asarray(counts, dtype=np.int64)
    return _ratio(counts[0].astype(np.float64), counts[1])


class ConfusionAccumulator:
    """Sums confusion matrices over images, and counts coverage.

    ``coverage`` is the share of ground-truth-valid pixels (gt not ``ignore``) that the
    prediction does not mark ``ignore``.

    >>> acc = ConfusionAccumulator(2)
    >>> acc.update(np.array([[0, 1, 255]]), np.array([[0, 1, 1]]))
    >>> acc.compute()["coverage"]
    0.6666666666666666
    """

    def __init__(self, num_classes: int, ignore: int = IGNORE) -> None:
        self.num_classes = int(num_classes)
        self.ignore = ignore
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.valid = 0  # ground-truth pixels that are not ignore
        self.covered = 0  # of those, pixels the prediction does not mark ignore
        self.images = 0

    def update(self, pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """Add one image (or a batch of any shape); returns the image's own confusion matrix."""
        cm = confusion_matrix(pred, gt, self.num_classes, self.ignore)
        valid = np.asarray(gt) != self.ignore
        self.add(cm, int(valid.sum()), int((valid & (np.asarray(pred) != self.ignore)).sum()))
        return cm

    def add(self, cm: np.ndarray, valid: int, covered: int, images: int = 1) -> None:
        """Add counts computed elsewhere (a worker process)."""
        self.confusion += cm
        self.valid += int(valid)
        self.covered += int(covered)
        self.images += images

    def merge(self, other: ConfusionAccumulator) -> None:
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge accumulators of different class counts")
        self.add(other.confusion, other.valid, other.covered, other.images)

    def compute(self) -> dict[str, Any]:
        """:func:`metrics_from_confusion` plus ``coverage`` and ``images``."""
        out = metrics_from_confusion(self.confusion)
        out["coverage"] = self.covered / self.valid if self.valid else float("nan")
        out["images"] = self.images
        return out
