"""Bilinear resizing of maps in numpy against torch's interpolate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pseudolabel.ops import resize_maps, resize_matrix


@pytest.mark.parametrize(("src", "dst"), [((4, 6), (32, 48)), ((7, 5), (30, 61)),
                                          ((16, 16), (16, 16)), ((20, 30), (8, 9)), ((1, 1), (5, 3))])
def test_resize_matches_torch_bilinear(src: tuple[int, int], dst: tuple[int, int]) -> None:
    maps = np.random.default_rng(0).random((3, *src)).astype(np.float32)
    ours = resize_maps(maps, dst)
    ref = F.interpolate(torch.from_numpy(maps)[None], size=dst, mode="bilinear",
                        align_corners=False)[0].numpy()
    assert ours.shape == (3, *dst) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, atol=1e-5)


def test_resize_matrix_rows_sum_to_one() -> None:
    for n_in, n_out in [(3, 10), (10, 3), (1, 4)]:
        np.testing.assert_allclose(resize_matrix(n_in, n_out).sum(1), 1.0, rtol=1e-6)
