"""`pseudolabel export`: what a segmentation framework needs, and clear errors."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from pseudolabel.cli.main import cli
from pseudolabel.data.masks import write_mask

from cli_helpers import assert_one_line_error


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "classes.txt").write_text("smoke\nchimney\n")
    for i in range(3):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "JPEGImages" / f"a{i}.jpg")
    return root


def test_export_writes_split_classes_and_a_parsable_mmseg_config(tmp_path: Path) -> None:
    root = _root(tmp_path)
    masks = tmp_path / "masks"
    for i in (0, 2):
        write_mask(masks / f"a{i}.png", np.zeros((8, 8), np.uint8))
    result = CliRunner().invoke(cli, ["export", str(masks), "--images", str(root),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert (out / "train.txt").read_text().split() == ["a0", "a2"]
    assert (out / "classes.txt").read_text().split() == ["background", "smoke", "chimney"]
    tree = ast.parse((out / "mmseg_dataset.py").read_text())
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    assert {"train_dataloader", "metainfo", "dataset_type"} <= names
    assert str(masks.resolve()) in (out / "mmseg_dataset.py").read_text()


def test_export_without_masks_is_a_clear_error(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["export", str(tmp_path / "empty"), "--images", str(root),
                                      "--out", str(tmp_path / "out")])
    assert_one_line_error(result, "empty")
