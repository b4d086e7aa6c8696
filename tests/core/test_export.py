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


def _export(masks: Path, root: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["export", str(masks), "--images", str(root), "--out",
                                    str(out), *extra])


def test_export_keeps_files_it_did_not_write(tmp_path: Path) -> None:
    """A folder with a train.txt that no export wrote, the data set root itself and an export
    of other options are refused (exit 2) unless --overwrite; the same export again is fine."""
    root = _root(tmp_path)
    masks = tmp_path / "masks"
    write_mask(masks / "a0.png", np.zeros((8, 8), np.uint8))
    own = tmp_path / "own"
    own.mkdir()
    (own / "train.txt").write_text("precious\n")
    assert_one_line_error(_export(masks, root, own), "own", "not made by this stage",
                          "--overwrite")
    assert (own / "train.txt").read_text() == "precious\n"
    before = (root / "classes.txt").read_bytes()
    assert_one_line_error(_export(masks, root, root), "an input of the export")
    assert_one_line_error(_export(masks, root, masks), "an input of the export")
    assert (root / "classes.txt").read_bytes() == before and not (root / "train.txt").exists()
    out = tmp_path / "out"
    assert _export(masks, root, out).exit_code == 0
    assert _export(masks, root, out).exit_code == 0  # the same export again
    assert_one_line_error(_export(masks, root, out, "--crop", "256"), "crop: 512 -> 256",
                          "--overwrite")
    result = _export(masks, root, out, "--crop", "256", "--overwrite")
    assert result.exit_code == 0, result.output
    assert "crop_size = (256, 256)" in (out / "mmseg_dataset.py").read_text()
    assert "overwrite" not in (out / "export.yaml").read_text()  # replaying never overwrites
    assert _export(masks, root, own, "--overwrite").exit_code == 0
    assert (own / "train.txt").read_text() == "a0\n"
