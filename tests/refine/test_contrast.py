"""contrast: colour posterior of what the class's images show and the negatives never do."""

from __future__ import annotations

import numpy as np
import pytest

from pseudolabel.refine import initial_state, to_mask
from pseudolabel.refine.api import create_chain, refine_states
from pseudolabel.refine.contrast import colour_codes, contrast_table, smooth_histogram


def naive_table(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, float]:
    """The module docstring's formula with plain loops (sigma = 0)."""
    p, n = pos / pos.sum(), neg / neg.sum()
    pairs = sorted((p[i] / n[i] if n[i] > 0 else np.inf, p[i]) for i in range(len(p)) if p[i] > 0)
    total, acc = sum(w for _, w in pairs), 0.0
    for ratio, w in pairs:
        acc += w
        if acc >= 0.5 * total:
            share = ratio
            break
    table = np.zeros(len(p))
    for i in range(len(p)):
        if p[i] > 0:
            r = p[i] / n[i] if n[i] > 0 else np.inf
            table[i] = min(max(1 - share / r, 0.0), 1.0)
    return table, share


def test_table_matches_the_formula_computed_naively() -> None:
    rng = np.random.default_rng(0)
    pos = rng.integers(0, 5, 4**3).astype(float)
    neg = rng.integers(0, 5, 4**3).astype(float)
    table, share = contrast_table(pos, neg, sigma=0.0)
    expected, expected_share = naive_table(pos, neg)
    assert share == pytest.approx(expected_share)
    np.testing.assert_allclose(table, expected, atol=1e-6)


def test_smoothing_is_a_separable_gaussian_and_codes_are_cells() -> None:
    hist = np.zeros((5, 5, 5))
    hist[2, 2, 2] = 1.0
    out = smooth_histogram(hist, 1.0)
    g = np.exp(-0.5 * np.arange(-2, 3) ** 2)
    k = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    g = g / k.sum()  # the kernel is normalised over its radius of 3 cells
    np.testing.assert_allclose(out, g[:, None, None] * g[None, :, None] * g[None, None, :],
                               rtol=1e-6)
    image = np.array([[[0, 0, 0], [255, 255, 255], [128, 64, 0]]], np.uint8)
    np.testing.assert_array_equal(colour_codes(image, 4), [[0, 63, (2 * 4 + 1) * 4 + 0]])


def test_the_class_look_beats_the_biased_cam_on_demo_scenes() -> None:
    """Demo scenes (chimneys under 85 % of the plumes, in 30 % of the clean images) with a CAM
    that sits on the chimney: the colour posterior ranks smoke above chimney above the rest, and
    contrast -> gmm (3 components over the data set) finds the smoke and drops most of the
    chimney, with no threshold."""
    from pseudolabel.data.demo import render_scene

    rng = np.random.default_rng(1)
    states, scenes = [], []
    for i in range(100):
        smoke = i % 2 == 0
        scene = render_scene(64, rng, smoke=smoke,
                             chimney=bool(rng.random() < (0.85 if smoke else 0.3)))
        k = int(scene.smoke)
        cam = np.repeat(scene.context[None].astype(np.float32), k, axis=0)  # the biased CAM
        states.append(initial_state({"s": cam}, "s", np.zeros(k, np.int64), (64, 64),
                                    image=scene.image, image_id=f"im{i}"))
        scenes.append(scene)

    def scores(chain: list[str]) -> tuple[float, float]:
        masks = [to_mask(s) for s in refine_states(chain, states)]
        inter = union = leaked = context = 0
        for m, scene in zip(masks, scenes, strict=True):
            if not scene.smoke:
                assert not (m == 1).any()  # a negative gets no class
                continue
            inter += ((m == 1) & (scene.mask == 1)).sum()
            union += ((m == 1) | (scene.mask == 1)).sum()
            leaked += ((m == 1) & (scene.context == 1)).sum()
            context += scene.context.sum()
        return inter / union, leaked / context

    cam_iou, cam_leak = scores(["threshold"])
    iou, leak = scores(["contrast", "gmm:components=3,scope=dataset"])
    assert cam_leak > 0.9 and iou > cam_iou + 0.3 and leak < 0.2, (cam_iou, cam_leak, iou, leak)
    post = [s.scores[-1] for s in refine_states(["contrast"], states)]  # (negatives: unused)
    mean = [np.mean(np.concatenate([p[pick(s)] for p, s in zip(post, scenes, strict=True)
                                    if s.smoke]))
            for pick in (lambda s: s.mask == 1, lambda s: s.context == 1,
                         lambda s: (s.mask == 0) & (s.context == 0))]
    assert mean[0] > mean[1] + 0.2 and mean[1] > mean[2] + 0.2, mean


def test_without_negatives_warns_and_passes_the_scores(caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    state = initial_state({"s": rng.random((1, 3, 3)).astype(np.float32)}, "s",
                          np.zeros(1, np.int64), (24, 24), image=image, image_id="a")
    (out,) = list(refine_states(["contrast"], [state]))
    np.testing.assert_array_equal(out.scores, state.scores)
    assert "no image labelled with no class" in caplog.text
    with pytest.raises(Exception, match="bins"):
        create_chain(["contrast:bins=1"])
