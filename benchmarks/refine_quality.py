"""Mask quality of refine chains against ground truth: mIoU, per-class IoU, precision, recall.

    python benchmarks/refine_quality.py CAMS.h5 ROOT [--chains "gmm;fusion>gmm"] [--split S]
    python benchmarks/refine_quality.py --synthetic   # a synthetic store and root, for a dry run

CAMS.h5 comes from ``pseudolabel make-cams`` on ROOT (e.g. ../shared/data/smoke-tiles); ROOT
holds SegmentationClass/<id>.png. Each chain runs in memory through ``pseudolabel.refine.api``
(data-set fits included, as in the refine stage) on the store's images with ground truth; the
confusion matrix is summed over them (ground-truth 255 ignored, ``pseudolabel.evaluate.metrics``).

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

from pseudolabel.data.masks import IGNORE, write_mask
from pseudolabel.refine.api import iter_states, read_ground_truth, refine_states, score, to_mask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refine_speed import make_synthetic

log = logging.getLogger("refine_quality")

DEFAULT_CHAINS = (
    "threshold", "threshold:background=power", "threshold:lo=0.2,hi=0.5", "fusion>threshold",
    "gmm", "gmm:components=3", "gmm:input=cam+color", "gmm:scope=dataset", "fusion>gmm",
    "fusion>gmm:scope=dataset",
)
SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7)


def metrics(masks: Sequence[np.ndarray], gts: Sequence[np.ndarray], n: int) -> dict[str, object]:
    """:func:`pseudolabel.refine.api.score` of the masks as they are (mIoU on the pixels they
    mark, ``coverage`` the share marked) plus ``miou_bg``: the mIoU with 255 counted as
    background."""
    m = score(masks, gts, n)
    m["miou_bg"] = score([np.where(x == IGNORE, 0, x) for x in masks], gts, n)["miou"]
    return m


def evaluate_chains(cams: Path, root: Path, chains: Sequence[str], split: str | None = None,
                    sweep: bool = True) -> list[tuple[str, dict]]:
    """(chain, metrics) per chain, then the oracle threshold sweep."""
    gts = read_ground_truth(root, iter_states(cams).ids, split)
    states = iter_states(cams, ids=list(gts), images=root)
    n = len(states.classes) + 1
    results = []
    todo = [(c, False) for c in chains] + [(f"threshold:t={t}", True) for t in (SWEEP if sweep else ())]
    for chain, oracle in todo:
        specs = chain.split(">")
        masks = [to_mask(s) for s in refine_states(specs, states)]
        m = metrics(masks, list(gts.values()), n)
        results.append((" -> ".join(specs) + (" (oracle sweep)" if oracle else ""), m))
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
    parser.add_argument("--split", default=None, help="split of ROOT to score (default: every image)")
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
        results = evaluate_chains(args.cams, args.root, args.chains.split(";"), args.split,
                                  sweep=not args.no_sweep)
        print("\n" + header + "\n" + "-" * len(header))
        for item in results:
            print(_row(item))


if __name__ == "__main__":
    main()
