"""Bad data through the CLI: exit 2, exactly one 'error:' line naming the file, no traceback;
--skip-bad goes on."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from pseudolabel.cli.main import cli

from cli_helpers import assert_one_line_error


def _corrupt_gt(root: Path) -> str:
    (root / "SegmentationClass" / "img1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return "SegmentationClass/img1.png"


def _text_as_mask(root: Path) -> str:
    (root / "masks" / "img2.png").write_text("hello")
    return "masks/img2.png"


def _blank_class_line(root: Path) -> str:
    (root / "classes.txt").write_text("cat\n\ndog\n")
    return "classes.txt"


def _no_images(root: Path) -> str:
    shutil.rmtree(root / "JPEGImages")
    return str(root.name)


def _bad_header(root: Path) -> str:
    (root / "labels.csv").write_text("file;classes\n")
    return "labels.csv"


def _unknown_class(root: Path) -> str:
    (root / "labels.csv").write_text("image,labels\nimg0,cat\nimg1,horse\nimg2,dog\nimg3,\n")
    return "labels.csv"


def _escaping_id(root: Path) -> str:
    folder = root / "ImageSets" / "Segmentation"
    folder.mkdir(parents=True)
    (folder / "val.txt").write_text("img0\n../../etc/passwd\n")
    return "val.txt"


CASES: dict[str, Callable[[Path], str]] = {
    "corrupt ground truth": _corrupt_gt,
    "text file as a mask": _text_as_mask,
    "blank line in classes.txt": _blank_class_line,
    "no JPEGImages": _no_images,
    "bad labels.csv header": _bad_header,
    "unknown class": _unknown_class,
    "id leaving the root": _escaping_id,
}


@pytest.mark.parametrize("case", list(CASES))
def test_evaluate_bad_data(case: str, tiny_voc_root) -> None:
    root = tiny_voc_root()
    shutil.copytree(root / "SegmentationClass", root / "masks")
    where = CASES[case](root)
    split = ["--split", "val"] if case == "id leaving the root" else []
    result = CliRunner().invoke(cli, ["evaluate", str(root / "masks"), "--gt", str(root), *split])
    assert_one_line_error(result, where)


@pytest.mark.parametrize("case", ["blank line in classes.txt", "no JPEGImages",
                                  "bad labels.csv header"])
def test_inspect_cannot_read_root(case: str, tiny_voc_root) -> None:
    root = tiny_voc_root()
    where = CASES[case](root)
    assert_one_line_error(CliRunner().invoke(cli, ["inspect", str(root)]), where)


# exit 2 when the problem would stop train (an error), 0 for a warning (a bad ground-truth mask)
@pytest.mark.parametrize(("case", "code"), [("unknown class", 2), ("id leaving the root", 2),
                                            ("corrupt ground truth", 0)])
def test_inspect_lists_what_evaluate_refuses(case: str, code: int, tiny_voc_root) -> None:
    root = tiny_voc_root()
    where = CASES[case](root)
    split = ["--split", "val"] if case == "id leaving the root" else []
    result = CliRunner().invoke(cli, ["inspect", str(root), *split])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert any(where in line for line in result.output.splitlines() if line.startswith("  ["))


@pytest.mark.parametrize("case", ["corrupt ground truth", "text file as a mask",
                                  "unknown class"])
def test_evaluate_skip_bad_goes_on(case: str, tiny_voc_root) -> None:
    root = tiny_voc_root()
    shutil.copytree(root / "SegmentationClass", root / "masks")
    CASES[case](root)
    result = CliRunner().invoke(cli, ["evaluate", str(root / "masks"), "--gt", str(root),
                                      "--skip-bad"])
    assert result.exit_code == 0, result.output
    assert "images 3" in result.output and "mIoU 1.0000" in result.output
