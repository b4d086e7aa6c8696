"""examples/quickstart.sh runs the CLI pipeline end to end (made tiny through its env vars)."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from .helpers import EXAMPLES, png, reference_scores, run_example

pytestmark = pytest.mark.slow


def test_quickstart_runs_and_its_scores_match_a_direct_count(tmp_path: Path) -> None:
    out = tmp_path / "qs"
    env = {"PL_OUT": str(out), "PL_N": "16", "PL_SIZE": "48", "PL_EPOCHS": "1",
           "PL_STUDENT": "test_resnet", "PL_SCALES": "1.0", "PL_DEVICE": "cpu",
           "PL_COMMAND": f"{sys.executable} -m pseudolabel"}
    proc = run_example(["bash", str(EXAMPLES / "quickstart.sh")], env=env)
    assert "done: masks in" in proc.stdout

    data = out / "data"
    train_ids = (data / "ImageSets/Segmentation/train.txt").read_text().split()
    for folder in ("masks", "masks-threshold"):
        for i in train_ids:
            mask = png(out / folder / f"{i}.png")
            assert mask.shape == (48, 48)
            assert set(np.unique(mask)) <= {0, 1, 255}
    for name, folder in (("scores.json", "masks"), ("threshold.json", "masks-threshold")):
        scores = json.loads((out / name).read_text())
        miou, iou = reference_scores(out / folder, data / "SegmentationClass", train_ids, 2)
        assert scores["miou"] == pytest.approx(miou, abs=1e-9)
        assert scores["per_class"]["smoke"]["iou"] == pytest.approx(iou[1], abs=1e-9)
        assert scores["images"] == len(train_ids)

    assert (out / "report.html").stat().st_size > 0
    assert (out / "run" / "student.pt").is_file()
    export = out / "export"
    assert sorted((export / "train.txt").read_text().split()) == sorted(train_ids)
    config: dict = {}
    exec(compile(ast.parse((export / "mmseg_dataset.py").read_text()), "mmseg", "exec"), config)
    assert config["metainfo"]["classes"] == ("background", "smoke")
    assert config["train_dataloader"]["dataset"]["data_prefix"]["seg_map_path"] == \
        str((out / "masks").resolve())
