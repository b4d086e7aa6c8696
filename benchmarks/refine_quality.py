"""Mask quality of refine chains against ground truth: mIoU, per-class IoU, precision, recall.

    python benchmarks/refine_quality.py CAMS.h5 ROOT [--workers 2] [--chains "gmm;fusion>gmm"]
    python benchmarks/refine_quality.py --synthetic   # a synthetic store and root, for a dry run

CAMS.h5 comes from ``pseudolabel make-cams`` on ROOT (e.g. ../shared/data/smoke-tiles); ROOT
holds SegmentationClass/<id>.png. Each chain runs through the real stage into a temporary
MASK_DIR; the confusion matrix is summed over the data set (ground-truth 255 ignored).

Predicted 255 (ignore) pixels are reported two ways: ``mIoU`` on the pixels the masks mark (with
``coverage``, the share they mark), and ``mIoU 255=bg`` counting them as background. The
threshold sweep at the end picks t on the ground truth: an oracle upper bound, not a method.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pseudolabel.data.masks import IGNORE, read_mask, write_mask
from pseudolabel.refine.stage import RefineConfig, run
from pseudolabel.store import CamStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refine_speed import make_synthetic

log = logging.getLogger("refine_quality")

DEFAULT_CHAINS = (
    "threshold", "threshold:background=power", "threshold:lo=0.2,hi=0.5", "fusion>threshold",
    "gmm", "gmm:components=3", "gmm:input=cam+color", "gmm:scope=dataset", "fusion>gmm",
    "fusion>gmm:scope=dataset",
)
SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7)


def confusion(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """(n, n+1) counts: rows ground truth 0..n-1, columns prediction 0..n-1 and n = ignored."""
    valid = gt != IGNORE
    g = gt[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    p = np.where(p == IGNORE, n, np.minimum(p, n))
    return np.bincount(g * (n + 1) + p, minlength=n * (n + 1)).reshape(n, n + 1)


def metrics(conf: np.ndarray) -> dict[str, object]:
    """mIoU (marked pixels), mIoU with ignore as background, per-class IoU/precision/recall."""
    n = conf.shape[0]
    marked = conf[:, :n].astype(np.float64)
    as_bg = marked.copy()
    as_bg[:, 0] += conf[:, n]

    def iou(m: np.ndarray) -> np.ndarray:
        tp = np.diag(m)
        union = m.sum(0) + m.sum(1) - tp
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    tp = np.diag(marked)
    return {
        "iou": iou(marked), "miou": float(np.nanmean(iou(marked))),
        "miou_bg": float(np.nanmean(iou(as_bg))),
        "precision": tp / np.maximum(marked.sum(0), 1), "recall": tp / np.maximum(marked.sum(1), 1),
        "coverage": float(marked.sum() / max(conf.sum(), 1)),
    }


def score_dir(mask_dir: Path, gt_dir: Path, ids: Sequence[str], n: int) -> np.ndarray:
    conf = np.zeros((n, n + 1), np.int64)
    for image_id in ids:
        gt_path = gt_dir / f"{image_id}.png"
        if not gt_path.is_file():
            continue
        conf += confusion(read_mask(gt_path), read_mask(mask_dir / f"{image_id}.png"), n)
    return conf


def evaluate_chains(cams: Path, root: Path, chains: Sequence[str], workers: int,
                    sweep: bool = True) -> list[tuple[str, dict]]:
    """(chain, metrics) per chain, then the oracle threshold sweep."""
    with CamStore.open(cams) as store:
        ids, n = list(store.ids()), len(store.classes) + 1
    results = []
    todo = [(c, False) for c in chains] + [(f"threshold:t={t}", True) for t in (SWEEP if sweep else ())]
    with tempfile.TemporaryDirectory(prefix="refine-quality-") as tmp:
        for i, (chain, oracle) in enumerate(todo):
            out = run(RefineConfig(refiners=tuple(chain.split(">")), workers=workers), cams,
                      Path(tmp) / str(i), root)
            m = metrics(score_dir(out, root / "SegmentationClass", ids, n))
            results.append(((" -> ".join(chain.split(">"))) + (" (oracle sweep)" if oracle else ""), m))
            print(_row(results[-1]), flush=True)
    return results


def _row(item: tuple[str, dict]) -> str:
    name, m = item
    iou, prec, rec = m["iou"], m["precision"], m["recall"]
    fg = f"{iou[1]:6.3f} {prec[1]:6.3f} {rec[1]:6.3f}" if len(iou) > 1 else ""
    return f"{name:<40} {m['miou']:6.3f} {m['miou_bg']:8.3f} {m['coverage']:6.3f}   {fg}"


def _synthetic(folder: Path) -> tuple[Path, Path]:
    """A 60-image synthetic store (2/3 positive) and root with ground truth."""
    store, root, truths = make_synthetic(folder, 60, 96, positive=0.66, seed=1)
    for i, truth in enumerate(truths):
        write_mask(root / "SegmentationClass" / f"img{i:05d}.png", truth.astype(np.uint8))
    (root / "classes.txt").write_text("smoke\n")
    return store, root


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cams", nargs="?", type=Path)
    parser.add_argument("root", nargs="?", type=Path)
    parser.add_argument("--synthetic", action="store_true", help="run on synthetic data")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chains", default=";".join(DEFAULT_CHAINS),
                        help="';'-separated chains of '>'-separated refiner specs")
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("PSEUDOLABEL_NO_PROGRESS", "1")
    with tempfile.TemporaryDirectory(prefix="refine-quality-data-") as tmp:
        if args.synthetic:
            args.cams, args.root = _synthetic(Path(tmp))
        elif args.cams is None or args.root is None:
            parser.error("give CAMS.h5 and ROOT, or --synthetic")
        header = (f"{'chain':<40} {'mIoU':>6} {'mIoU255bg':>8} {'cover':>6}   "
                  f"{'fgIoU':>6} {'fgPrec':>6} {'fgRec':>6}")
        print(header)
        results = evaluate_chains(args.cams, args.root, args.chains.split(";"), args.workers,
                                  sweep=not args.no_sweep)
        print("\n" + header + "\n" + "-" * len(header))
        for item in results:
            print(_row(item))


if __name__ == "__main__":
    main()
