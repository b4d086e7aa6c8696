"""Write a tiny COCO-format data set and box-shaped pseudo-masks for it.

    python examples/coco/make_coco.py OUT [--n 6] [--size 64]

OUT/images/<name>.png      the images (a grey background with coloured triangles)
OUT/instances.json         COCO instances: categories with non-contiguous ids (3 smoke,
                           7 chimney), one polygon annotation per triangle, one crowd RLE
OUT/box_masks/<name>.png   a weak "pseudo-mask" per image: every object's bounding box filled
                           with its class value (the classes are the categories sorted by id,
                           value = position + 1), as a box-supervised method would start from

A right triangle fills half its bounding box, so the box masks score a foreground IoU near 0.5
against the polygons: see examples/coco/run.sh.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pseudolabel.data import write_mask

CATEGORIES = [{"id": 3, "name": "smoke"}, {"id": 7, "name": "chimney"}]
VALUE = {3: 1, 7: 2}  # mask value of each category id (sorted by id, 1-based)
COLOURS = {3: (200, 200, 210), 7: (120, 60, 40)}


def rle_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE of a (H, W) bool mask (column-major runs, starting with zeros)."""
    flat = mask.T.reshape(-1).astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return runs if flat[0] == 0 else [0, *runs]


def make(out: Path, n: int = 6, size: int = 64, seed: int = 0) -> Path:
    """Write images, instances.json and box_masks/ under ``out``; returns ``out``."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(n):
        name = f"scene_{i:03d}.png"
        img = Image.new("RGB", (size, size), (90, 110, 130))
        draw = ImageDraw.Draw(img)
        box_mask = np.zeros((size, size), np.uint8)
        for cat in (3, 7) if i % 3 else (3,):  # every third image shows smoke only
            x0, y0 = (int(v) for v in rng.integers(2, size // 2, 2))
            w, h = (int(v) for v in rng.integers(size // 4, size // 2 - 2, 2))
            tri = [x0, y0, x0 + w, y0 + h, x0, y0 + h]  # a right triangle: half of its box
            draw.polygon(tri, fill=COLOURS[cat])
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": cat, "segmentation": [tri], "iscrowd": 0,
                                "bbox": [x0, y0, w, h], "area": w * h / 2})
            box_mask[y0:y0 + h, x0:x0 + w] = VALUE[cat]
        if i == 0:  # a crowd region (uncompressed RLE): ignored (255) by evaluate
            crowd = np.zeros((size, size), bool)
            crowd[-6:, -6:] = True
            annotations.append({"id": len(annotations) + 1, "image_id": 1, "category_id": 3,
                                "segmentation": {"size": [size, size],
                                                 "counts": rle_counts(crowd)},
                                "iscrowd": 1, "bbox": [size - 6, size - 6, 6, 6], "area": 36})
        img.save(out / "images" / name)
        write_mask(out / "box_masks" / f"{Path(name).stem}.png", box_mask)
        images.append({"id": i + 1, "file_name": name, "height": size, "width": size})
    coco = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (out / "instances.json").write_text(json.dumps(coco))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--size", type=int, default=64)
    a = p.parse_args()
    print(make(a.out, a.n, a.size))


if __name__ == "__main__":
    main()
