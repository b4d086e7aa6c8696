"""threshold and fusion against naive per-pixel references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pseudolabel.errors import BadInputError
from pseudolabel.refine import create_refiner, initial_state, to_mask


def _state(k: int = 2, size: tuple[int, int] = (9, 11), seed: int = 0):
    rng = np.random.default_rng(seed)
    cams = {"a": rng.random((k, *size)).astype(np.float32),
            "b": rng.random((k, 3, 4)).astype(np.float32),
            "c": rng.random((k, 5, 6)).astype(np.float32)}
    return initial_state(cams, "a", np.arange(k) * 3 + 1, size)


def _naive_mask(scores: np.ndarray, classes: np.ndarray, bg) -> np.ndarray:
    """Per pixel: background if bg(pixel scores) wins, else the best class; ties to background."""
    _, height, width = scores.shape
    out = np.zeros((height, width), np.uint8)
    for y in range(height):
        for x in range(width):
            fg = scores[1:, y, x]
            b = bg(fg)
            if b is None:
                out[y, x] = 255
            elif len(fg) and fg.max() > b:
                out[y, x] = classes[int(np.argmax(fg))] + 1
    return out


@pytest.mark.parametrize("t", [0.2, 0.5, 0.9])
def test_constant_background(t: float) -> None:
    state = _state()
    mask = to_mask(create_refiner(f"threshold:t={t}").refine(state))
    np.testing.assert_array_equal(mask, _naive_mask(state.scores, state.classes, lambda fg: t))


@pytest.mark.parametrize("alpha", [1.0, 4.0, 16.0])
def test_power_background(alpha: float) -> None:
    state = _state(seed=1)
    mask = to_mask(create_refiner(f"threshold:background=power,alpha={alpha}").refine(state))
    ref = _naive_mask(state.scores, state.classes, lambda fg: (1 - fg.max()) ** alpha)
    np.testing.assert_array_equal(mask, ref)
    # A larger alpha lowers the background: foreground only grows.
    lower = to_mask(create_refiner(f"threshold:background=power,alpha={alpha * 2}").refine(state))
    assert ((lower > 0) >= (mask > 0)).all()


def test_confident_band_is_ignored() -> None:
    state = _state(seed=2)
    mask = to_mask(create_refiner("threshold:lo=0.3,hi=0.7").refine(state))

    def bg(fg):
        m = fg.max()
        return None if 0.3 <= m < 0.7 else (0.5)

    np.testing.assert_array_equal(mask, _naive_mask(state.scores, state.classes, bg))
    assert (mask == 255).any() and (mask == 0).any() and ((mask > 0) & (mask < 255)).any()


def test_threshold_keeps_earlier_ignore() -> None:
    state = _state()
    ignore = np.zeros(state.size, bool)
    ignore[0, :3] = True
    out = create_refiner("threshold").refine(state.replace(ignore=ignore))
    assert to_mask(out)[0, :3].tolist() == [255, 255, 255]


def _torch_resize(maps: np.ndarray, size) -> np.ndarray:
    return F.interpolate(torch.from_numpy(maps)[None], size=size, mode="bilinear",
                         align_corners=False)[0].numpy()


def _naive_norm(m: np.ndarray, how: str) -> np.ndarray:
    out = np.empty_like(m)
    for c in range(m.shape[0]):
        lo, hi = m[c].min(), m[c].max()
        out[c] = m[c] / hi if how == "max" else ((m[c] - lo) / (hi - lo) if how == "minmax" else m[c])
    return out


@pytest.mark.parametrize("mode", ["mean", "max", "product", "weighted"])
@pytest.mark.parametrize("norm", ["max", "minmax", "none"])
def test_fusion_matches_a_naive_reference(mode: str, norm: str) -> None:
    state = _state(seed=3)
    keys, weights = ("b", "c"), (1.0, 3.0)
    spec = f"fusion:mode={mode},norm={norm},keys=[b,c]" + (",weights=[1,3]" if mode == "weighted" else "")
    out = create_refiner(spec).refine(state)
    grid = (5, 6)  # the finest of the two keys
    stack = np.stack([_torch_resize(_naive_norm(state.cams[k], norm), grid) for k in keys])
    ops = {"mean": lambda s: s.mean(0), "max": lambda s: s.max(0),
           "product": lambda s: np.sqrt(s[0] * s[1]),
           "weighted": lambda s: (weights[0] * s[0] + weights[1] * s[1]) / sum(weights)}
    want = _torch_resize(ops[mode](stack).astype(np.float32), state.size)
    np.testing.assert_allclose(out.scores[1:], want, atol=1e-5)
    np.testing.assert_allclose(out.scores[0], 1 - want.max(0), atol=1e-5)


def test_fusion_coarsest_grid_and_all_keys() -> None:
    state = _state(seed=4)
    out = create_refiner("fusion:grid=coarsest,norm=none").refine(state)
    stack = np.stack([_torch_resize(state.cams[k], (3, 4)) for k in ("a", "b", "c")])
    np.testing.assert_allclose(out.scores[1:], _torch_resize(stack.mean(0), state.size),
                               atol=1e-5)


def test_fusion_of_one_key_with_max_norm_is_the_cam() -> None:
    state = _state(seed=5)
    out = create_refiner("fusion:keys=[a],norm=none").refine(state)
    np.testing.assert_allclose(out.scores, state.scores, atol=1e-6)


def test_fusion_errors_name_the_keys() -> None:
    state = _state()
    with pytest.raises(BadInputError, match="zzz"):
        create_refiner("fusion:keys=[a,zzz]").refine(state)
    with pytest.raises(BadInputError, match="3 keys"):
        create_refiner("fusion:mode=weighted,weights=[1,2]").refine(state)
