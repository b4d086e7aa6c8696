"""Masks as 8-bit palette PNGs (PASCAL VOC palette): value = class index, 255 = ignore."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_path

IGNORE = 255
#: ROOT/SegmentationContext/<id>.png: optional context masks (0 = not context, 1..254 = context
#: such as a chimney, 255 = unknown) that ``evaluate`` scores as "context leakage".
CONTEXT_DIR = "SegmentationContext"


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: (n, 3) uint8, entry 255 is (224, 224, 192)."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


_PALETTE = voc_palette().reshape(-1).tolist()


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write an (H, W) uint8 mask as a VOC-palette PNG, atomically."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {mask.shape}")
    img = Image.fromarray(mask.astype(np.uint8, copy=False), mode="P")
    img.putpalette(_PALETTE)
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", compress_level=1)
    return path


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a palette or grayscale PNG mask as (H, W) uint8 class indices (palette index = value)."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "L"):
                arr = np.array(img, dtype=np.uint8)  # a copy: np.asarray would be read-only
            elif img.mode in ("I;16", "I;16B", "I;16L", "I"):
                raw = np.asarray(img)
                if raw.max(initial=0) > 255:
                    raise BadInputError("16-bit mask holds values above 255", path=path,
                                        fix="save masks as 8-bit PNG with class indices")
                arr = raw.astype(np.uint8)
            elif img.mode == "1":
                arr = np.array(img, dtype=np.uint8)
            else:
                raise BadInputError(
                    f"mask has colour mode {img.mode}, not class indices",
                    path=path,
                    fix="save masks as palette ('P') or grayscale ('L') PNGs whose values are class indices",
                )
    except FileNotFoundError:
        raise BadInputError("mask file is missing", path=path) from None
    except BadInputError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"cannot decode mask ({exc})", path=path,
                            fix="re-export it as a PNG of class indices") from None
    return np.ascontiguousarray(arr)
