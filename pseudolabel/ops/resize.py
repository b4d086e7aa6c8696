"""Resizing of score maps in numpy (no torch): bilinear as matrix products.

The sampling of ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``
(half-pixel centres, no antialiasing), so that numpy and torch code paths give the same maps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["resize_maps", "resize_matrix"]


def resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 linear-interpolation weights, half-pixel centres.

    Same sampling as ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``
    (upsampling and downsampling without antialiasing).
    """
    scale = n_in / n_out
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w1 = src - i0
    m = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(m, (rows, i0), 1.0 - w1)
    np.add.at(m, (rows, i1), w1)
    return m.astype(np.float32)


def resize_maps(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (C, h, w) maps to (C, H, W) float32 as two matrix products."""
    maps = np.asarray(maps, dtype=np.float32)
    _, h, w = maps.shape
    height, width = size
    if (h, w) == (height, width):
        return maps.copy()
    ry = resize_matrix(h, height)  # (H, h)
    rx = resize_matrix(w, width)  # (W, w)
    out = np.matmul(ry, maps)  # (C, H, w)
    return np.matmul(out, rx.T)  # (C, H, W)
