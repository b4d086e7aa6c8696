"""Input conversion: image layouts, probabilities, ignored pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pseudolabel.ops import image_tensor, probabilities, uniform_where_ignored


def test_image_tensor_reads_both_layouts() -> None:
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    hwc = image_tensor(image)
    chw = image_tensor(torch.from_numpy(image).permute(2, 0, 1))
    assert hwc.shape == (3, 5, 7) and hwc.dtype == torch.float32
    torch.testing.assert_close(hwc, chw)
    np.testing.assert_array_equal(hwc[1].numpy(), image[..., 1])
    with pytest.raises(ValueError, match="image"):
        image_tensor(np.zeros((5, 7)))


def test_probabilities_normalise_and_clip() -> None:
    scores = np.array([[[2.0, 0.0]], [[2.0, 0.0]], [[-1.0, 0.0]]], np.float32)  # (3, 1, 2)
    p = probabilities(scores)
    np.testing.assert_allclose(p[:, 0, 0].numpy(), [0.5, 0.5, 0.0])  # negatives count 0
    np.testing.assert_allclose(p[:, 0, 1].numpy(), [1 / 3] * 3)  # all-zero pixel: uniform
    clipped = probabilities(scores, clip=0.1)
    assert clipped.min() > 0 and torch.allclose(clipped.sum(0), torch.ones(1, 2))
    ignore = np.array([[True, False]])
    u = uniform_where_ignored(probabilities(np.array([[[1.0, 1.0]], [[0.0, 3.0]]])), ignore)
    np.testing.assert_allclose(u[:, 0, 0].numpy(), [0.5, 0.5])
    np.testing.assert_allclose(u[:, 0, 1].numpy(), [0.25, 0.75])
