"""examples/python_api.py: the pipeline from Python, then one stage by hand."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from .helpers import EXAMPLES, reference_scores, run_example

pytestmark = pytest.mark.slow


def test_python_api_example(tmp_path: Path) -> None:
    out = tmp_path / "api"
    proc = run_example([sys.executable, str(EXAMPLES / "python_api.py"), "--out", str(out),
                        "--n", "16", "--size", "48", "--epochs", "1", "--student", "test_resnet",
                        "--device", "cpu"])
    data = out / "data"
    ids = (data / "ImageSets/Segmentation/train.txt").read_text().split()
    gt = data / "SegmentationClass"

    # the pipeline's own evaluate.json against a direct count over its masks
    scores = json.loads((out / "evaluate.json").read_text())
    miou, _ = reference_scores(out / "masks", gt, ids, 2)
    assert scores["miou"] == pytest.approx(miou, abs=1e-9)
    printed = float(re.search(r"^gmm\s+mIoU ([0-9.]+)$", proc.stdout, re.M).group(1))
    assert printed == pytest.approx(miou, abs=1e-4)
    base = float(re.search(r"^threshold mIoU ([0-9.]+)$", proc.stdout, re.M).group(1))
    compared = reference_scores(out / "compare" / "threshold", gt, ids, 2)[0]
    assert base == pytest.approx(compared, abs=1e-4)

    # the hand-run stage: masks-power scored in the printed table
    power = reference_scores(out / "masks-power", gt, ids, 2)[0]
    table = float(re.search(r"^mIoU ([0-9.]+)", proc.stdout, re.M).group(1))
    assert table == pytest.approx(power, abs=1e-4)
    assert (out / "report.html").is_file()
