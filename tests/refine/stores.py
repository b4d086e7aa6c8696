"""Small CAM stores for the refine tests, written with the store's own writer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pseudolabel.store import CamRecord, StoreHeader, write_store


def write_cam_store(path: Path, classes: Sequence[str], records: Sequence[Mapping],
                    config: Mapping | None = None) -> Path:
    """A store at ``path`` from dicts with id, image_size, class_indices, cams {key: (k, h, w)}.

    Keys are ``<model>/<layer>``; every record must hold every model x layer combination.
    """
    keys = sorted(records[0]["cams"]) if records else []
    models = tuple(dict.fromkeys(k.split("/", 1)[0] for k in keys))
    layers = tuple(dict.fromkeys(k.split("/", 1)[1] for k in keys))
    header = StoreHeader(dict(config or {}), tuple(classes), models, layers, (1.0,),
                         {layer: 8 for layer in layers})
    out = []
    for r in records:
        idx = np.asarray(r["class_indices"], np.int64).reshape(-1)
        labels = np.zeros(len(classes), np.uint8)
        labels[idx] = 1
        out.append(CamRecord(r["id"], tuple(r["image_size"]), labels, idx,
                             np.full(len(idx), 0.9, np.float32),
                             {k: np.asarray(v, np.float32) for k, v in r["cams"].items()}))
    path.unlink(missing_ok=True)
    return write_store(path, header, out)


def write_store_and_images(folder: Path, classes: Sequence[str], records: Sequence[Mapping],
                           seed: int = 1) -> dict:
    """FOLDER/cams.h5 and FOLDER/root/JPEGImages/<id>.png (random RGB at each record's size).

    Returns {"store", "root", "records", "tmp": folder}.
    """
    store = write_cam_store(folder / "cams.h5", classes, records)
    root = folder / "root"
    rng = np.random.default_rng(seed)
    for r in records:
        path = root / "JPEGImages" / (r["id"] + ".png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*r["image_size"], 3), dtype=np.uint8)).save(path)
    return {"store": store, "root": root, "records": list(records), "tmp": folder}
