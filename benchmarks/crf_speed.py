"""Speed and quality of the dense CRF (each mode), pydensecrf (when installed) and PAR, on CPU.

Synthetic images (coloured ellipses of two classes on a textured background) with CAM-like score
maps (the truth made coarse, as a stride-16 CAM, plus noise): images per second at 160 and
512 px, and the mIoU of each method's argmax against the known truth next to the input's.

    python benchmarks/crf_speed.py [--sizes 160,512] [--images 4] [--threads 1]

With ``--cams CAMS.h5 --root ROOT [--split S] [--limit N]`` (a store from ``pseudolabel
make-cams`` of that root, e.g. ../shared/data/smoke-tiles) it also measures on real data:

- speed: each CRF variant on the ``threshold`` scores of the store's labelled images (the ones
  a CRF runs on; one thread, the variants interleaved and the best of 3 passes kept, so that a
  busy machine slows them alike), in images/s and as a multiple of pydensecrf2's speed;
- quality: chains in memory through ``pseudolabel.refine.api`` on the images with ground truth
  (mIoU and its gain over ``threshold`` alone).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pseudolabel.ops import probabilities, uniform_where_ignored
from pseudolabel.refine.api import (
    apply_chain,
    create_chain,
    iter_states,
    read_ground_truth,
    refine_states,
    score,
    to_mask,
)
from pseudolabel.refine.crf import CrfParams, dense_crf, dense_crf_pydensecrf, pydensecrf_available
from pseudolabel.refine.par import ParParams, pixel_adaptive_refine

log = logging.getLogger("crf_speed")
NUM_CLASSES = 3  # background + 2


def synthetic(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 image, (C, H, W) float32 coarse noisy probabilities, (H, W) truth."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    truth = np.zeros((size, size), np.int64)
    for label in (1, 2, 1, 2):
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        ry, rx = rng.uniform(0.08, 0.22, 2) * size
        truth[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0] = label
    palette = rng.uniform(30, 225, (NUM_CLASSES, 3))
    texture = rng.normal(0, 14, (size, size, 3))
    image = np.clip(palette[truth] + texture, 0, 255).astype(np.uint8)
    onehot = torch.from_numpy(np.eye(NUM_CLASSES, dtype=np.float32)[truth].transpose(2, 0, 1))
    coarse = F.avg_pool2d(onehot[None], 16)  # a stride-16 "CAM"
    cam = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)[0]
    noisy = (cam.numpy() + rng.normal(0, 0.15, cam.shape)).clip(0.02)
    return image, (noisy / noisy.sum(0)).astype(np.float32), truth


def methods() -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """name -> fn(image, probs) -> (C, H, W) probabilities."""
    out: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "input (no refinement)": lambda image, probs: probs,
        "crf (default)": lambda image, probs: dense_crf(image, probs, CrfParams()).numpy(),
        "crf downsample=1 (exact)": lambda image, probs: dense_crf(
            image, probs, CrfParams(downsample=1)).numpy(),
        "crf down 2, always": lambda image, probs: dense_crf(
            image, probs, CrfParams(pool_tolerance=0.0)).numpy(),
        "crf window (11)": lambda image, probs: dense_crf(
            image, probs, CrfParams(mode="window", downsample=1)).numpy(),
        "crf window (5)": lambda image, probs: dense_crf(
            image, probs, CrfParams(mode="window", window=5, downsample=1)).numpy(),
        "crf window (11) down 4": lambda image, probs: dense_crf(
            image, probs, CrfParams(mode="window", downsample=4, pool_tolerance=0.0)).numpy(),
    }
    if pydensecrf_available():
        out["pydensecrf2 (C++)"] = lambda image, probs: dense_crf_pydensecrf(image, probs, CrfParams())
    else:
        log.warning("pydensecrf2 is not installed: its row is left out (pip install pydensecrf2)")
    out["par"] = lambda image, probs: pixel_adaptive_refine(image, probs, ParParams()).numpy()
    return out


#: Chains compared on real CAMs (defaults everywhere; none tuned on the ground truth).
CHAINS = {
    "threshold": ("threshold",),
    "threshold -> crf (default)": ("threshold", "crf"),
    "threshold -> crf:downsample=1 (exact)": ("threshold", "crf:downsample=1"),
    "threshold -> crf:backend=pydensecrf": ("threshold", "crf:backend=pydensecrf"),
    "threshold -> crf:mode=window,downsample=4": ("threshold", "crf:mode=window,downsample=4"),
    "threshold -> par": ("threshold", "par"),
}

#: CRF variants timed on real scores: name -> CrfParams overrides (None: pydensecrf2).
REAL_SPEED = {
    "pydensecrf2 (C++)": None,
    "crf (default)": {},
    "crf:downsample=1 (exact)": {"downsample": 1},
    "crf:mode=window,downsample=4": {"mode": "window", "downsample": 4},
}


def real_cases(cams: Path, root: Path, limit: int) -> list[tuple[np.ndarray, torch.Tensor]]:
    """(image, threshold probabilities) of up to ``limit`` labelled images of a store."""
    threshold = create_chain(["threshold"])
    cases = []
    for state in iter_states(cams, images=root):
        if state.num_present == 0:
            continue  # a negative image: one class, no CRF to run
        state = apply_chain(threshold, state)
        cases.append((state.image, uniform_where_ignored(probabilities(state.scores, 1e-5),
                                                         state.ignore)))
        if len(cases) >= limit:
            break
    return cases


def real_speed(cams: Path, root: Path, limit: int) -> None:
    """Images/s of each :data:`REAL_SPEED` variant on real threshold scores."""
    cases = real_cases(cams, root, limit)
    if not cases:
        print("no labelled image in the store: nothing to time")
        return
    variants = {}
    for name, over in REAL_SPEED.items():
        if over is None:
            if not pydensecrf_available():
                continue
            variants[name] = lambda image, p: dense_crf_pydensecrf(image, p.numpy(), CrfParams())
        else:
            variants[name] = lambda image, p, over=over: dense_crf(image, p, CrfParams(**over))
    for fn in variants.values():  # warm-up
        for image, p in cases[:3]:
            fn(image, p)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(3):
        for name, fn in variants.items():
            start = time.perf_counter()
            for image, p in cases:
                fn(image, p)
            best[name] = min(best[name], time.perf_counter() - start)
    size = "x".join(map(str, cases[0][0].shape[:2]))
    print(f"\nreal scores: {len(cases)} labelled images of {cams} ({size} px, "
          f"{cases[0][1].shape[0]} classes with background), one thread, best of 3 passes")
    print(f"{'variant':32s} | {'img/s':>7s} | x pydensecrf2")
    ref = best.get("pydensecrf2 (C++)")
    for name, seconds in best.items():
        ratio = f"{ref / seconds:12.2f}x" if ref else "-"
        print(f"{name:32s} | {len(cases) / seconds:7.1f} | {ratio}")


def real_quality(cams: Path, root: Path, split: str | None) -> None:
    """mIoU of each chain of :data:`CHAINS` on a real CAM store (its images with ground truth),
    and its gain over threshold."""
    gts = read_ground_truth(root, iter_states(cams).ids, split)
    states = iter_states(cams, ids=list(gts), images=root)
    print(f"\nreal CAMs: {cams} against {root} (split {split or 'all'}, {len(gts)} images)")
    print(f"{'chain':42s} | {'mIoU':>6s} | {'gain':>5s} | per-class IoU")
    base = None
    for name, chain in CHAINS.items():
        if "pydensecrf" in name and not pydensecrf_available():
            continue
        start = time.perf_counter()
        masks = [to_mask(s) for s in refine_states(chain, states)]
        seconds = time.perf_counter() - start
        m = score(masks, gts.values(), len(states.classes) + 1)
        base = m["miou"] if base is None else base
        per_class = ", ".join(f"{c} {100 * v:.1f}"
                              for c, v in zip(("background", *states.classes), m["iou"], strict=True))
        print(f"{name:42s} | {100 * m['miou']:6.2f} | {100 * (m['miou'] - base):+5.2f} | "
              f"{per_class}  ({seconds:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="160,512", help="image sizes in px, comma-separated")
    parser.add_argument("--images", type=int, default=4, help="images per size")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--cams", type=Path, help="a CAM store for the real-data comparison")
    parser.add_argument("--root", type=Path, help="the data set root of --cams (ground truth)")
    parser.add_argument("--split", help="split of --root to score (default: every image)")
    parser.add_argument("--limit", type=int, default=100, help="labelled images timed with --cams")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    table = methods()
    print(f"CPU, torch threads={args.threads}, {args.images} images per size, 10 mean-field "
          "iterations (CRF defaults 3/3, 80/13/10), PAR defaults")
    oracle = table.get("pydensecrf2 (C++)")
    header = f"{'method':26s}" + "".join(f" | {s:>4d} px img/s | {s:>4d} px mIoU" for s in sizes)
    if oracle is not None:
        header += " | same label as pydensecrf2"
    print(header)
    print("-" * len(header))
    data = {s: [synthetic(s, seed) for seed in range(args.images)] for s in sizes}
    reference = {s: [oracle(image, probs).argmax(0) for image, probs, _ in data[s]]
                 for s in sizes} if oracle is not None else {}
    for name, fn in table.items():
        row = f"{name:26s}"
        agree = []
        for s in sizes:
            fn(*data[s][0][:2])  # warm-up
            start = time.perf_counter()
            labels = [fn(image, probs).argmax(0) for image, probs, _ in data[s]]
            rate = len(data[s]) / (time.perf_counter() - start)
            scores = [score([pred], [truth], NUM_CLASSES)["miou"]
                      for pred, (_, _, truth) in zip(labels, data[s], strict=True)]
            rate_text = "-" if name.startswith("input") else f"{rate:8.2f}"
            row += f" | {rate_text:>15s} | {100 * np.mean(scores):12.1f}"
            agree += [float((a == b).mean()) for a, b in zip(labels, reference.get(s, []), strict=False)]
        if agree:
            row += f" | {100 * np.mean(agree):25.2f}%"
        print(row)
    if args.cams is not None:
        real_speed(args.cams, args.root, args.limit)
        real_quality(args.cams, args.root, args.split)


if __name__ == "__main__":
    main()
