"""Image loading that any photo a user has will survive, or fail with one clear line.

EXIF orientation is applied; grayscale, RGBA/LA (composited on black), palette, CMYK and 16-bit
images become 8-bit RGB. PIL's decompression-bomb guard stays on: an image over its limit is a
:class:`BadInputError`, not a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pseudolabel.errors import BadInputError

#: The image suffixes pseudolabel reads, matched in any case (``.JPG``, ``.Jpg``). Not ``.gif``:
#: segmentation frameworks (OpenCV in mmsegmentation) cannot read it.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _open(path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # The guard warns between MAX_IMAGE_PIXELS and 2x; treat both as errors.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            img.load()
    except FileNotFoundError:
        raise BadInputError("image file is missing", path=path,
                            fix="add the file or remove its id from the split file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadInputError(
            "image is larger than PIL's decompression-bomb limit",
            path=path,
            fix="downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file",
        ) from None
    except UnidentifiedImageError:
        raise BadInputError("not an image PIL can read", path=path,
                            fix="re-export it as JPEG or PNG, or remove it") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"cannot decode image ({exc})", path=path,
                            fix="the file is truncated or corrupt: re-export it or remove it") from None
    return img


def to_rgb(img: Image.Image) -> np.ndarray:
    """A PIL image of any mode as an (H, W, 3) uint8 array (EXIF orientation applied)."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        gray = ((arr - lo) / (hi - lo or 1.0) * 255.0 + 0.5).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.array(img.convert("RGB"), dtype=np.uint8)  # a writable copy (asarray: read-only)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file as (H, W, 3) uint8 RGB; :class:`BadInputError` on anything wrong."""
    path = Path(path)
    with _open(path) as img:
        arr = to_rgb(img)
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise BadInputError("image is empty (0 pixels)", path=path)
    return arr


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an image after EXIF orientation, reading the header only."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            w, h = img.size
            try:
                orientation = img.getexif().get(0x0112, 1)
            except Exception:
                orientation = 1
    except FileNotFoundError:
        raise BadInputError("image file is missing", path=path) from None
    except Image.DecompressionBombError:
        raise BadInputError(
            "image is larger than PIL's decompression-bomb limit", path=path,
            fix="downscale it, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise BadInputError("not an image PIL can read", path=path,
                            fix="re-export it as JPEG or PNG, or remove it") from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has one of :data:`IMAGE_SUFFIXES` (in any case)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def same_stem_files(folder: Path, image_id: str) -> list[Path]:
    """The files ``folder/<id>.*`` (any suffix), sorted."""
    path = folder / image_id
    if not path.parent.is_dir():
        return []
    prefix = path.name + "."
    return sorted(p for p in path.parent.iterdir()
                  if p.name.startswith(prefix) and "." not in p.name[len(prefix):] and p.is_file())


def find_image(folder: Path, image_id: str) -> Path | None:
    """The file ``folder/<id>.<ext>`` for the first image suffix (in any case) that exists."""
    for suffix in IMAGE_SUFFIXES:
        for variant in (suffix, suffix.upper()):
            p = folder / (image_id + variant)
            if p.is_file():
                return p
    images = [p for p in same_stem_files(folder, image_id) if is_image_file(p)]  # .Jpg
    return min(images, key=lambda p: IMAGE_SUFFIXES.index(p.suffix.lower())) if images else None


def image_folder(root: str | os.PathLike) -> Path:
    """The folder holding the images: ROOT/JPEGImages when it exists, else ROOT itself."""
    root = Path(root)
    if not root.is_dir():
        raise BadInputError("image folder does not exist", path=root,
                            fix="give --images the data set root the CAMs were made from")
    return root / "JPEGImages" if (root / "JPEGImages").is_dir() else root
