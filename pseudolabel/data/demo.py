"""A synthetic smoke data set with the motivating bias: smoke rises from chimneys.

Every image is a landscape: a sky gradient over a ground band, a few clouds (white, soft: the
look-alikes of smoke), sometimes a chimney standing on the ground and, in the ``smoke`` images, a
plume of smoke: soft, semi-transparent, with noisy edges, rising and drifting with the wind. Most
plumes start at a chimney, and chimneys also stand in some clean images, but less often: a
classifier can score ``smoke`` from the chimney, and its CAMs then light up the chimney. The
ground-truth mask marks smoke where its opacity is above :data:`SMOKE_OPACITY`; the only label is
``smoke`` (the chimney is a distractor, not a class).

    OUT/JPEGImages/demo_00000.jpg ...
    OUT/SegmentationClass/demo_00000.png   VOC palette: 0 background, 1 smoke
    OUT/SegmentationContext/demo_00000.png context: 1 chimney pixels not covered by smoke, else 0
    OUT/classes.txt                        smoke
    OUT/labels.csv                         image,labels (empty for images without smoke)
    OUT/ImageSets/Segmentation/{train,val}.txt

Image ``i`` depends only on ``(seed, i)``: a larger ``n_images`` adds images, it does not change
the first ones.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pseudolabel.config import save_config
from pseudolabel.data.config import DemoConfig
from pseudolabel.data.masks import CONTEXT_DIR, write_mask
from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_path, atomic_write
from pseudolabel.runtime import claim_output

log = logging.getLogger(__name__)

CLASSES: tuple[str, ...] = ("smoke",)
SMOKE_OPACITY = 0.3  # ground truth = smoke where the plume's opacity is above this
P_SMOKE = 0.5  # share of images with smoke
P_CHIMNEY_GIVEN_SMOKE = 0.85  # plumes that rise from a chimney
P_CHIMNEY_GIVEN_CLEAN = 0.3  # clean images that show a chimney anyway
VAL_SHARE = 0.2
CONFIG_NAME = "demo-data.yaml"


@dataclass(frozen=True)
class Scene:
    """One rendered image: (H, W, 3) uint8 RGB, (H, W) uint8 mask, and what it shows.

    context: (H, W) uint8, 1 on the chimney's pixels outside the smoke mask (the confounder the
    classifier may learn instead of the smoke), 0 elsewhere.
    """

    image: np.ndarray
    mask: np.ndarray
    smoke: bool
    chimney: bool
    context: np.ndarray


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) float32 smooth noise in about [-1, 1]: a ``cells``-grid upsampled bilinearly."""
    grid = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)


def _blobs(yy: np.ndarray, xx: np.ndarray, cy: np.ndarray, cx: np.ndarray, ry: np.ndarray,
           rx: np.ndarray, amp: np.ndarray) -> np.ndarray:
    """Max over n anisotropic Gaussians: (H, W) float32 from centres/radii/amplitudes (n,)."""
    if len(cy) == 0:
        return np.zeros((yy.shape[0], xx.shape[1]), np.float32)
    d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2  # (H, W, n) by broadcasting
    return (amp * np.exp(-0.5 * d)).max(axis=-1).astype(np.float32)


