"""``pseudolabel evaluate``: the table, the JSON, options, and one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pseudolabel.cli.main import cli
from pseudolabel.data import load_dataset, read_mask, write_mask
from pseudolabel.evaluate import evaluate

from cli_helpers import assert_one_line_error


def invoke(*args: object):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def noisy_masks(root: Path, out: Path) -> Path:
    rng = np.random.default_rng(1)
    for p in sorted((root / "SegmentationClass").glob("*.png")):
        m = read_mask(p)
        m[rng.random(m.shape) < 0.05] = 1
        m[:4, :4] = 255
        write_mask(out / p.name, m)
    return out


def test_table_and_json_match_the_library(demo_root: Path, tmp_path: Path) -> None:
    masks = noisy_masks(demo_root, tmp_path / "masks")
    out = tmp_path / "scores.json"
    result = invoke(masks, "--gt", demo_root, "--split", "val", "--json", out, "--worst", "2",
                    "--workers", "2")
    assert result.exit_code == 0, result.output
    expected = evaluate(masks, load_dataset(demo_root, "val", require_labels=False))
    data = json.loads(out.read_text())
    assert data["miou"] == expected.miou
    assert data["confusion"] == expected.confusion.tolist()
    assert data["coverage"] == expected.metrics["coverage"] < 1.0
    assert data["options"]["workers"] == 2 and data["options"]["split"] == "val"
    assert data["options"]["mask_dir"] == str(masks.resolve())
    lines = result.output.splitlines()
    lines = lines[next(i for i, ln in enumerate(lines) if ln.startswith("class")):]
    assert lines[0].split() == ["class", "IoU", "prec", "recall"]
    assert lines[2].split()[0] == "smoke"
    assert float(lines[2].split()[1]) == round(float(expected.metrics["iou"][1]), 4)
    assert f"mIoU {expected.miou:.4f}" in result.output
    assert "worst images" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masks", "scores.json"]


def test_perfect_masks_and_config_file(demo_root: Path, tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    shutil.copytree(demo_root / "SegmentationClass", masks)
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("split: train\nworst: 1\n")
    result = invoke(masks, "--gt", demo_root, "--config", cfg, "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["miou"] == 1.0 and data["coverage"] == 1.0
    assert data["options"]["split"] == "train" and len(data["worst"]) == 1


def test_missing_and_mismatched_masks(demo_root: Path, tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    shutil.copytree(demo_root / "SegmentationClass", masks)
    (masks / "demo_00003.png").unlink()
    assert_one_line_error(invoke(masks, "--gt", demo_root), "demo_00003.png", "no mask")
    ok = invoke(masks, "--gt", demo_root, "--allow-missing")
    assert ok.exit_code == 0 and "1 without a mask" in ok.output
    write_mask(masks / "demo_00004.png", np.zeros((10, 12), np.uint8))
    assert_one_line_error(invoke(masks, "--gt", demo_root, "--allow-missing"),
                          "demo_00004.png", "12x10 px", "64x64")
    ok = invoke(masks, "--gt", demo_root, "--skip-bad")
    assert ok.exit_code == 0 and "1 without a mask, 1 bad" in ok.output


def test_usage_errors(demo_root: Path, tmp_path: Path) -> None:
    both = invoke(tmp_path, "--gt", demo_root, "--coco", tmp_path / "x.json")
    assert both.exit_code == 2 and "either --gt" in both.output
    neither = invoke(tmp_path)
    assert neither.exit_code == 2
    assert_one_line_error(invoke(tmp_path / "nope", "--gt", demo_root), "mask folder")
    assert_one_line_error(invoke(tmp_path, "--gt", demo_root, "--split", "test"), "no split")


def test_coco_ground_truth(tmp_path: Path) -> None:
    from data.test_coco import write_coco

    path, images = write_coco(tmp_path)
    from pseudolabel.data.coco import load_coco

    ds = load_coco(path, images)
    for s in ds:
        write_mask(tmp_path / "masks" / f"{s.id}.png", ds.read_gt(s))
    result = invoke(tmp_path / "masks", "--coco", path, "--images", images)
    assert result.exit_code == 0, result.output
    assert "mIoU 1.0000" in result.output and "person" in result.output

