"""Naive O(N^2) numpy references of the dense Gaussian and bilateral kernels (test helpers)."""

from __future__ import annotations

import numpy as np


def naive_kernel(features: np.ndarray) -> np.ndarray:
    """(N, N) exact ``exp(-|f_i - f_j|^2 / 2)`` of (N, d) features."""
    diff = features[:, None, :] - features[None, :, :]
    return np.exp(-0.5 * (diff**2).sum(-1))


def naive_features(image: np.ndarray, sxy: float, srgb: float | None) -> np.ndarray:
    """(N, d) features of an (H, W, 3) image: x/sxy, y/sxy (and rgb/srgb), row-major pixels."""
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width]
    feats = [xs[..., None] / sxy, ys[..., None] / sxy]
    if srgb is not None:
        feats.append(image.astype(np.float64) / srgb)
    return np.concatenate(feats, -1).reshape(height * width, -1)
