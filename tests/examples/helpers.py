"""Helpers of the example tests: the repository paths, a subprocess runner and an
independent numpy mIoU (the reference the examples' printed/JSON scores are checked against)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def run_example(args: Sequence[str], *, env: dict[str, str] | None = None,
                cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command (an example) with a quiet, single-threaded environment; check exit 0."""
    full_env = {**os.environ, "PSEUDOLABEL_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1",
                **(env or {})}
    proc = subprocess.run(list(args), env=full_env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def png(path: Path) -> np.ndarray:
    """The raw values of a (palette) PNG, read with PIL only."""
    return np.asarray(Image.open(path))


def reference_scores(pred_dir: Path, gt_dir: Path, ids: Sequence[str],
                     num_classes: int) -> tuple[float, np.ndarray]:
    """(mIoU, per-class IoU) counted directly: pixels where neither gt nor prediction is 255.

    The mean is over the classes whose union is not empty (NaN IoU for the others).
    """
    inter = np.zeros(num_classes)
    union = np.zeros(num_classes)
    for i in ids:
        gt, pred = png(gt_dir / f"{i}.png"), png(pred_dir / f"{i}.png")
        valid = (gt != 255) & (pred != 255)
        for c in range(num_classes):
            g, p = (gt == c) & valid, (pred == c) & valid
            inter[c] += (g & p).sum()
            union[c] += (g | p).sum()
    with np.errstate(invalid="ignore"):
        iou = inter / union
    return float(np.nanmean(iou)), iou
