"""mIoU of the ``affinity`` refiner against its input CAMs, and its speed at 160 and 512 px.

    python benchmarks/affinity_quality.py --cams CAMS.h5 --root DATA_ROOT [--model AFF_DIR]
        [--key K] [--limit N] [--refiner-options radius=5,beta=8,...] [--threads 1]

DATA_ROOT holds JPEGImages/ and SegmentationClass/ (ground truth: 0 background, c+1 class c,
255 ignore). Prints one table: the plain CAM (``threshold`` refiner, its default cut) and the
CAM after ``affinity`` (and, for reference, a CAM cut by ``1 - max`` - the chain's initial
argmax), with mIoU, foreground IoU and images/s; then the speed of ``affinity`` alone on random
160 and 512 px images.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from pseudolabel.refine import initial_state
from pseudolabel.refine.api import (
    apply_chain,
    create_chain,
    iter_states,
    read_ground_truth,
    score,
    to_mask,
)


def score_chains(chains: dict[str, list], cams: Path, root: Path, key: str | None,
                 limit: int | None) -> list[tuple[str, float, float, float]]:
    """(name, mIoU, fg IoU, images/s) of each chain on the store's images with ground truth
    (one read per image for all chains)."""
    gts = read_ground_truth(root, iter_states(cams, key=key).ids)
    ids = list(gts)[:limit] if limit else list(gts)
    states = iter_states(cams, ids=ids, key=key, images=root)
    masks: dict[str, list[np.ndarray]] = {name: [] for name in chains}
    secs = dict.fromkeys(chains, 0.0)
    for state in states:
        for name, chain in chains.items():
            t0 = time.perf_counter()
            masks[name].append(to_mask(apply_chain(chain, state)))
            secs[name] += time.perf_counter() - t0
    rows = []
    for name in chains:
        m = score(masks[name], (gts[i] for i in ids), len(states.classes) + 1)
        rows.append((name, m["miou"], m["fg_iou"], len(ids) / max(secs[name], 1e-9)))
    return rows


def speed(spec: str, size: int, n: int = 5) -> float:
    """images/s of a chain on random ``size`` px images with 1 class."""
    rng = np.random.default_rng(0)
    chain = create_chain([spec])
    states = [initial_state({"k": rng.random((1, size // 8, size // 8)).astype(np.float32)}, "k",
                            np.array([0]), (size, size),
                            image=rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
              for _ in range(n)]
    apply_chain(chain, states[0])  # warm-up (model load)
    t0 = time.perf_counter()
    for s in states:
        apply_chain(chain, s)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cams", type=Path, required=True)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--model", default=None, help="AFF_DIR (default: colour affinities)")
    ap.add_argument("--key", default=None)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--refiner-options", default="", help="extra affinity options, k=v,...")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    extra = [o for o in args.refiner_options.split(",") if o]
    colour = "affinity" + (":" + ",".join(extra) if extra else "")
    chains = {"cam (1 - max)": [], "threshold": create_chain(["threshold"]),
              colour: create_chain([colour])}
    if args.model:
        learned = "affinity:" + ",".join([f"model={args.model}", *extra])
        chains[learned] = create_chain([learned])
    rows = score_chains(chains, args.cams, args.root, args.key, args.limit)
    base = rows[0][1]
    print(f"{'chain':<60} {'mIoU':>7} {'fg IoU':>7} {'d mIoU':>7} {'img/s':>7}")
    for name, miou, fg, ips in rows:
        print(f"{name[:60]:<60} {miou:7.4f} {fg:7.4f} {miou - base:+7.4f} {ips:7.2f}")
    print()
    for name in chains:
        if not name.startswith("affinity"):
            continue
        for size in (160, 512):
            print(f"speed {name[:50]:<50} {size:4d} px: {speed(name, size):7.2f} images/s")


if __name__ == "__main__":
    main()
