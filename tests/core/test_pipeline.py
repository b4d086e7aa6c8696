"""The whole pipeline in one call (`pseudolabel run` / `demo`), on tiny models and images."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pseudolabel.cli.main import cli
from pseudolabel.config import from_dict, to_dict
from pseudolabel.data import load_dataset, read_mask
from pseudolabel.errors import BadInputError
from pseudolabel.evaluate import ConfusionAccumulator
from pseudolabel.pipeline import PipelineConfig, demo_config, pipeline_config, run

TINY = ["--student", "test_resnet", "--epochs", "1", "--image-size", "64", "--batch-size", "8",
        "--workers", "0", "--scales", "1", "--device", "cpu"]


def tiny_config():
    cfg = demo_config(epochs=1, device="cpu")
    return dataclasses.replace(
        cfg,
        train=dataclasses.replace(cfg.train, student="test_resnet", image_size=64, batch_size=8,
                                  num_workers=0),
        cams=dataclasses.replace(cfg.cams, scales=(1.0,), workers=0, batch_size=8),
        compare=("threshold", "gmm", "threshold+crf"),
        refine=dataclasses.replace(cfg.refine, workers=1),
    )


def test_pipeline_writes_every_stage_and_scores_its_masks(demo_root: Path, tmp_path: Path
                                                          ) -> None:
    result = run(tiny_config(), demo_root, tmp_path / "out")
    data = load_dataset(demo_root, "train")
    for path in (result.run_dir / "student.pt", result.cams, result.report,
                 tmp_path / "out" / "pipeline.yaml"):
        assert path is not None and path.is_file(), path
    masks = sorted(p.stem for p in result.masks.glob("*.png"))
    assert masks == sorted(data.ids)
    # the reported scores are those of the masks on disk (an independent recount), and the
    # context leakage is the share of chimney pixels the masks call smoke
    acc = ConfusionAccumulator(2)
    leaked = counted = 0
    for sample in data:
        pred = read_mask(result.masks / f"{sample.id}.png")
        gt = data.read_gt(sample)
        assert pred.shape == gt.shape and set(np.unique(pred)) <= {0, 1, 255}
        acc.update(pred, gt)
        context = read_mask(demo_root / "SegmentationContext" / f"{sample.id}.png") == 1
        leaked += int((context & (pred == 1)).sum())
        counted += int(context.sum())
    expected = acc.compute()
    saved = json.loads((tmp_path / "out" / "evaluate.json").read_text())
    assert abs(saved["miou"] - expected["miou"]) < 1e-9
    assert counted > 0 and saved["context_leakage"]["smoke"] == pytest.approx(leaked / counted)
    assert result.scores is not None
    assert set(result.compared) == {"threshold", "gmm", "threshold+crf"}
    table = result.table()
    assert "| contrast→gmm:components=3,scope=dataset |" in table
    assert "| threshold+crf |" in table
    assert "smoke leakage" in table.splitlines()[0]
    # a negative image gets no smoke
    negatives = [s for s in data if not s.labels]
    assert negatives
    for s in negatives:
        assert not (read_mask(result.masks / f"{s.id}.png") == 1).any()


def test_presets_load_and_the_saved_config_replays(tmp_path: Path) -> None:
    from pseudolabel import presets

    assert {"fast", "best", "demo"} <= set(presets.names()) and presets.DEFAULT in presets.names()
    for name in presets.names():
        cfg = pipeline_config(name)
        assert isinstance(cfg, PipelineConfig) and cfg.refine.refiners
        assert presets.describe(name).startswith(name + ":")
    # precedence: preset < config file < options; the saved config is the same config again
    (tmp_path / "c.yaml").write_text("train:\n  epochs: 3\n  lr: 0.01\nrefine:\n  refiners: [gmm]\n")
    cfg = pipeline_config("fast", tmp_path / "c.yaml", epochs=2, device="cpu", workers=0)
    assert (cfg.train.epochs, cfg.train.lr, cfg.refine.refiners) == (2, 0.01, ("gmm",))
    assert cfg.train.device == cfg.cams.device == "cpu"
    assert cfg.train.num_workers == 0 and cfg.refine.workers == 1
    assert cfg.train.image_size == pipeline_config("fast").train.image_size
    (tmp_path / "saved.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    assert pipeline_config("best", tmp_path / "saved.yaml") == cfg
    assert from_dict(PipelineConfig, to_dict(cfg)) == cfg
    with pytest.raises(BadInputError, match="unknown preset 'nope'"):
        pipeline_config("nope")
    (tmp_path / "bad.yaml").write_text("train:\n  epochs: -1\n")
    with pytest.raises(BadInputError, match=r"bad\.yaml.*epochs"):
        pipeline_config("fast", tmp_path / "bad.yaml")


def test_run_cli_resumes_and_refuses_bad_input(demo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "work"
    args = ["run", str(demo_root), "--out", str(out), "--preset", "fast", *TINY, "--no-report"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "smoke leakage" in first.output and f"masks: {out / 'masks'}" in first.output
    student = out / "run" / "student.pt"
    stamp = student.stat().st_mtime_ns
    (out / "masks" / "demo_00000.png").unlink(missing_ok=True)  # as if killed mid-refine
    before = {p.name: p.read_bytes() for p in (out / "masks").glob("*.png")}
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert student.stat().st_mtime_ns == stamp  # training was not redone
    after = {p.name: p.read_bytes() for p in (out / "masks").glob("*.png")}
    assert {k: after[k] for k in before} == before and len(after) == len(load_dataset(
        demo_root, "train"))
    # the saved config replays: the same run again, still nothing to redo
    replay = CliRunner().invoke(cli, ["run", str(demo_root), "--out", str(out), "--config",
                                      str(out / "pipeline.yaml"), "--no-report"])
    assert replay.exit_code == 0, replay.output
    assert student.stat().st_mtime_ns == stamp
    listed = CliRunner().invoke(cli, ["run", "--list-presets"])
    assert listed.exit_code == 0 and "fast" in listed.output and "(default)" in listed.output
    for bad in (["--preset", "nope"], ["--epochs", "0"]):
        res = CliRunner().invoke(cli, ["run", str(demo_root), "--out", str(tmp_path / "x"), *bad])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output


def test_preset_files_are_package_data() -> None:
    import configparser

    root = Path(__file__).resolve().parents[2]
    cfg = configparser.ConfigParser()
    cfg.read(root / "setup.cfg")
    assert "*.yaml" in cfg["options.package_data"]["pseudolabel.presets"]
    assert "pseudolabel.presets" in cfg["options"]["packages"].split()
