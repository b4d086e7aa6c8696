"""Pictures for people: CAM heat maps, mask overlays, thumbnails, data URIs."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from pseudolabel.data.masks import IGNORE

#: Anchors of a perceptually ordered dark-blue -> yellow map (viridis-like), interpolated.
CAM_ANCHORS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
                       dtype=np.float64)


def colormap(values: np.ndarray) -> np.ndarray:
    """Map (H, W) values in [0, 1] to (H, W, 3) uint8 colours."""
    v = np.clip(np.nan_to_num(values.astype(np.float64)), 0.0, 1.0) * (len(CAM_ANCHORS) - 1)
    lo = np.floor(v).astype(int).clip(0, len(CAM_ANCHORS) - 2)
    frac = (v - lo)[..., None]
    out = CAM_ANCHORS[lo] * (1 - frac) + CAM_ANCHORS[lo + 1] * frac
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


#: Fill colours of mask values 1, 2, ... (cycled): saturated hues rare in photos (magenta first,
#: not VOC's dark red, which vanishes on red brick); each region also gets a black-and-white
#: outline, visible on any colour.
OVERLAY_COLOURS = np.array([[255, 0, 255], [0, 255, 255], [255, 255, 0], [0, 255, 0],
                            [255, 128, 0], [0, 128, 255], [255, 0, 128], [128, 255, 0]],
                           dtype=np.uint8)


def overlay_colour(value: int) -> tuple[int, int, int]:
    """The RGB fill colour of mask value ``value`` (>= 1)."""
    r, g, b = OVERLAY_COLOURS[(int(value) - 1) % len(OVERLAY_COLOURS)].tolist()
    return r, g, b


def _edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inside, outside) boundary pixels of the labelled regions (1..254) of an (H, W) mask.

    inside: a labelled pixel with a 4-neighbour of another value; outside: an unlabelled or
    ignored pixel with a labelled 4-neighbour.
    """
    labelled = (mask > 0) & (mask != IGNORE)
    h, w = mask.shape
    values, flags = np.pad(mask, 1, mode="edge"), np.pad(labelled, 1, mode="edge")
    differs = np.zeros(mask.shape, bool)
    near_label = np.zeros(mask.shape, bool)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        differs |= values[dy:dy + h, dx:dx + w] != mask
        near_label |= flags[dy:dy + h, dx:dx + w]
    return labelled & differs, ~labelled & near_label


def mask_overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) image with an (H, W) class mask drawn on it so that it shows on any colour.

    Each class value v (1..254) is filled with ``overlay_colour(v)`` at ``alpha`` and outlined
    white inside, black outside; 255 (ignore) is hatched grey. The mask is resized (nearest) to
    the image: make thumbnails first, so the outline stays one pixel wide.
    """
    mask = resize(mask, image.shape[:2], nearest=True)
    out = image.astype(np.float32)
    painted = (mask > 0) & (mask != IGNORE)
    colours = OVERLAY_COLOURS[(mask.astype(np.int64) - 1) % len(OVERLAY_COLOURS)]
    out[painted] = out[painted] * (1 - alpha) + colours[painted] * alpha
    ignore = mask == IGNORE
    yy, xx = np.nonzero(ignore)
    stripe = ((yy + xx) // 3) % 2 == 0
    out[yy[stripe], xx[stripe]] = (200, 200, 200)
    inside, outside = _edges(mask)
    out[inside] = (255, 255, 255)
    out[outside] = (0, 0, 0)
    return out.round().astype(np.uint8)


def thumbnail(arr: np.ndarray, max_side: int) -> np.ndarray:
    """``arr`` scaled down (never up) so that its longer side is at most ``max_side``."""
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
