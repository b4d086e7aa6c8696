"""Speed and quality of the dense CRF (each mode), pydensecrf (when installed) and PAR, on CPU.

Synthetic images (coloured ellipses of two classes on a textured background) with CAM-like score
maps (the truth made coarse, as a stride-16 CAM, plus noise): images per second at 160 and
512 px, and the mIoU of each method's argmax against the known truth next to the input's.

    python benchmarks/crf_speed.py [--sizes 160,512] [--images 4] [--threads 1]

With ``--cams CAMS.h5 --root ROOT [--split S]`` (a store from ``pseudolabel make-cams`` of that
root, e.g. ../shared/data/smoke-tiles) it also runs a few refine chains through the refine stage
and scores them with the evaluate stage (mIoU, per-class IoU, seconds per chain).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

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


def miou(pred: np.ndarray, truth: np.ndarray, k: int = NUM_CLASSES) -> float:
    """Mean IoU over classes present in truth or prediction."""
    cm = np.bincount(truth.reshape(-1) * k + pred.reshape(-1), minlength=k * k).reshape(k, k)
    inter = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - inter
    return float(np.mean(inter[union > 0] / union[union > 0]))


def methods() -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """name -> fn(image, probs) -> (C, H, W) probabilities."""
    out: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "input (no refinement)": lambda image, probs: probs,
        "crf mode=lattice": lambda image, probs: dense_crf(image, probs, CrfParams()).numpy(),
        "crf mode=window (11)": lambda image, probs: dense_crf(
            image, probs, CrfParams(mode="window")).numpy(),
        "crf mode=window (5)": lambda image, probs: dense_crf(
            image, probs, CrfParams(mode="window", window=5)).numpy(),
        "crf window (11) down 4": lambda image, probs: dense_crf(
            image, probs, CrfParams(mode="window", downsample=4)).numpy(),
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
    "crf": ("crf",),
    "crf:backend=pydensecrf": ("crf:backend=pydensecrf",),
    "threshold -> crf": ("threshold", "crf"),
    "threshold -> crf:mode=window": ("threshold", "crf:mode=window"),
    "par": ("par",),
    "threshold -> par": ("threshold", "par"),
}


def real_quality(cams: Path, root: Path, split: str | None) -> None:
    """mIoU of each chain of :data:`CHAINS` on a real CAM store."""
    from pseudolabel.evaluate.stage import EvaluateConfig
    from pseudolabel.evaluate.stage import run as evaluate
    from pseudolabel.refine.stage import RefineConfig
    from pseudolabel.refine.stage import run as refine

    print(f"\nreal CAMs: {cams} against {root} (split {split or 'all'})")
    print(f"{'chain':32s} | {'mIoU':>6s} | per-class IoU")
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, chain) in enumerate(CHAINS.items()):
            if "pydensecrf" in name and not pydensecrf_available():
                continue
            start = time.perf_counter()
            masks = refine(RefineConfig(refiners=chain), cams, Path(tmp) / str(i), images_root=root)
            seconds = time.perf_counter() - start
            result = evaluate(EvaluateConfig(split=split), masks, root)
            m = result.to_dict()
            per_class = ", ".join(f"{c} {100 * v['iou']:.1f}" for c, v in m["per_class"].items())
            print(f"{name:32s} | {100 * m['miou']:6.1f} | {per_class}  ({seconds:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="160,512", help="image sizes in px, comma-separated")
    parser.add_argument("--images", type=int, default=4, help="images per size")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--cams", type=Path, help="a CAM store for the real-data comparison")
    parser.add_argument("--root", type=Path, help="the data set root of --cams (ground truth)")
    parser.add_argument("--split", help="split of --root to score (default: every image)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    table = methods()
    print(f"CPU, torch threads={args.threads}, {args.images} images per size, 10 mean-field "
          "iterations (CRF defaults 3/3, 80/13/10), PAR defaults")
    oracle = table.get("pydensecrf2 (C++)")
    header = f"{'method':24s}" + "".join(f" | {s:>4d} px img/s | {s:>4d} px mIoU" for s in sizes)
    if oracle is not None:
        header += " | same label as pydensecrf2"
    print(header)
    print("-" * len(header))
    data = {s: [synthetic(s, seed) for seed in range(args.images)] for s in sizes}
    reference = {s: [oracle(image, probs).argmax(0) for image, probs, _ in data[s]]
                 for s in sizes} if oracle is not None else {}
    for name, fn in table.items():
        row = f"{name:24s}"
        agree = []
        for s in sizes:
            fn(*data[s][0][:2])  # warm-up
            start = time.perf_counter()
            labels = [fn(image, probs).argmax(0) for image, probs, _ in data[s]]
            rate = len(data[s]) / (time.perf_counter() - start)
            scores = [miou(pred, truth) for pred, (_, _, truth) in zip(labels, data[s], strict=True)]
            rate_text = "-" if name.startswith("input") else f"{rate:8.2f}"
            row += f" | {rate_text:>15s} | {100 * np.mean(scores):12.1f}"
            agree += [float((a == b).mean()) for a, b in zip(labels, reference.get(s, []), strict=False)]
        if agree:
            row += f" | {100 * np.mean(agree):25.2f}%"
        print(row)
    if args.cams is not None:
        real_quality(args.cams, args.root, args.split)


if __name__ == "__main__":
    main()
