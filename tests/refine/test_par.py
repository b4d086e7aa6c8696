"""PAR against a naive per-pixel loop, and its behaviour on a blurred step edge."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pseudolabel.refine import create_refiner, initial_state, to_mask
from pseudolabel.refine.par import ParParams, PixelAdaptiveRefinement, pixel_adaptive_refine


def naive_par(image: np.ndarray, probs: np.ndarray, p: ParParams) -> np.ndarray:
    """PAR written pixel by pixel: (H, W, 3) image, (C, H, W) probs -> (C, H, W)."""
    height, width = image.shape[:2]
    image = image.astype(np.float64)
    offsets = [(d * dy, d * dx) for d in p.dilations
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    dist = np.array([np.hypot(dy, dx) for dy, dx in offsets])
    pos = -(dist / dist.std(ddof=1) / p.w_color) ** 2
    pos = np.exp(pos - pos.max())
    pos /= pos.sum()
    weights = np.zeros((height, width, len(offsets)))
    for y in range(height):
        for x in range(width):
            nb = np.array([image[min(max(y + dy, 0), height - 1), min(max(x + dx, 0), width - 1)]
                           for dy, dx in offsets])  # (n, 3)
            std = nb.std(axis=0, ddof=1)
            logits = -(((nb - image[y, x]) / (std + 1e-8) / p.w_color) ** 2).mean(axis=1)
            colour = np.exp(logits - logits.max())
            colour /= colour.sum()
            weights[y, x] = (colour + p.w_position * pos) / (1 + p.w_position)
    q = probs.astype(np.float64)
    for _ in range(p.iterations):
        new = np.zeros_like(q)
        for y in range(height):
            for x in range(width):
                for n, (dy, dx) in enumerate(offsets):
                    yy, xx = min(max(y + dy, 0), height - 1), min(max(x + dx, 0), width - 1)
                    new[:, y, x] += weights[y, x, n] * q[:, yy, xx]
        q = new
    return q


def step_case(height: int = 16, width: int = 32, edge: int = 14, shift: int = 3, blur: float = 3.0):
    """Dark left / bright right image (edge at column ``edge``) and a blurred two-class score
    whose 0.5 crossing sits ``shift`` columns right of the colour edge."""
    rng = np.random.default_rng(0)
    image = np.full((height, width, 3), 40.0)
    image[:, edge:] = 200.0
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    cols = np.arange(width, dtype=np.float64)
    fg = 1.0 / (1.0 + np.exp(-(cols - (edge + shift - 0.5)) / blur))
    probs = np.stack([1.0 - fg, fg])[:, None, :].repeat(height, axis=1).astype(np.float32)
    truth = np.zeros((height, width), np.int64)
    truth[:, edge:] = 1
    return image, probs, truth


def test_matches_a_naive_loop() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    image[:, 5:] //= 3
    probs = rng.random((3, 7, 9)).astype(np.float32) + 0.05
    probs /= probs.sum(0)
    params = ParParams(dilations=(1, 2, 4), iterations=3)
    want = naive_par(image, probs, params)
    got = pixel_adaptive_refine(image, probs, params).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    module = PixelAdaptiveRefinement(params)(torch.from_numpy(image).permute(2, 0, 1), probs)
    np.testing.assert_allclose(module.numpy(), got, atol=1e-6)


def test_sharpens_a_blurred_step_toward_the_colour_edge() -> None:
    image, probs, truth = step_case()
    out = pixel_adaptive_refine(image, probs, ParParams()).numpy()
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-5)
    assert (probs.argmax(0) == truth).mean() < 0.95  # the input boundary is off by 3 columns
    assert (out.argmax(0) == truth).all()  # moved onto the colour edge
    # Sharper: the score jumps at the colour edge instead of ramping over many columns.
    jump_in = probs[1, :, 14] - probs[1, :, 13]
    jump_out = out[1, :, 14] - out[1, :, 13]
    assert (jump_in < 0.1).all() and (jump_out > 0.6).all()
    assert np.abs(out[1] - truth).mean() < np.abs(probs[1] - truth).mean()


def test_preserves_constants_and_normalisation() -> None:
    """Propagation is a convex combination: constant maps stay, probabilities stay normalised."""
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    const = np.stack([np.full((10, 12), 0.25), np.full((10, 12), 0.75)]).astype(np.float32)
    np.testing.assert_allclose(pixel_adaptive_refine(image, const).numpy(), const, atol=1e-5)
    probs = rng.random((4, 10, 12)).astype(np.float32)
    out = pixel_adaptive_refine(image, probs).numpy()
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-5)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_scale_of_the_image_does_not_matter() -> None:
    image, probs, _ = step_case()
    a = pixel_adaptive_refine(image, probs, ParParams(iterations=4))
    b = pixel_adaptive_refine(image.astype(np.float32) / 255.0 * 2.0 - 1.0, probs,
                              ParParams(iterations=4))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_refiner_on_a_state_keeps_background_row_first() -> None:
    image, probs, truth = step_case()
    state = initial_state({"a": probs[1:]}, "a", np.array([5]), probs.shape[1:], image=image)
    out = create_refiner("par").refine(state)
    assert out.scores.shape == (2, *truth.shape)
    mask = to_mask(out)
    np.testing.assert_array_equal(mask, np.where(truth == 1, 6, 0))


@pytest.mark.parametrize("spec", ["par:iterations=-1", "par:w_color=0", "par:dilations=[]"])
def test_bad_parameters(spec: str) -> None:
    from pseudolabel.errors import BadInputError

    with pytest.raises(BadInputError):
        create_refiner(spec)
