"""Images per second of ``pseudolabel refine`` per refiner, PNG writing included.

Synthetic CAM stores (four keys: student and teacher x features at stride 32 and layer3 at
stride 16; one present class per image, a soft blob) at 160 px and 512 px,
the whole stage (``pseudolabel.refine.stage.run``) timed from store to PNGs, and beside it the
same chain in memory in one process (``pseudolabel.refine.api``: store read, chain, mask; no
PNG), which tells the stage's I/O and worker overhead from the refiners' own cost.

    python benchmarks/refine_speed.py --workers 2 [--sizes 160,512] [--images 64]

The stores are written with ``pseudolabel.store.write_store`` (float16, gzip, like make-cams).
The images are grey-level noise (std 30) around a brighter blob: the ``crf`` default therefore
runs its appearance kernel at full size there (pooling would average the noise away; see
``crf:pool_tolerance``); ``crf:pool_tolerance=0`` shows the pooled speed.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pseudolabel.refine import REFINERS
from pseudolabel.refine.api import iter_states, refine_states, to_mask
from pseudolabel.refine.stage import RefineConfig, run
from pseudolabel.store import CamRecord, StoreHeader, write_store

log = logging.getLogger("refine_speed")

MODELS = ("student", "teacher")
STRIDES = {"features": 32, "layer3": 16}


def blob(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 soft blob in [0, 1] at a random place and scale, with noise."""
    height, width = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
    r = rng.uniform(0.1, 0.3) * min(height, width)
    m = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    m = np.clip(m + rng.normal(0, 0.05, size), 0, None)
    return (m / m.max()).astype(np.float32)


def make_synthetic(folder: Path, n: int, size: int, *, positive: float = 1.0,
                   seed: int = 0) -> tuple[Path, Path, list[dict]]:
    """A store of ``n`` records at ``size`` px plus ROOT/JPEGImages.

    Returns (store, root, truths): truths[i] is image i's (size, size) bool "true" smoke region.
    """
    rng = np.random.default_rng(seed)
    root = folder / "root"
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    records, truths = [], []
    for i in range(n):
        k = int(rng.random() < positive)
        full = blob((size, size), rng) if k else np.zeros((size, size), np.float32)
        cams = {}
        for model in MODELS:
            for layer, stride in STRIDES.items():
                h = size // stride
                small = np.asarray(Image.fromarray(full).resize((h, h), Image.BILINEAR))
                noisy = np.clip(small + rng.normal(0, 0.05, small.shape), 0, None)
                cams[f"{model}/{layer}"] = (noisy / max(noisy.max(), 1e-6))[None][:k].astype(
                    np.float32)
        image = (np.clip(full[..., None] * 120 + rng.normal(100, 30, (size, size, 3)), 0, 255)
                 .astype(np.uint8))
        Image.fromarray(image).save(root / "JPEGImages" / f"img{i:05d}.png", compress_level=1)
        idx = np.arange(k, dtype=np.int64)
        records.append(CamRecord(f"img{i:05d}", (size, size), np.array([k], np.uint8), idx,
                                 np.full(k, 0.9, np.float32), cams))
        truths.append(full > 0.5)
    header = StoreHeader({"synthetic": seed}, ("smoke",), MODELS, tuple(STRIDES), (1.0,), STRIDES)
    store = write_store(folder / f"cams{size}.h5", header, records)
    return store, root, truths


def time_chain(specs: Sequence[str], store: Path, root: Path, out: Path, workers: int) -> float:
    """Seconds of one complete stage run (a fresh MASK_DIR)."""
    start = time.perf_counter()
    run(RefineConfig(refiners=tuple(specs), workers=workers, chunk_size=8), store, out, root)
    return time.perf_counter() - start


def time_in_memory(specs: Sequence[str], store: Path, root: Path) -> float:
    """Seconds of the chain over every record in this process (masks made, not written)."""
    start = time.perf_counter()
    for state in refine_states(specs, iter_states(store, images=root)):
        to_mask(state)
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sizes", default="160,512")
    parser.add_argument("--images", type=int, default=48, help="images per store")
    parser.add_argument("--chains", default=None,
                        help="';'-separated chains of '>'-separated specs (default: each "
                             "registered refiner, gmm:input=cam+color and fusion>gmm)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("PSEUDOLABEL_NO_PROGRESS", "1")
    if args.chains:
        chains = [c.split(">") for c in args.chains.split(";")]
    else:
        chains = [[n] for n in REFINERS.names()] + [["gmm:input=cam+color"], ["fusion", "gmm"],
                                                     ["fusion", "gmm:scope=dataset"]]
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="refine-speed-") as tmp:
        stores = {s: make_synthetic(Path(tmp) / str(s), args.images, s) for s in sizes}
        for s in sizes:  # warm-up (file cache, first imports), untimed: else row 1 pays for it
            time_chain(chains[0], *stores[s][:2], Path(tmp) / f"warm-{s}", args.workers)
        for chain in chains:
            row = [" -> ".join(chain)]
            for s in sizes:
                store, root, _ = stores[s]
                out = Path(tmp) / f"out-{s}-{len(rows)}"
                seconds = time_chain(chain, store, root, out, args.workers)
                row.append(f"{args.images / seconds:8.1f}")
                row.append(f"{args.images / time_in_memory(chain, store, root):8.1f}")
            rows.append(row)
            print(f"{row[0]:<36}" + "".join(f"{c:>12}" for c in row[1:]), flush=True)
    header = f"{'chain':<36}" + "".join(f"{str(s) + ' px img/s':>12}{'in memory':>12}" for s in sizes)
    print(f"\nworkers={args.workers}, {args.images} images per store, PNG writing included; "
          "'in memory': the chain in one process, no PNG")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row[0]:<36}" + "".join(f"{c:>12}" for c in row[1:]))


if __name__ == "__main__":
    main()
