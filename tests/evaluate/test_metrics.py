"""Metrics against sklearn / torchmetrics as oracles and a naive per-pixel loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, jaccard_score, precision_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion
from torchmetrics.classification import MulticlassConfusionMatrix, MulticlassJaccardIndex

from pseudolabel.evaluate import (
    ConfusionAccumulator,
    confusion_matrix,
    foreground_iou,
    label_pair_counts,
    metrics_from_confusion,
)


def random_maps(seed: int, c: int, shape=(3, 17, 23), p_ignore=0.1):
    """Correlated prediction/gt label maps with 255 in both."""
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, c, shape).astype(np.uint8)
    pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, c, shape)).astype(np.uint8)
    gt[rng.random(shape) < p_ignore] = 255
    pred[rng.random(shape) < p_ignore] = 255
    return pred, gt


def naive_confusion(pred, gt, c):
    cm = [[0] * c for _ in range(c)]
    for p, g in zip(pred.reshape(-1).tolist(), gt.reshape(-1).tolist(), strict=True):
        if p != 255 and g != 255:
            cm[g][p] += 1
    return np.array(cm)


@pytest.mark.parametrize("seed,c", [(0, 2), (1, 3), (2, 6), (3, 21)])
def test_confusion_matrix_matches_sklearn_and_torchmetrics(seed: int, c: int) -> None:
    pred, gt = random_maps(seed, c)
    cm = confusion_matrix(pred, gt, c)
    assert cm.dtype == np.int64 and cm.shape == (c, c)
    keep = (pred != 255) & (gt != 255)
    expected = sk_confusion(gt[keep], pred[keep], labels=list(range(c)))
    np.testing.assert_array_equal(cm, expected)
    # torchmetrics ignores 255 in the target only: hand it the pixels the prediction covers
    tm = MulticlassConfusionMatrix(c, ignore_index=255)
    got = tm(torch.from_numpy(pred[pred != 255].astype(np.int64)),
             torch.from_numpy(gt[pred != 255].astype(np.int64)))
    np.testing.assert_array_equal(cm, got.numpy())


def test_confusion_matrix_matches_a_naive_loop_on_tiny_arrays() -> None:
    pred = np.array([[0, 1, 2], [2, 255, 1]], np.uint8)
    gt = np.array([[0, 1, 1], [2, 2, 255]], np.uint8)
    np.testing.assert_array_equal(confusion_matrix(pred, gt, 3), naive_confusion(pred, gt, 3))
    np.testing.assert_array_equal(confusion_matrix(pred, gt, 3),
                                  [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    for seed in range(5):
        p, g = random_maps(seed, 4, shape=(5, 6))
        np.testing.assert_array_equal(confusion_matrix(p, g, 4), naive_confusion(p, g, 4))
    # other integer dtypes, and no ignore value at all
    p, g = random_maps(9, 3, shape=(4, 4), p_ignore=0)
    np.testing.assert_array_equal(confusion_matrix(p.astype(np.int32), g.astype(np.int64), 3,
                                                   ignore=None), naive_confusion(p, g, 3))


def test_label_pair_counts_hold_the_confusion_matrix_and_the_extra_bins() -> None:
    pred, gt = random_maps(4, 5)
    gt[0, 0, :3] = 7  # out-of-range values land in the last bin
    pred[1, 2, :2] = 200
    counts = label_pair_counts(pred, gt, 5)
    assert counts.shape == (7, 7) and counts.sum() == pred.size
    keep = (gt < 5) & (pred < 5)
    np.testing.assert_array_equal(counts[:5, :5], confusion_matrix(pred[keep], gt[keep], 5))
    assert counts[5].sum() == (gt == 255).sum() and counts[:, 5].sum() == (pred == 255).sum()
    assert counts[6].sum() == 3 and counts[:, 6].sum() == 2
    with pytest.raises(TypeError):
        label_pair_counts(pred.astype(np.int32), gt, 5)


def test_bad_values_and_shapes_are_errors() -> None:
    with pytest.raises(ValueError, match=r"0\.\.2"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((2, 3)), 3)
    with pytest.raises(ValueError):
        metrics_from_confusion(np.zeros((2, 3)))


@pytest.mark.parametrize("seed,c", [(0, 2), (5, 4), (6, 8)])
def test_metrics_match_sklearn_and_torchmetrics(seed: int, c: int) -> None:
    pred, gt = random_maps(seed, c)
    gt[gt == c - 1] = 0  # a class absent from the ground truth...
    pred[pred == c - 1] = 0  # ...and from the prediction: its IoU is undefined
    m = metrics_from_confusion(confusion_matrix(pred, gt, c))
    keep = (pred != 255) & (gt != 255)
    p, g = pred[keep].astype(np.int64), gt[keep].astype(np.int64)
    labels = list(range(c))
    iou = jaccard_score(g, p, labels=labels, average=None, zero_division=0)
    iou[c - 1] = np.nan  # sklearn says 0 for an empty union; we say undefined
    np.testing.assert_allclose(m["iou"], iou, rtol=0, atol=1e-12, equal_nan=True)
    prec = precision_score(g, p, labels=labels, average=None, zero_division=np.nan)
    rec = recall_score(g, p, labels=labels, average=None, zero_division=np.nan)
    np.testing.assert_allclose(m["precision"], prec, atol=1e-12, equal_nan=True)
    np.testing.assert_allclose(m["recall"], rec, atol=1e-12, equal_nan=True)
    assert m["pixel_accuracy"] == pytest.approx(accuracy_score(g, p), abs=1e-12)
    tm = MulticlassJaccardIndex(c, average="macro")(torch.from_numpy(p), torch.from_numpy(g))
    assert m["miou"] == pytest.approx(float(tm), abs=1e-6)
    assert m["miou"] == pytest.approx(np.nanmean(iou), abs=1e-12)
    np.testing.assert_array_equal(m["gt_pixels"], np.bincount(g, minlength=c))
    np.testing.assert_array_equal(m["pred_pixels"], np.bincount(p, minlength=c))


def test_miou_present_leaves_out_classes_only_predicted() -> None:
    # class 2 is predicted but absent from the ground truth: IoU 0, in miou, not miou_present
    cm = np.array([[5, 0, 1], [0, 4, 0], [0, 0, 0]])
    m = metrics_from_confusion(cm)
    np.testing.assert_allclose(m["iou"], [5 / 6, 1.0, 0.0])
    assert m["miou"] == pytest.approx((5 / 6 + 1 + 0) / 3)
    assert m["miou_present"] == pytest.approx((5 / 6 + 1) / 2)
    assert m["pixel_accuracy"] == pytest.approx(9 / 10)
    assert np.isnan(m["recall"][2]) and m["precision"][2] == 0
    empty = metrics_from_confusion(np.zeros((2, 2), np.int64))
    assert np.isnan(empty["miou"]) and np.isnan(empty["pixel_accuracy"])


def test_foreground_iou_is_the_mean_over_foreground_classes_in_the_union() -> None:
    cm = np.array([[10, 2, 0], [1, 3, 0], [0, 0, 0]])
    assert foreground_iou(cm) == pytest.approx(3 / (4 + 5 - 3))
    assert np.isnan(foreground_iou(np.array([[4, 0], [0, 0]])))


def test_accumulator_sums_images_and_counts_coverage() -> None:
    acc = ConfusionAccumulator(3)
    maps = [random_maps(s, 3, shape=(9, 11)) for s in range(4)]
    for pred, gt in maps:
        acc.update(pred, gt)
    pred = np.stack([m[0] for m in maps])
    gt = np.stack([m[1] for m in maps])
    np.testing.assert_array_equal(acc.confusion, confusion_matrix(pred, gt, 3))
    valid = gt != 255
    out = acc.compute()
    assert out["coverage"] == pytest.approx(((pred != 255) & valid).sum() / valid.sum())
    assert out["images"] == 4
    other = ConfusionAccumulator(3)
    other.merge(acc)
    other.merge(acc)
    np.testing.assert_array_equal(other.confusion, 2 * acc.confusion)
    assert other.compute()["coverage"] == pytest.approx(out["coverage"])
    with pytest.raises(ValueError):
        other.merge(ConfusionAccumulator(2))


def naive_leakage(pred, context, gt, c):
    """Per-pixel loop: for each class, context pixels (1..254) not of that class in the gt."""
    labelled, counted = [0] * c, [0] * c
    for p, x, g in zip(pred.reshape(-1).tolist(), context.reshape(-1).tolist(),
                       gt.reshape(-1).tolist(), strict=True):
        if x in (0, 255) or g == 255:
            continue
        for k in range(c):
            if g != k:
                counted[k] += 1
                labelled[k] += p == k
    return np.array([labelled, counted])


@pytest.mark.parametrize("seed,c", [(0, 2), (1, 3), (2, 5)])
def test_context_counts_match_a_naive_loop(seed: int, c: int) -> None:
    from pseudolabel.evaluate.metrics import context_counts, context_leakage

    pred, gt = random_maps(seed, c)
    rng = np.random.default_rng(seed + 10)
    context = rng.choice(np.array([0, 1, 2, 255], np.uint8), pred.shape, p=[0.5, 0.2, 0.2, 0.1])
    counts = context_counts(pred, context, c, gt)
    expected = naive_leakage(pred, context, gt, c)
    np.testing.assert_array_equal(counts, expected)
    share = context_leakage(counts)
    np.testing.assert_allclose(share, expected[0] / expected[1])
    # without ground truth every context pixel counts for every class
    no_gt = context_counts(pred, context, c)
    inside = (context != 0) & (context != 255)
    assert (no_gt[1] == inside.sum()).all()
    np.testing.assert_array_equal(no_gt[0], [((pred == k) & inside).sum() for k in range(c)])


def test_context_leakage_edge_cases() -> None:
    from pseudolabel.evaluate.metrics import context_counts, context_leakage

    pred = np.array([[1, 1, 255, 0]], np.uint8)
    context = np.array([[1, 0, 1, 1]], np.uint8)
    gt = np.array([[0, 0, 0, 1]], np.uint8)
    counts = context_counts(pred, context, 2, gt)
    # class 1: context pixels 0, 2 (pixel 3 is smoke in the gt): one labelled, one unsure
    np.testing.assert_array_equal(counts, [[1, 1], [1, 2]])
    assert context_leakage(counts)[1] == 0.5
    assert np.isnan(context_leakage(np.zeros((2, 2), np.int64))).all()
    with pytest.raises(ValueError):
        context_counts(pred, context[:, :3], 2)
