"""``pseudolabel inspect``: counts, co-occurrence, every problem listed, exit codes (2 when a
problem would stop ``train``, 0 when clean or warnings only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from pseudolabel.cli.main import cli
from pseudolabel.data import write_mask

from cli_helpers import assert_one_line_error


def invoke(*args: str):
    return CliRunner().invoke(cli, ["inspect", *map(str, args)])


def test_demo_root_has_no_problem(demo_root: Path, tmp_path: Path) -> None:
    result = invoke(demo_root, "--split", "train", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "problems: none" in result.output
    data = json.loads((tmp_path / "r.json").read_text())
    labels = (demo_root / "labels.csv").read_text().splitlines()[1:]
    train = set((demo_root / "ImageSets/Segmentation/train.txt").read_text().split())
    smoke = sum(1 for r in labels if r.split(",")[0] in train and r.endswith("smoke"))
    assert data["images"] == len(train) and data["images_per_class"] == {"smoke": smoke}
    assert data["negatives"] == len(train) - smoke and data["masks"] == len(train)
    assert data["options"]["split"] == "train"
    assert f"smoke  {smoke:>7}" in result.output


def broken_root(tiny_voc_root) -> Path:
    labels = {"a": ("cat",), "b": ("dog",), "c": ("cat", "dog"), "d": (), "e": ("cat",),
              "f": ("dog",), "g": ("cat", "dog")}
    root = tiny_voc_root(labels=labels)
    csv = (root / "labels.csv").read_text().replace("b,dog", "b,unicorn")
    csv = csv.replace("e,cat\n", "") + "ghost,cat\n"
    (root / "labels.csv").write_text(csv)
    write_mask(root / "SegmentationClass" / "c.png", np.zeros((8, 8), np.uint8))  # wrong size
    write_mask(root / "SegmentationClass" / "d.png", np.full((32, 40), 9, np.uint8))  # values
    write_mask(root / "SegmentationClass" / "f.png", np.zeros((32, 40), np.uint8))  # no dog
    (root / "JPEGImages" / "g.png").write_text("not an image")
    return root


def test_every_problem_is_listed_and_errors_exit_2(tiny_voc_root, tmp_path: Path) -> None:
    root = broken_root(tiny_voc_root)
    result = invoke(root, "--json", tmp_path / "r.json")
    assert result.exit_code == 2, result.output  # unknown class, missing row, bad image
    assert "3 problem(s) would stop `pseudolabel train`" in result.output
    data = json.loads((tmp_path / "r.json").read_text())
    kinds = sorted(p["kind"] for p in data["problems"])
    assert kinds == ["bad-image", "label-without-image", "mask-labels", "mask-size",
                     "mask-values", "no-label-row", "unknown-class"]
    severity = {p["kind"]: p["severity"] for p in data["problems"]}
    assert {k for k, v in severity.items() if v == "error"} == {
        "bad-image", "no-label-row", "unknown-class"}
    assert data["errors"] == 3 and data["warnings"] == 4
    by_kind = {p["kind"]: p for p in data["problems"]}
    assert by_kind["mask-size"]["image"] == "c" and "8x8" in by_kind["mask-size"]["message"]
    assert by_kind["mask-values"]["path"].endswith("SegmentationClass/d.png")
    assert by_kind["bad-image"]["path"].endswith("JPEGImages/g.png")
    for kind in kinds:
        assert f"[{kind}]" in result.output
    # the co-occurrence of the images kept (b and e are left out), against a naive count
    kept = {"a": ("cat",), "c": ("cat", "dog"), "d": (), "f": ("dog",), "g": ("cat", "dog")}
    naive = [[sum(1 for ls in kept.values() if x in ls and y in ls) for y in ("cat", "dog")]
             for x in ("cat", "dog")]
    assert data["cooccurrence"] == naive and data["negatives"] == 1
    two = invoke(root, "--json", tmp_path / "r2.json", "--workers", "2")
    assert two.exit_code == 2
    assert json.loads((tmp_path / "r2.json").read_text())["problems"] == data["problems"]


def test_decode_finds_truncated_images(tiny_voc_root) -> None:
    root = tiny_voc_root(suffix=".jpg")
    path = root / "JPEGImages" / "img1.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 40, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:-200])
    assert "problems: none" in invoke(root).output  # the header is fine
    result = invoke(root, "--decode")
    assert result.exit_code == 2 and "[bad-image]" in result.output and "img1.jpg" in result.output


def test_unreadable_roots_exit_2_with_one_line(tiny_voc_root, tmp_path: Path) -> None:
    assert_one_line_error(invoke(tmp_path / "missing"), "not a folder")
    root = tiny_voc_root()
    (root / "classes.txt").write_text("cat\ncat\n")
    assert_one_line_error(invoke(root), "classes.txt", "listed twice")
    result = invoke("--coco", tmp_path / "x.json")
    assert result.exit_code == 2 and "--images" in result.output
    assert invoke().exit_code == 2


def test_coco_inspect(tmp_path: Path) -> None:
    from data.test_coco import write_coco

    path, images = write_coco(tmp_path)
    result = invoke("--coco", path, "--images", images)
    assert result.exit_code == 0, result.output
    assert "images: 3" in result.output and "person" in result.output
    assert "problems: none" in result.output


def test_warnings_only_exit_0_and_train_agrees(tiny_voc_root, tmp_path: Path) -> None:
    """The exit status says whether train would stop: warnings (masks, label rows without an
    image) do not stop it, errors do."""
    from pseudolabel.data import load_dataset

    root = tiny_voc_root()
    write_mask(root / "SegmentationClass" / "img1.png", np.zeros((8, 8), np.uint8))
    with open(root / "labels.csv", "a") as fh:
        fh.write("ghost,cat\n")
    result = invoke(root)
    assert result.exit_code == 0, result.output
    assert "warnings: 2" in result.output and "errors (" not in result.output
    assert len(load_dataset(root)) == 4  # what train reads: no error
    (root / "labels.csv").write_text((root / "labels.csv").read_text().replace(
        "img2,cat dog", "img2,cat,dog"))  # an undeclared column: an error
    result = invoke(root)
    assert result.exit_code == 2 and "[bad-label-row]" in result.output
    assert "img2,cat dog" in result.output  # the fix


def test_unsupported_files_and_unknown_splits(tiny_voc_root) -> None:
    root = tiny_voc_root()
    (root / "JPEGImages" / "img3.png").rename(root / "JPEGImages" / "img3.gif")
    (root / "JPEGImages" / "img2.png").rename(root / "JPEGImages" / "img2.Jpg")
    result = invoke(root)
    assert result.exit_code == 2 and "[unsupported-image]" in result.output
    assert "img3.gif" in result.output and "images: 3" in result.output  # img2.Jpg is counted
    assert_one_line_error(invoke(root, "--split", "nonsense"), "no split 'nonsense'",
                          "ImageSets/Segmentation")
