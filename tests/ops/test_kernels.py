"""Gaussian, window, pooled and normalised kernels against naive dense numpy kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ops.naive import naive_features, naive_kernel
from pseudolabel.ops import (
    Downsampled,
    GaussianKernel,
    SymmetricNormalised,
    WindowKernel,
    image_tensor,
    resize_matrix,
    shifted_views,
    window_offsets,
)


@pytest.mark.parametrize(("size", "sigma", "block"), [((9, 11), 2.0, 64), ((9, 11), 1.0, 4),
                                                    ((13, 7), 3.0, 5), ((6, 6), 40.0, 64)])
def test_gaussian_kernel_is_the_dense_kernel(size: tuple[int, int], sigma: float, block: int) -> None:
    """Banded blocks (several and partial ones) give the dense Gaussian (truncated at 4 sigma)."""
    rng = np.random.default_rng(2)
    x = rng.random((2, *size)).astype(np.float32)
    k = naive_kernel(naive_features(np.zeros((*size, 3)), sigma, None))
    want = (x.reshape(2, -1) @ k.T).reshape(2, *size)
    got = GaussianKernel(size, sigma, block=block)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * want.max())


@pytest.mark.parametrize(("size", "block"), [((9, 11), 4), ((13, 7), 64), ((40, 33), 16)])
def test_gaussian_kernel_folds_the_normalisation_and_weight(size: tuple[int, int], block: int) -> None:
    """``normalise=True, weight=w``: ``w D^-1/2 K D^-1/2`` with D from the naive dense kernel."""
    rng = np.random.default_rng(13)
    x = rng.random((2, *size)).astype(np.float32)
    def axis(n: int) -> np.ndarray:  # 1-D Gaussian, truncated at 4 sigma = 12 px
        d = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])
        return np.exp(-0.5 * (d / 3.0) ** 2) * (d <= 12)

    k = np.kron(axis(size[0]), axis(size[1]))  # separable, row-major pixels
    norm = 1.0 / np.sqrt(k.sum(1))
    want = 2.5 * (x.reshape(2, -1) @ (norm[:, None] * k * norm[None, :]).T).reshape(2, *size)
    got = GaussianKernel(size, 3.0, block=block, normalise=True, weight=2.5)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("size", "factor"), [((8, 10), 2), ((9, 10), 2), ((12, 12), 3), ((10, 13), 4)])
def test_pool_is_the_block_mean(size: tuple[int, int], factor: int) -> None:
    """Even sizes with f = 2 take the strided fast path; every size agrees with avg_pool2d
    (partial blocks at the end averaged over their own pixels)."""
    x = torch.rand(3, *size, generator=torch.Generator().manual_seed(15))
    want = torch.nn.functional.avg_pool2d(x[None], factor, ceil_mode=True, count_include_pad=False)[0]
    torch.testing.assert_close(Downsampled.pool(x, factor), want)


def test_window_kernel_is_the_bilateral_kernel_within_the_window() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (8, 9, 3)).astype(np.float64)
    x = rng.random((2, 8, 9)).astype(np.float32)
    sxy, srgb, window = 3.0, 40.0, 5
    k = naive_kernel(naive_features(image, sxy, srgb))
    ys, xs = np.mgrid[0:8, 0:9]
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    inside = (np.abs(ys[:, None] - ys[None]) <= 2) & (np.abs(xs[:, None] - xs[None]) <= 2)
    want = (x.reshape(2, -1) @ (k * inside).T).reshape(2, 8, 9)
    kernel = WindowKernel(image_tensor(image) / srgb, sxy, window)
    np.testing.assert_allclose(kernel(torch.from_numpy(x)).numpy(), want, rtol=1e-4, atol=1e-5)


def test_downsampled_window_is_pool_filter_upsample() -> None:
    """``U K P``: block means (numpy), the window kernel on the pooled grid, bilinear upsampling
    (resize_matrix, itself checked against torch in test_resize)."""
    rng = np.random.default_rng(12)
    image = rng.integers(0, 256, (10, 13, 3)).astype(np.float32)
    x = rng.random((2, 10, 13)).astype(np.float32)
    f, (h, w) = 3, (4, 5)  # ceil(10 / 3), ceil(13 / 3)

    def pool(a: np.ndarray) -> np.ndarray:
        out = np.zeros((a.shape[0], h, w), np.float64)
        for i in range(h):
            for j in range(w):
                out[:, i, j] = a[:, i * f:(i + 1) * f, j * f:(j + 1) * f].mean(axis=(1, 2))
        return out

    small = pool(image.transpose(2, 0, 1)).transpose(1, 2, 0)
    k = naive_kernel(naive_features(small, 2.0 / f, 40.0))  # window 9 covers the 4x5 grid
    filtered = (pool(x).reshape(2, -1) @ k.T).reshape(2, h, w)
    want = resize_matrix(h, 10) @ filtered @ resize_matrix(w, 13).T
    kernel = WindowKernel(Downsampled.pool(image_tensor(image) / 40.0, f), 2.0 / f, 9)
    got = Downsampled(kernel, (10, 13), f)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_symmetric_normalisation_matches_naive() -> None:
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (6, 7, 3)).astype(np.float64)
    x = rng.random((3, 6, 7)).astype(np.float32)
    k = naive_kernel(naive_features(image, 2.0, 50.0))
    norm = 1.0 / np.sqrt(k.sum(1))
    want = (x.reshape(3, -1) @ (norm[:, None] * k * norm[None]).T).reshape(3, 6, 7)
    kernel = WindowKernel(image_tensor(image) / 50.0, 2.0, 13)  # covers the whole image: exact
    got = SymmetricNormalised(kernel, (6, 7))(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_window_offsets_and_shifted_views_are_clamped_neighbours() -> None:
    offsets = window_offsets(3)
    assert len(offsets) == 9 and (0, 0) in offsets and (-1, 1) in offsets
    x = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 4, 5)
    for (dy, dx), view in zip([(0, 0), (-2, 1), (3, -1)], shifted_views(x, [(0, 0), (-2, 1), (3, -1)]),
                              strict=True):
        rows = np.clip(np.arange(4) + dy, 0, 3)
        cols = np.clip(np.arange(5) + dx, 0, 4)
        np.testing.assert_array_equal(view.numpy(), x.numpy()[:, rows][:, :, cols])
