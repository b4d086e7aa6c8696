"""The permutohedral lattice against the exact dense Gaussian (naive numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ops.naive import naive_features, naive_kernel
from pseudolabel.ops import (
    PermutohedralLattice,
    SymmetricNormalised,
    image_tensor,
    lattice_filter,
    pixel_grid,
)


@pytest.mark.parametrize(("sxy", "srgb"), [(5.0, 20.0), (2.0, 30.0), (80.0, 13.0)])
def test_lattice_approximates_the_dense_gaussian(sxy: float, srgb: float) -> None:
    rng = np.random.default_rng(0)
    image = np.zeros((12, 12, 3))
    image[:, 6:] = 200
    image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255)
    feats = naive_features(image, sxy, srgb)
    values = rng.random((144, 2))
    lattice = PermutohedralLattice(torch.tensor(feats, dtype=torch.float32))
    out = lattice(torch.tensor(values, dtype=torch.float32)).numpy()
    ones = lattice(torch.ones(144, 1)).numpy()
    k = naive_kernel(feats)
    want = k @ values / k.sum(1, keepdims=True)
    got = out / ones
    assert np.abs(got - want).mean() < 0.01
    assert np.abs(got - want).max() < 0.06


def test_lattice_hash_paths_agree() -> None:
    """Packed int64 codes and row-wise unique give the same lattice."""
    rng = np.random.default_rng(1)
    feats = torch.tensor(rng.normal(size=(100, 4)) * 3, dtype=torch.float32)
    values = torch.tensor(rng.random((100, 3)), dtype=torch.float32)
    packed = PermutohedralLattice(feats)
    rows = PermutohedralLattice(feats, max_code=0)
    assert packed.packed and not rows.packed
    assert packed.num_vertices == rows.num_vertices
    torch.testing.assert_close(packed(values), rows(values))


def test_lattice_of_identical_points_is_exact() -> None:
    """All points at one place: every kernel value is 1, so the filter is a plain mean."""
    feats = torch.full((20, 3), 0.37)
    values = torch.rand(20, 2, generator=torch.Generator().manual_seed(0))
    out = lattice_filter(feats.T.reshape(3, 4, 5))(values.T.reshape(2, 4, 5))
    norm = lattice_filter(feats.T.reshape(3, 4, 5))(torch.ones(1, 4, 5))
    torch.testing.assert_close(out / norm, values.mean(0)[:, None, None].expand(2, 4, 5))


def test_lattice_folds_the_normalisation_and_weight() -> None:
    rng = np.random.default_rng(14)
    image = rng.integers(0, 256, (9, 12, 3)).astype(np.float32)
    feats = torch.cat([pixel_grid(9, 12) / 4.0, image_tensor(image) / 30.0])
    x = torch.from_numpy(rng.random((2, 9, 12)).astype(np.float32))
    want = 3.0 * SymmetricNormalised(lattice_filter(feats), (9, 12))(x)
    torch.testing.assert_close(lattice_filter(feats, normalise=True, weight=3.0)(x), want,
                               atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="normalise"):
        lattice_filter(feats, weight=3.0)
