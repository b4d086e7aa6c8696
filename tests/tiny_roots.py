"""Hand-made tiny VOC roots for tests (imported by tests/conftest.py and by tests directly)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pseudolabel.data.masks import write_mask

# id -> class names; the default tiny data set: one image per class, both, and a negative
DEFAULT_LABELS: dict[str, tuple[str, ...]] = {
    "img0": ("cat",),
    "img1": ("dog",),
    "img2": ("cat", "dog"),
    "img3": (),
}


def tiny_mask(labels: Sequence[int], size: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 mask: class ``c`` (0-based) fills vertical band ``c`` of the right half."""
    h, w = size
    mask = np.zeros((h, w), np.uint8)
    for j, c in enumerate(labels):
        x0 = w // 2 + j * (w // 4)
        mask[h // 4: 3 * h // 4, x0: x0 + w // 4] = c + 1
    return mask


def write_voc_root(
    root: Path,
    *,
    classes: Sequence[str] = ("cat", "dog"),
    labels: Mapping[str, Sequence[str]] | None = None,
    size: tuple[int, int] = (32, 40),
    masks: bool = True,
    label_format: str = "csv",
    background_line: bool = False,
    splits: Mapping[str, Sequence[str]] | None = None,
    suffix: str = ".png",
    seed: int = 0,
) -> Path:
    """A VOC-style root with random RGB images and masks consistent with the labels.

    Args:
        labels: id -> class names (default :data:`DEFAULT_LABELS`).
        label_format: "csv" (labels.csv) or "xml" (Annotations/<id>.xml).
        splits: split name -> ids, written to ImageSets/Segmentation (default: none).
        suffix: image file suffix (".png" is lossless, so pixel checks are exact).
    """
    labels = dict(DEFAULT_LABELS if labels is None else labels)
    index = {c: i for i, c in enumerate(classes)}
    rng = np.random.default_rng(seed)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    lines = (["background"] if background_line else []) + list(classes)
    (root / "classes.txt").write_text("\n".join(lines) + "\n")
    for image_id, names in labels.items():
        img = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "JPEGImages" / f"{image_id}{suffix}")
        if masks:
            write_mask(root / "SegmentationClass" / f"{image_id}.png",
                       tiny_mask([index[n] for n in names if n in index], size))
    if label_format == "csv":
        rows = [f"{i},{' '.join(names)}" for i, names in labels.items()]
        (root / "labels.csv").write_text("image,labels\n" + "\n".join(rows) + "\n")
    elif label_format == "xml":
        (root / "Annotations").mkdir(exist_ok=True)
        for image_id, names in labels.items():
            objects = "".join(f"<object><name>{n}</name></object>" for n in names)
            (root / "Annotations" / f"{image_id}.xml").write_text(
                f"<annotation><filename>{image_id}{suffix}</filename>{objects}</annotation>")
    else:
        raise ValueError(f"label_format must be csv or xml, got {label_format!r}")
    for name, ids in (splits or {}).items():
        folder = root / "ImageSets" / "Segmentation"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root
