"""Alignment and distillation losses against naive loop formulas; metrics against sklearn."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score

from pseudolabel.data.augment import AugmentConfig, augment, crop_box
from pseudolabel.train.losses import (
    ALIGN_LOSSES,
    cam_distillation,
    logit_distillation,
    negative_cam_loss,
    positive_weights,
)
from pseudolabel.train.metrics import classification_metrics
from pseudolabel.train.optim import lr_factor


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-8))


def naive_global(s: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean([1 - _cos(s[b].ravel(), t[b].ravel()) for b in range(len(s))]))


def naive_spatial(s: np.ndarray, t: np.ndarray) -> float:
    vals = [1 - _cos(s[b, :, i, j], t[b, :, i, j])
            for b in range(s.shape[0]) for i in range(s.shape[2]) for j in range(s.shape[3])]
    return float(np.mean(vals))


def naive_gram_mse(s: np.ndarray, t: np.ndarray) -> float:
    """C×C cosine-similarity matrices between channels when C matches, else HW×HW over locations."""
    total, count = 0.0, 0
    for b in range(s.shape[0]):
        if s.shape[1] == t.shape[1]:
            vs = [s[b, c].ravel() for c in range(s.shape[1])]
            vt = [t[b, c].ravel() for c in range(t.shape[1])]
        else:
            vs = [s[b, :, i, j] for i in range(s.shape[2]) for j in range(s.shape[3])]
            vt = [t[b, :, i, j] for i in range(t.shape[2]) for j in range(t.shape[3])]
        for p in range(len(vs)):
            for q in range(len(vs)):
                total += (_cos(vs[p], vs[q]) - _cos(vt[p], vt[q])) ** 2
                count += 1
    return total / count


@pytest.mark.parametrize(("name", "naive"), [("global", naive_global),
                                             ("spatial", naive_spatial),
                                             ("channel", naive_gram_mse)])
@pytest.mark.parametrize("t_channels", [4, 3])
def test_alignment_losses_match_naive_loops(name, naive, t_channels) -> None:
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(2, 4, 3, 5, generator=gen, dtype=torch.float64)
    t = torch.randn(2, t_channels, 3, 5, generator=gen, dtype=torch.float64)
    loss_cls = ALIGN_LOSSES.get(name)
    if loss_cls.needs_same_channels and t_channels != 4:
        return  # needs the projector; tested in test_nets
    got = float(loss_cls()(s, t))
    assert got == pytest.approx(naive(s.numpy(), t.numpy()), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("name", ["global", "spatial", "channel"])
def test_alignment_loss_is_zero_for_identical_and_positive_scaled_maps(name) -> None:
    s = torch.randn(2, 4, 3, 3)
    loss = ALIGN_LOSSES.get(name)()
    assert float(loss(s, s)) == pytest.approx(0.0, abs=1e-5)
    assert float(loss(s, 3.0 * s)) == pytest.approx(0.0, abs=1e-5)
    if name == "channel":  # a Gram matrix is blind to the sign, not to the structure
        assert float(loss(s, -s)) == pytest.approx(0.0, abs=1e-5)
        assert float(loss(s, torch.randn(2, 4, 3, 3))) > 0.05
    else:
        assert float(loss(s, -s)) == pytest.approx(2.0, abs=1e-5)


def test_registry_names_and_unknown_name() -> None:
    from pseudolabel.errors import BadInputError

    assert {"global", "spatial", "channel"} <= set(ALIGN_LOSSES.names())
    with pytest.raises(BadInputError, match="unknown alignment loss"):
        ALIGN_LOSSES.get("nope")


def test_logit_distillation_is_scaled_bernoulli_kl() -> None:
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(3, 4, generator=gen), torch.randn(3, 4, generator=gen)
    T = 2.0
    p = 1 / (1 + np.exp(-t.numpy() / T))
    q = 1 / (1 + np.exp(-s.numpy() / T))
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    assert float(logit_distillation(s, t, T)) == pytest.approx(kl.mean() * T**2, rel=1e-4)
    assert float(logit_distillation(t, t, T)) == pytest.approx(0.0, abs=1e-6)


def test_cam_distillation_matches_naive_and_ignores_unlabelled_classes() -> None:
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(2, 3, 4, 4, generator=gen)
    t = torch.randn(2, 3, 4, 4, generator=gen)
    labels = torch.tensor([[1, 0, 1], [0, 0, 1]])
    total, n = 0.0, 0
    for b in range(2):
        for k in range(3):
            if labels[b, k]:
                sn = np.maximum(s[b, k].numpy(), 0)
                tn = np.maximum(t[b, k].numpy(), 0)
                sn, tn = sn / (sn.max() + 1e-5), tn / (tn.max() + 1e-5)
                total += ((sn - tn) ** 2).mean()
                n += 1
    assert float(cam_distillation(s, t, labels)) == pytest.approx(total / n, rel=1e-5)
    # a teacher on a coarser grid is resized to the student's
    coarse = cam_distillation(s, t[:, :, ::2, ::2], labels)
    assert torch.isfinite(coarse)


def test_negative_cam_loss_is_softplus_of_max_pooled_logit_of_absent_classes() -> None:
    gen = torch.Generator().manual_seed(0)
    cam = torch.randn(3, 2, 4, 5, generator=gen)
    bias = torch.tensor([0.3, -0.7])
    logits = cam.mean((2, 3)) + bias
    labels = torch.tensor([[1, 0], [0, 0], [1, 1]])
    terms = [math.log1p(math.exp(float(cam[b, k].max() + bias[k])))
             for b in range(3) for k in range(2) if not labels[b, k]]
    got = negative_cam_loss(cam, logits, labels)
    assert float(got) == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    assert float(negative_cam_loss(cam, logits, torch.ones(3, 2))) == 0.0
    # the gradient reaches the bias through the logits and only the peak of each absent map
    cam.requires_grad_(True)
    negative_cam_loss(cam, cam.mean((2, 3)) + bias, labels).backward()
    assert cam.grad is not None and float(cam.grad[2].abs().sum()) == 0.0
    assert int((cam.grad[1, 0] != 0).sum()) == 1


def test_positive_weights_are_negatives_over_positives() -> None:
    y = np.array([[1, 0], [1, 0], [0, 1], [1, 0]])
    np.testing.assert_allclose(positive_weights(y).numpy(), [1.0, 3.0])


def test_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (40, 3))
    y[:, 2] = 0  # a class without positives: AP undefined, left out of the mAP
    scores = np.clip(y * 0.3 + rng.random((40, 3)) * 0.8, 0, 1)
    m = classification_metrics(scores, y, ["a", "b", "c"])
    for k, name in enumerate("ab"):
        assert m["ap"][name] == pytest.approx(average_precision_score(y[:, k], scores[:, k]))
    assert math.isnan(m["ap"]["c"])
    assert m["mAP"] == pytest.approx((m["ap"]["a"] + m["ap"]["b"]) / 2)
    for k, name in enumerate("abc"):
        ref = f1_score(y[:, k], scores[:, k] >= 0.5, zero_division=0)
        assert m["f1"][name] == pytest.approx(ref)


def test_lr_schedule_warmup_then_cosine_to_floor() -> None:
    f = [lr_factor(s, 100, 10, "cosine", 0.01) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[100] == pytest.approx(0.01)
    assert f[55] == pytest.approx(0.01 + 0.99 * 0.5, rel=1e-6)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert lr_factor(50, 100, 0, "poly", 0.0) == pytest.approx(0.5**0.9)


def test_augment_is_deterministic_and_crops_inside_the_image() -> None:
    cfg = AugmentConfig(crop_scale=(0.3, 0.6))
    gen = torch.Generator().manual_seed(3)
    for _ in range(50):
        top, left, h, w = crop_box(30, 50, cfg, gen)
        assert top >= 0 and top + h <= 30 and left >= 0 and left + w <= 50
        assert 0.25 * 1500 <= h * w <= 0.65 * 1500
    img = torch.rand(3, 30, 50)
    a = augment(img, 16, cfg, torch.Generator().manual_seed(5))
    b = augment(img, 16, cfg, torch.Generator().manual_seed(5))
    assert a.shape == (3, 16, 16) and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    flip_only = AugmentConfig(crop_scale=(1, 1), crop_ratio=(1.0, 1.0), hflip=1.0,
                              brightness=0, contrast=0, saturation=0)
    sq = torch.rand(3, 16, 16)
    torch.testing.assert_close(augment(sq, 16, flip_only, torch.Generator()), sq.flip(-1))
