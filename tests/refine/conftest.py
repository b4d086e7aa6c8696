"""Shared fixtures of the refine tests: synthetic states with known foreground."""

from __future__ import annotations

import numpy as np
import pytest

from pseudolabel.refine import RefineState, initial_state


def blob_cam(size: tuple[int, int], box: tuple[int, int, int, int], *, seed: int = 0,
             noise: float = 0.05) -> np.ndarray:
    """(h, w) float32 CAM in [0, 1]: high (~0.8-1) inside ``box`` (y0, y1, x0, x1), low outside."""
    rng = np.random.default_rng(seed)
    cam = np.clip(rng.normal(0.08, noise, size), 0.0, 1.0)
    y0, y1, x0, x1 = box
    cam[y0:y1, x0:x1] = np.clip(rng.normal(0.85, noise, (y1 - y0, x1 - x0)), 0.0, 1.0)
    return (cam / cam.max()).astype(np.float32)


def make_state(k: int, size: tuple[int, int] = (24, 32), *, seed: int = 0,
               keys: tuple[str, ...] = ("student/features", "teacher/features")) -> RefineState:
    """A state with ``k`` classes (blobs in different places), two CAM keys and an image."""
    height, width = size
    classes = np.arange(k, dtype=np.int64) * 2  # 0, 2, 4, ...: not consecutive on purpose
    cams = {}
    for j, key in enumerate(keys):
        h, w = (height // 4, width // 4) if j == 0 else (height // 2, width // 2)
        maps = [blob_cam((h, w), (0, h // 2, (i * w) // max(k, 1), (i * w) // max(k, 1) + w // 3),
                         seed=seed + 10 * j + i) for i in range(k)]
        cams[key] = np.stack(maps) if maps else np.zeros((0, h, w), np.float32)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return initial_state(cams, keys[0], classes, size, image=image, image_id=f"img{seed}",
                         image_scores=np.full(k, 0.9, np.float32))


@pytest.fixture
def state_factory():
    return make_state
