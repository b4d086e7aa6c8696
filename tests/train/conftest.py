"""A tiny learnable data set made by hand: class "red" = a red square, "blue" = a blue disc."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)

CLASSES = ("red", "blue")


def make_toy_dataset(root: Path, n: int = 12, size: int = 40, seed: int = 0,
                     classes: tuple[str, ...] = CLASSES) -> Path:
    """ROOT with JPEGImages/, classes.txt, labels.csv; every class has positives."""
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    rows = ["image,labels"]
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        img = np.full((size, size, 3), 90, np.uint8) + rng.integers(0, 30, (size, size, 3),
                                                                     dtype=np.uint8)
        labels = []
        if i % 3 != 2:  # red square
            y, x = rng.integers(2, size // 2, 2)
            img[y:y + size // 3, x:x + size // 3] = (230, 20, 20)
            labels.append("red")
        if i % 3 != 0:  # blue disc
            cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2] = (20, 20, 230)
            labels.append("blue")
        Image.fromarray(img).save(root / "JPEGImages" / f"img{i:03d}.png")
        rows.append(f"img{i:03d},{' '.join(labels)}")
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def make_toy():
    """The toy data set maker, for tests that need their own variant."""
    return make_toy_dataset


@pytest.fixture(scope="session")
def toy_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_toy_dataset(tmp_path_factory.mktemp("toy"))
