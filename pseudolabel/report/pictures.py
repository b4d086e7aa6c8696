"""Pictures for people: CAM heat maps, mask overlays, thumbnails, data URIs."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from pseudolabel.data.masks import IGNORE, voc_palette

# anchors of a perceptually ordered dark-blue -> yellow map (viridis-like), interpolated to 256
_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
                    dtype=np.float64)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map (H, W) values in [0, 1] to (H, W, 3) uint8 colours."""
    v = np.clip(np.nan_to_num(values.astype(np.float64)), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (v - lo)[..., None]
    out = _ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac
    return out.round().astype(np.uint8)


def resize(arr: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    """Resize an (H, W) or (H, W, 3) array to ``size`` = (height, width)."""
    h, w = size
    if arr.shape[:2] == (h, w):
        return arr
    if arr.dtype != np.uint8:
        img = Image.fromarray(arr.astype(np.float32), mode="F")
        return np.asarray(img.resize((w, h), Image.NEAREST if nearest else Image.BILINEAR))
    img = Image.fromarray(arr)
    return np.asarray(img.resize((w, h), Image.NEAREST if nearest else Image.BILINEAR))


def heatmap_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """(H, W, 3) uint8 image blended with a (h, w) CAM in [0, 1] resized to it."""
    cam = resize(cam.astype(np.float32), image.shape[:2])
    heat = colormap(cam).astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + heat * alpha).round().astype(np.uint8)


def mask_overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """(H, W, 3) image with an (H, W) class mask painted in the VOC palette; 255 hatched grey."""
    mask = resize(mask, image.shape[:2], nearest=True)
    colours = voc_palette()[mask].astype(np.float32)
    out = image.astype(np.float32)
    painted = mask > 0
    out[painted] = out[painted] * (1 - alpha) + colours[painted] * alpha
    ignore = mask == IGNORE
    yy, xx = np.nonzero(ignore)
    stripe = ((yy + xx) // 3) % 2 == 0
    out[yy[stripe], xx[stripe]] = (200, 200, 200)
    return out.round().astype(np.uint8)


def thumbnail(arr: np.ndarray, max_side: int) -> np.ndarray:
    h, w = arr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return arr
    return resize(arr, (max(1, round(h * scale)), max(1, round(w * scale))),
                  nearest=arr.ndim == 2)


def data_uri(arr: np.ndarray, fmt: str = "PNG") -> str:
    """An RGB or gray uint8 array as a base64 ``data:`` URI for <img src>."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, optimize=fmt == "PNG")
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"