def render_scene(size: int, rng: np.random.Generator, *, smoke: bool, chimney: bool) -> Scene:
    """Draw one landscape of ``size`` x ``size`` pixels (see the module docstring)."""
    s = float(size)
    yy = np.arange(size, dtype=np.float32)[:, None, None]
    xx = np.arange(size, dtype=np.float32)[None, :, None]
    y2, x2 = yy[..., 0], xx[..., 0]

    # sky: a vertical gradient with a random tint; ground below a slightly tilted horizon
    horizon = s * rng.uniform(0.62, 0.8) + (x2 - s / 2) * rng.uniform(-0.08, 0.08)
    top = np.array([rng.uniform(40, 90), rng.uniform(90, 140), rng.uniform(170, 230)], np.float32)
    low = np.array([rng.uniform(160, 200), rng.uniform(185, 215), rng.uniform(215, 245)],
                   np.float32)
    t = np.clip(y2 / np.maximum(horizon, 1.0), 0.0, 1.0)[..., None]
    img = top * (1 - t) + low * t
    ground_col = np.array([rng.uniform(60, 110), rng.uniform(80, 130), rng.uniform(40, 70)],
                          np.float32)
    texture = 18.0 * _smooth_noise(rng, size, max(4, size // 8))[..., None]
    ground = (y2 >= horizon)[..., None]
    img = np.where(ground, ground_col + texture, img)

    # clouds: soft white ellipses in the sky (look-alikes of smoke)
    n_clouds = int(rng.integers(0, 4))
    k = n_clouds * 4
    centre_y = np.repeat(rng.uniform(0.05, 0.45, n_clouds) * s, 4)
    centre_x = np.repeat(rng.uniform(0.0, 1.0, n_clouds) * s, 4)
    cy = centre_y + rng.normal(0, 0.03 * s, k)
    cx = centre_x + rng.normal(0, 0.08 * s, k)
    cloud = _blobs(yy, xx, cy, cx, rng.uniform(0.03, 0.06, k) * s, rng.uniform(0.06, 0.14, k) * s,
                   rng.uniform(0.6, 0.95, k))
    cloud *= np.clip(1 + 0.3 * _smooth_noise(rng, size, max(4, size // 10)), 0, None)
    cloud = np.clip(cloud, 0, 1)[..., None] * (y2 < horizon)[..., None]
    img = img * (1 - cloud) + np.float32(rng.uniform(235, 252)) * cloud

    # chimney: a dark brick column standing on the ground
    base_x = rng.uniform(0.2, 0.8) * s
    half_w = max(1.5, rng.uniform(0.03, 0.05) * s)
    chimney_top = s * rng.uniform(0.3, 0.5)
    standing = np.zeros((size, size), bool)
    if chimney:
        column = (np.abs(x2 - base_x) <= half_w) & (y2 >= chimney_top) & (y2 <= horizon + 2)
        brick = np.array([rng.uniform(90, 140), rng.uniform(40, 60), rng.uniform(30, 50)],
                         np.float32)
        stripes = np.where((y2.astype(np.int64) // max(2, size // 32)) % 2 == 0, 1.0, 0.8)
        img = np.where(column[..., None], brick * stripes[..., None], img)
        cap = (np.abs(x2 - base_x) <= half_w * 1.4) & (np.abs(y2 - chimney_top) <= max(1, s / 64))
        img = np.where(cap[..., None], np.float32(40.0), img)
        standing = column | cap

    # smoke: a plume of growing, fading blobs along a path bent by the wind, noisy edges
    opacity = np.zeros((size, size), np.float32)
    if smoke:
        start_y = chimney_top if chimney else horizon.mean() - rng.uniform(0, 0.1) * s
        start_x = base_x if chimney else rng.uniform(0.2, 0.8) * s
        n = 14
        u = np.linspace(0.0, 1.0, n)
        rise = rng.uniform(0.25, 0.45) * s
        wind = rng.uniform(-0.45, 0.45) * s
        cy = start_y - rise * u
        cx = start_x + wind * u**1.5 + rng.normal(0, 0.01 * s, n)
        radius = (0.025 + 0.09 * u) * s * rng.uniform(0.8, 1.2)
        plume = _blobs(yy, xx, cy, cx, radius, radius * rng.uniform(1.0, 1.5),
                       (0.95 - 0.5 * u) * rng.uniform(0.8, 1.0))
        edges = _smooth_noise(rng, size, max(6, size // 6)) + 0.5 * _smooth_noise(
            rng, size, max(12, size // 3))
        opacity = np.clip(plume * (1.0 + 0.45 * edges), 0.0, 0.95)
        shade = np.float32(rng.uniform(105, 185)) + 20.0 * _smooth_noise(rng, size, 8)
        alpha = np.sqrt(opacity)[..., None]  # dense core, soft fringe
        img = img * (1 - alpha) + shade[..., None] * alpha

    img = img + rng.normal(0.0, 4.0, img.shape)
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    mask = (opacity > SMOKE_OPACITY).astype(np.uint8)
    context = (standing & (mask == 0)).astype(np.uint8)
    return Scene(image, mask, bool(mask.any()), chimney, context)


def _draw(seed: int, index: int, size: int) -> Scene:
    """Image ``index`` of the data set made with ``seed``."""
    rng = np.random.default_rng([seed, index])
    smoke = bool(rng.random() < P_SMOKE)
    chimney = bool(rng.random() < (P_CHIMNEY_GIVEN_SMOKE if smoke else P_CHIMNEY_GIVEN_CLEAN))
    return render_scene(size, rng, smoke=smoke, chimney=chimney)


def make_demo_data(out: str | os.PathLike, n_images: int = 300, size: int = 128,
                   seed: int = 0) -> Path:
    """Write the synthetic smoke data set (see the module docstring) to ``out``; returns ``out``.

    Deterministic in ``(n_images, size, seed)``; every file is written atomically, so a rerun
    after an interruption ends with the same files.
    """
    cfg = DemoConfig(n_images=n_images, size=size, seed=seed)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInputError("output is a file, not a folder", path=out,
                            fix="choose a new folder for the demo data")
    image_dir, mask_dir = out / "JPEGImages", out / "SegmentationClass"
    context_dir = out / CONTEXT_DIR
    for d in (image_dir, mask_dir, context_dir, out / "ImageSets" / "Segmentation"):
        d.mkdir(parents=True, exist_ok=True)
    ids, rows = [], []
    for i in range(cfg.n_images):
        image_id = f"demo_{i:05d}"
        scene = _draw(cfg.seed, i, cfg.size)
        with atomic_path(image_dir / f"{image_id}.jpg") as tmp:
            Image.fromarray(scene.image).save(tmp, format="JPEG", quality=92)
        write_mask(mask_dir / f"{image_id}.png", scene.mask)
        write_mask(context_dir / f"{image_id}.png", scene.context)
        ids.append(image_id)
        rows.append(f"{image_id},{'smoke' if scene.smoke else ''}")
    n_val = max(1, round(cfg.n_images * VAL_SHARE))
    split_rng = np.random.default_rng([cfg.seed, 1 << 30])
    val = set(split_rng.choice(cfg.n_images, n_val, replace=False).tolist())
    splits = {"train": [x for i, x in enumerate(ids) if i not in val],
              "val": [x for i, x in enumerate(ids) if i in val]}
    for name, members in splits.items():
        with atomic_write(out / "ImageSets" / "Segmentation" / f"{name}.txt", "w") as fh:
            fh.write("\n".join(members) + "\n")
    with atomic_write(out / "classes.txt", "w") as fh:
        fh.write("\n".join(CLASSES) + "\n")
    with atomic_write(out / "labels.csv", "w") as fh:
        fh.write("image,labels\n" + "\n".join(rows) + "\n")
    n_smoke = sum(r.endswith("smoke") for r in rows)
    train_smoke = sum(rows[i].endswith("smoke") for i in range(cfg.n_images) if i not in val)
    if train_smoke == 0:  # a handful of images can draw no smoke at all: train refuses that
        log.warning("demo data: none of the %d training images shows smoke, so `pseudolabel "
                    "train` will refuse the data set; fix: --n-images 20 or more, or another "
                    "--seed", len(splits["train"]))
    log.info("demo data: %d images (%d with smoke) of %d px in %s", cfg.n_images, n_smoke,
             cfg.size, out)
    return out


def run(config: DemoConfig, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """The ``demo-data`` stage: :func:`make_demo_data` plus the resolved config beside it.

    A root holding anything else (a data set of one's own, demo data made with other options)
    is refused unless ``overwrite``, which empties it first; the same demo data again is fine.
    """
    with claim_output(out, record=(CONFIG_NAME,), resolved=config, overwrite=overwrite,
                      option="OUT") as claim:
        path = make_demo_data(claim.path, config.n_images, config.size, config.seed)
        save_config(config, path / CONFIG_NAME)
    return path
