"""Self-training inside the pipeline: off by default; on, refine writes OUT/refined, selftrain
the final OUT/masks, and the refined masks are scored beside them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from pseudolabel.data import load_dataset, read_mask
from pseudolabel.evaluate import ConfusionAccumulator
from pseudolabel.pipeline import PipelineConfig, demo_config, pipeline_config, run
from pseudolabel.selftrain import SelfTrainConfig


def test_selftrain_is_off_by_default_and_the_option_turns_it_on_and_off(tmp_path: Path) -> None:
    assert PipelineConfig().selftrain is None
    assert pipeline_config("demo").selftrain is None
    on = pipeline_config("demo", selftrain=True)
    assert on.selftrain == SelfTrainConfig()
    (tmp_path / "c.yaml").write_text("selftrain:\n  epochs: 5\n")
    from_file = pipeline_config("demo", tmp_path / "c.yaml")
    assert from_file.selftrain is not None and from_file.selftrain.epochs == 5
    assert pipeline_config("demo", tmp_path / "c.yaml", selftrain=True).selftrain.epochs == 5
    assert pipeline_config("demo", tmp_path / "c.yaml", selftrain=False).selftrain is None
    # the run options shared by every stage reach the section only when it is on
    assert pipeline_config("demo", device="cpu", workers=0).selftrain is None
    shared = pipeline_config("demo", selftrain=True, device="cpu", workers=0, skip_bad=True)
    assert shared.selftrain == SelfTrainConfig(device="cpu", workers=0, skip_bad=True)


def test_the_pipeline_with_selftrain_scores_its_masks_and_the_refined_ones(
        demo_root: Path, tmp_path: Path) -> None:
    cfg = demo_config(epochs=1, device="cpu")
    cfg = dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, student="test_resnet", image_size=64, batch_size=8,
                                  num_workers=0),
        cams=dataclasses.replace(cfg.cams, scales=(1.0,), workers=0, batch_size=8),
        refine=dataclasses.replace(cfg.refine, refiners=("threshold",), workers=1), compare=(),
        report=False,
        selftrain=SelfTrainConfig(epochs=1, image_size=32, batch_size=8, workers=0,
                                  device="cpu", split="ignored: make-cams' split is used"))
    result = run(cfg, demo_root, tmp_path / "out")
    data = load_dataset(demo_root, cfg.cams.split)
    assert result.refined == tmp_path / "out" / "refined"
    assert (result.refined / "refine.yaml").is_file()
    assert (result.masks / "selftrain.yaml").is_file()
    assert sorted(p.stem for p in result.masks.glob("*.png")) == sorted(data.ids)
    assert result.chain == ("threshold", "selftrain")
    assert list(result.compared) == ["threshold"]
    # each score is the one of its folder's masks (an independent recount)
    for scores, folder in ((result.scores, result.masks),
                           (result.compared["threshold"], result.refined)):
        acc = ConfusionAccumulator(2)
        for sample in data:
            acc.update(read_mask(folder / f"{sample.id}.png"), data.read_gt(sample))
        assert abs(scores.metrics["miou"] - acc.compute()["miou"]) < 1e-9
    saved = json.loads((tmp_path / "out" / "evaluate.json").read_text())
    assert abs(saved["miou"] - result.scores.metrics["miou"]) < 1e-9
    assert "threshold→selftrain" in result.table() and "| threshold |" in result.table()
    masks = [read_mask(result.masks / f"{i}.png") for i in data.ids]
    refined = [read_mask(result.refined / f"{i}.png") for i in data.ids]
    assert any(not np.array_equal(a, b) for a, b in zip(masks, refined, strict=True))
