"""The whole pipeline in one call (what `pseudolabel demo` runs), on tiny models and images."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from pseudolabel.data import load_dataset, read_mask
from pseudolabel.evaluate import ConfusionAccumulator
from pseudolabel.pipeline import demo_config, run


def tiny_config():
    cfg = demo_config(epochs=1, device="cpu")
    return dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, student="test_resnet", teacher="test_vit",
                                  image_size=64, batch_size=8, num_workers=0),
        cams=dataclasses.replace(cfg.cams, scales=(1.0,), workers=0, batch_size=8),
        compare=("threshold", "gmm", "fusion+gmm:scope=dataset"),
        refine=dataclasses.replace(cfg.refine, workers=1),
    )


def test_pipeline_writes_every_stage_and_scores_its_masks(demo_root: Path, tmp_path: Path
                                                          ) -> None:
    result = run(tiny_config(), demo_root, tmp_path / "out")
    data = load_dataset(demo_root, "train")
    for path in (result.run_dir / "student.pt", result.run_dir / "teacher.pt", result.cams,
                 result.report, tmp_path / "out" / "pipeline.yaml"):
        assert path is not None and path.is_file(), path
    masks = sorted(p.stem for p in result.masks.glob("*.png"))
    assert masks == sorted(data.ids)
    # the reported scores are those of the masks on disk (an independent recount)
    acc = ConfusionAccumulator(2)
    for sample in data:
        pred = read_mask(result.masks / f"{sample.id}.png")
        gt = data.read_gt(sample)
        assert pred.shape == gt.shape and set(np.unique(pred)) <= {0, 1, 255}
        acc.update(pred, gt)
    expected = acc.compute()
    saved = json.loads((tmp_path / "out" / "evaluate.json").read_text())
    assert abs(saved["miou"] - expected["miou"]) < 1e-9
    assert result.scores is not None and set(result.compared) == {"threshold", "gmm", "fusion+gmm:scope=dataset"}
    table = result.table()
    assert "| threshold→crf |" in table and "| fusion+gmm:scope=dataset |" in table
    # a negative image gets no smoke
    negatives = [s for s in data if not s.labels]
    assert negatives
    for s in negatives:
        assert not (read_mask(result.masks / f"{s.id}.png") == 1).any()
