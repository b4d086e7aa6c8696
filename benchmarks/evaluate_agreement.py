"""Does ``pseudolabel evaluate`` agree with an independent scorer, and how fast is it?

The ground-truth masks of a data set are perturbed into a temporary folder (erosion, dilation,
random blocks of wrong classes, blocks of 255 = not covered, all of them at once); each folder
is scored by our evaluate stage and by torchmetrics (stateful confusion matrix / Jaccard /
precision / recall over every pixel, ground truth 255 ignored, predicted 255 left out; coverage
counted directly). Prints both side by side, the largest absolute difference (goal <= 1e-6) and
our images per second.

    python benchmarks/evaluate_agreement.py [ROOT] [--split S] [--limit N] [--workers N]

ROOT defaults to ../shared/data/smoke-tiles next to the repository.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassJaccardIndex,
    MulticlassPrecision,
    MulticlassRecall,
)

from pseudolabel.data import IGNORE, DatasetIndex, load_dataset, write_mask
from pseudolabel.evaluate import EvaluateConfig, evaluate

DEFAULT_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "smoke-tiles"


def erode(mask: np.ndarray, k: int, rng: np.random.Generator, steps: int = 3) -> np.ndarray:
    out = mask.copy()
    for c in range(1, k + 1):
        region = mask == c
        out[region & ~ndimage.binary_erosion(region, iterations=steps)] = 0
    return out


def dilate(mask: np.ndarray, k: int, rng: np.random.Generator, steps: int = 3) -> np.ndarray:
    out = mask.copy()
    for c in range(1, k + 1):
        grown = ndimage.binary_dilation(mask == c, iterations=steps)
        out[grown & (out == 0)] = c
    return out


def _blocks(mask: np.ndarray, rng: np.random.Generator, n: int, side: int) -> list[tuple]:
    h, w = mask.shape
    ys = rng.integers(0, max(1, h - side), n)
    xs = rng.integers(0, max(1, w - side), n)
    return [(slice(y, y + side), slice(x, x + side)) for y, x in zip(ys, xs, strict=True)]


def flip_blocks(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    out = mask.copy()
    for block in _blocks(mask, rng, 4, max(4, mask.shape[0] // 8)):
        out[block] = rng.integers(0, k + 1)
    return out


def ignore_blocks(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    out = mask.copy()
    for block in _blocks(mask, rng, 3, max(4, mask.shape[0] // 6)):
        out[block] = IGNORE
    return out


def mixed(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return ignore_blocks(flip_blocks(dilate(mask, k, rng), k, rng), k, rng)


PERTURBATIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "identity": lambda m, k, rng: m.copy(),
    "erode3": erode,
    "dilate3": dilate,
    "flip-blocks": flip_blocks,
    "ignore-blocks": ignore_blocks,
    "mixed": mixed,
}


def reference_scores(dataset: DatasetIndex, mask_dir: Path) -> dict[str, np.ndarray | float]:
    """torchmetrics over every pixel (streamed image by image into its stateful metrics)."""
    c = dataset.num_classes + 1
    metrics = {
        "cm": MulticlassConfusionMatrix(c, ignore_index=IGNORE),
        "iou": MulticlassJaccardIndex(c, average="none", ignore_index=IGNORE),
        "miou": MulticlassJaccardIndex(c, average="macro", ignore_index=IGNORE),
        "precision": MulticlassPrecision(c, average="none", ignore_index=IGNORE),
        "recall": MulticlassRecall(c, average="none", ignore_index=IGNORE),
    }
    from pseudolabel.data import read_mask

    valid = covered = 0
    for s in dataset:
        gt = dataset.read_gt(s)
        pred = read_mask(mask_dir / f"{s.id}.png")
        keep = pred != IGNORE  # a pixel the mask does not cover is not a prediction
        p = torch.from_numpy(pred[keep].astype(np.int64))
        g = torch.from_numpy(gt[keep].astype(np.int64))
        for m in metrics.values():
            m.update(p, g)
        valid += int((gt != IGNORE).sum())
        covered += int(((gt != IGNORE) & keep).sum())
    out: dict[str, np.ndarray | float] = {k: m.compute().double().numpy() for k, m in
                                          metrics.items()}
    out["coverage"] = covered / valid
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--split", default=None)
    parser.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PSEUDOLABEL_NO_PROGRESS", "1")
    torch.set_num_threads(1)

    dataset = load_dataset(args.root, args.split, require_labels=False)
    if args.limit:
        dataset = dataset.subset(dataset.ids[: args.limit])
    k = dataset.num_classes
    classes = ["background", *dataset.classes]
    print(f"{len(dataset)} images, classes {classes}, workers {args.workers}")
    header = (f"{'perturbation':<14} {'mIoU ours':>10} {'mIoU ref':>10} "
              + "".join(f"{'IoU ' + c:>14}" for c in classes[1:])
              + f" {'coverage':>9} {'max|diff|':>10} {'img/s':>8} {'img/s 1w':>8}")
    print(header)
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="evaluate-agreement-") as tmp:
        for name, fn in PERTURBATIONS.items():
            mask_dir = Path(tmp) / name
            rng = np.random.default_rng([args.seed, len(name)])
            for s in dataset:
                write_mask(mask_dir / f"{s.id}.png", fn(dataset.read_gt(s), k, rng))
            t0 = time.perf_counter()
            ours = evaluate(mask_dir, dataset, EvaluateConfig(workers=args.workers))
            speed = len(dataset) / (time.perf_counter() - t0)
            t0 = time.perf_counter()
            single = evaluate(mask_dir, dataset, EvaluateConfig(workers=1))
            speed1 = len(dataset) / (time.perf_counter() - t0)
            assert (single.confusion == ours.confusion).all()
            ref = reference_scores(dataset, mask_dir)
            m = ours.metrics
            nan0 = np.nan_to_num  # torchmetrics says 0 where we say undefined (NaN)
            diffs = [
                np.abs(ours.confusion - ref["cm"]).max(),
                np.abs(nan0(m["iou"]) - ref["iou"]).max(),
                abs(m["miou"] - float(ref["miou"])),
                np.abs(nan0(m["precision"]) - ref["precision"]).max(),
                np.abs(nan0(m["recall"]) - ref["recall"]).max(),
                abs(m["coverage"] - ref["coverage"]),
            ]
            diff = float(max(diffs))
            worst = max(worst, diff)
            print(f"{name:<14} {m['miou']:>10.6f} {float(ref['miou']):>10.6f} "
                  + "".join(f"{m['iou'][i]:>14.6f}" for i in range(1, k + 1))
                  + f" {m['coverage']:>9.4f} {diff:>10.2e} {speed:>8.0f} {speed1:>8.0f}")
    print(f"max abs difference over all perturbations and metrics: {worst:.2e} "
          f"({'ok' if worst <= 1e-6 else 'ABOVE'} the 1e-6 goal)")


if __name__ == "__main__":
    main()
