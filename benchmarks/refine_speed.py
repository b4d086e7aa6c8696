"""Images per second of ``pseudolabel refine`` per refiner, PNG writing included.

Synthetic CAM stores (three keys: student/features at stride 32, student/layer3 and
teacher/features at stride 16; one present class per image, a soft blob) at 160 px and 512 px,
the whole stage (``pseudolabel.refine.stage.run``) timed from store to PNGs.

    python benchmarks/refine_speed.py --workers 2 [--sizes 160,512] [--images 64]

Until ``pseudolabel.store`` provides ``CamStore`` the stores are written with the refine tests'
stand-in (tests/refine/fake_store.py, plain h5py) and read through it; this is logged.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from pseudolabel.refine import REFINERS
from pseudolabel.refine import stage as stage_module
from pseudolabel.refine.stage import RefineConfig, run

log = logging.getLogger("refine_speed")
REPO = Path(__file__).resolve().parents[1]

KEYS = {"student/features": 32, "student/layer3": 16, "teacher/features": 16}


def store_backend():
    """(write_store, open) for synthetic stores: the real store when present, else the stand-in."""
    try:
        from pseudolabel.store import (
            CamStore,  # noqa: F401
            write_records,  # type: ignore[attr-defined]
        )

        return write_records, None
    except ImportError:
        sys.path.insert(0, str(REPO / "tests"))
        from refine.fake_store import FakeCamStore, write_store

        log.warning("pseudolabel.store has no CamStore/writer yet: using the tests' stand-in store")
        stage_module._open_store = FakeCamStore.open  # the stage reads the stand-in
        return write_store, FakeCamStore.open


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
    """A store of ``n`` records at ``size`` px plus ROOT/JPEGImages; returns (store, root, records)."""
    write_store, _ = store_backend()
    rng = np.random.default_rng(seed)
    root = folder / "root"
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        k = int(rng.random() < positive)
        full = blob((size, size), rng) if k else np.zeros((size, size), np.float32)
        cams = {}
        for key, stride in KEYS.items():
            h = size // stride
            small = np.asarray(Image.fromarray(full).resize((h, h), Image.BILINEAR))
            noisy = np.clip(small + rng.normal(0, 0.05, small.shape), 0, None)
            cams[key] = (noisy / max(noisy.max(), 1e-6))[None][:k].astype(np.float32)
        image = (np.clip(full[..., None] * 120 + rng.normal(100, 30, (size, size, 3)), 0, 255)
                 .astype(np.uint8))
        Image.fromarray(image).save(root / "JPEGImages" / f"img{i:05d}.png", compress_level=1)
        records.append({"id": f"img{i:05d}", "image_size": (size, size),
                        "class_indices": np.arange(k), "cams": cams, "truth": full > 0.5})
    store = write_store(folder / f"cams{size}.h5", ("smoke",),
                        [{k: v for k, v in r.items() if k != "truth"} for r in records])
    return store, root, records


def time_chain(specs: Sequence[str], store: Path, root: Path, out: Path, workers: int) -> float:
    """Seconds of one complete stage run (a fresh MASK_DIR)."""
    start = time.perf_counter()
    run(RefineConfig(refiners=tuple(specs), workers=workers, chunk_size=8), store, out, root)
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
        for chain in chains:
            row = [" -> ".join(chain)]
            for s in sizes:
                store, root, _ = stores[s]
                out = Path(tmp) / f"out-{s}-{len(rows)}"
                seconds = time_chain(chain, store, root, out, args.workers)
                row.append(f"{args.images / seconds:8.1f}")
            rows.append(row)
            print(f"{row[0]:<36}" + "".join(f"{c:>12}" for c in row[1:]), flush=True)
    header = f"{'chain':<36}" + "".join(f"{str(s) + ' px img/s':>14}" for s in sizes)
    print(f"\nworkers={args.workers}, {args.images} images per store, PNG writing included")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row[0]:<36}" + "".join(f"{c:>12}" for c in row[1:]))


if __name__ == "__main__":
    main()
