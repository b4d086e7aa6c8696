"""Dataset roots: both label formats, classes.txt, splits, and every bad input under each policy."""

from __future__ import annotations

import logging
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pseudolabel.data import VOC_CLASSES, load_dataset, read_classes
from pseudolabel.errors import BadInputError

from tiny_roots import DEFAULT_LABELS, tiny_mask


def test_labels_csv_root(tiny_voc_root) -> None:
    root = tiny_voc_root()
    ds = load_dataset(root)
    assert ds.classes == ("cat", "dog") and ds.split is None and not ds.problems
    assert ds.ids == ["img0", "img1", "img2", "img3"]
    assert [s.labels for s in ds] == [(0,), (1,), (0, 1), ()]
    np.testing.assert_array_equal(ds.label_matrix(), [[1, 0], [0, 1], [1, 1], [0, 0]])
    assert ds.has_gt and ds[0].mask == root / "SegmentationClass" / "img0.png"
    np.testing.assert_array_equal(ds.read_gt(ds[2]), tiny_mask([0, 1], (32, 40)))
    assert ds[0].image == root / "JPEGImages" / "img0.png"
    again = pickle.loads(pickle.dumps(ds))
    assert again.samples == ds.samples and again.classes == ds.classes
    sub = ds.subset(["img2", "img0"])
    assert sub.ids == ["img2", "img0"] and sub.classes == ds.classes


def test_annotations_xml_root_and_voc_default_classes(tiny_voc_root) -> None:
    root = tiny_voc_root(label_format="xml", suffix=".jpg")
    ds = load_dataset(root)
    assert [s.labels for s in ds] == [(0,), (1,), (0, 1), ()]
    (root / "classes.txt").unlink()  # without classes.txt: the VOC list
    ds = load_dataset(root)
    assert ds.classes == VOC_CLASSES
    cat, dog = VOC_CLASSES.index("cat"), VOC_CLASSES.index("dog")
    assert [s.labels for s in ds] == [(cat,), (dog,), (cat, dog), ()]
    (root / "Annotations" / "img1.xml").write_text("<annotation><object>")
    with pytest.raises(BadInputError, match=r"Annotations/img1\.xml: not valid XML"):
        load_dataset(root)
    (root / "Annotations" / "img1.xml").unlink()
    with pytest.raises(BadInputError, match=r"img1\.xml: image 'img1' has no annotation"):
        load_dataset(root)
    (root / "Annotations" / "img1.xml").write_text(
        "<annotation><object><name>unicorn</name></object></annotation>")
    with pytest.raises(BadInputError, match=r"img1\.xml: unknown class 'unicorn'"):
        load_dataset(root)
    assert load_dataset(root, policy="skip").ids == ["img0", "img2", "img3"]


def test_classes_txt_background_line_and_bad_lists(tmp_path: Path, tiny_voc_root) -> None:
    root = tiny_voc_root(background_line=True)
    ds = load_dataset(root)
    assert ds.classes == ("cat", "dog") and [s.labels for s in ds][2] == (0, 1)
    path = tmp_path / "classes.txt"
    cases = {
        "cat\ndog\ncat\n": "class 'cat' is listed twice",
        "cat\n\ndog\n": "blank line 2",
        "background\n": "names no foreground class",
        "hot dog\n": "holds a space",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(BadInputError, match=message) as info:
            read_classes(path)
        assert str(info.value).startswith(str(path))
    path.write_text("\ufeffbackground\ncat\ndog\n\n\n")  # BOM and trailing blank lines are fine
    assert read_classes(path) == (("cat", "dog"), True)
    shutil.copy(path, root / "classes.txt")
    (root / "classes.txt").write_text("cat\ncat\n")
    with pytest.raises(BadInputError, match=r"classes\.txt"):
        load_dataset(root, policy="collect")  # cannot read the root at all


def test_splits(tiny_voc_root) -> None:
    root = tiny_voc_root(splits={"train": ["img0", "img2"], "val": ["img3", "img1"]})
    assert load_dataset(root, "train").ids == ["img0", "img2"]
    assert load_dataset(root, "val").ids == ["img3", "img1"]  # split order kept
    assert len(load_dataset(root)) == 4  # no split: every image
    with pytest.raises(BadInputError, match=r"no split 'test'.*use one of: train, val"):
        load_dataset(root, "test")
    split = root / "ImageSets" / "Segmentation" / "val.txt"
    split.write_text("# comment\n\nimg3 extra-column\n  img1  \n")
    assert load_dataset(root, "val").ids == ["img3", "img1"]
    split.write_text("\n# only a comment\n")
    with pytest.raises(BadInputError, match=r"val\.txt: split file lists no image"):
        load_dataset(root, "val")
    no_sets = tiny_voc_root()
    assert len(load_dataset(no_sets, "train")) == 4  # no ImageSets: the split is every image


def _unknown_class(root: Path) -> None:
    text = (root / "labels.csv").read_text().replace("img1,dog", "img1,unicorn")
    (root / "labels.csv").write_text(text)


def _id_without_image(root: Path) -> None:
    (root / "JPEGImages" / "img1.png").unlink()


def _image_without_row(root: Path) -> None:
    (root / "labels.csv").write_text((root / "labels.csv").read_text().replace("img1,dog\n", ""))


def _duplicate_id(root: Path) -> None:
    (root / "ImageSets" / "Segmentation" / "all.txt").write_text("img0\nimg1\nimg2\nimg3\nimg1\n")


def _parent_id(root: Path) -> None:
    (root / "ImageSets" / "Segmentation" / "all.txt").write_text("img0\n../img1\nimg2\nimg3\n")


def _absolute_id(root: Path) -> None:
    (root / "ImageSets" / "Segmentation" / "all.txt").write_text("img0\n/etc/passwd\nimg2\nimg3\n")


def _duplicate_row(root: Path) -> None:
    with open(root / "labels.csv", "a") as fh:
        fh.write("img1,cat\n")


# mutation, problem kind, file named in the error, ids left under "skip"
CASES: dict[str, tuple[Callable[[Path], None], str, str, list[str]]] = {
    "unknown class": (_unknown_class, "unknown-class", "labels.csv", ["img0", "img2", "img3"]),
    "id without image": (_id_without_image, "missing-image", "JPEGImages/img1",
                         ["img0", "img2", "img3"]),
    "image without label row": (_image_without_row, "no-label-row", "labels.csv",
                                ["img0", "img2", "img3"]),
    "duplicate id": (_duplicate_id, "duplicate-id", "all.txt", ["img0", "img1", "img2", "img3"]),
    "id with ..": (_parent_id, "bad-id", "all.txt", ["img0", "img2", "img3"]),
    "absolute id": (_absolute_id, "bad-id", "all.txt", ["img0", "img2", "img3"]),
    "duplicate label row": (_duplicate_row, "duplicate-label-row", "labels.csv",
                            ["img0", "img1", "img2", "img3"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_under_each_policy(case: str, tiny_voc_root, caplog) -> None:
    mutate, kind, where, kept = CASES[case]
    root = tiny_voc_root(splits={"all": list(DEFAULT_LABELS)})
    mutate(root)
    with pytest.raises(BadInputError) as info:
        load_dataset(root, "all")
    line = str(info.value)
    assert where in line.split(": ")[0] and "; fix: " in line and "\n" not in line, line
    with caplog.at_level(logging.WARNING):
        skipped = load_dataset(root, "all", policy="skip")
    assert skipped.ids == kept
    assert any("skipped" in r.getMessage() and where in r.getMessage() for r in caplog.records)
    collected = load_dataset(root, "all", policy="collect")
    assert [p.kind for p in collected.problems] == [kind]
    assert where in str(collected.problems[0].path)


def test_collect_reports_label_rows_without_image(tiny_voc_root) -> None:
    root = tiny_voc_root()
    with open(root / "labels.csv", "a") as fh:
        fh.write("ghost,cat\n")
    ds = load_dataset(root, policy="collect")
    assert [p.kind for p in ds.problems] == ["label-without-image"] and len(ds) == 4
    assert load_dataset(root).ids == ds.ids  # not an error when loading for work


def test_labels_csv_with_suffixes_and_blank_rows(tiny_voc_root) -> None:
    root = tiny_voc_root()
    (root / "labels.csv").write_text("image,labels\nimg0.jpg,cat\n\nimg1,dog\nimg2,dog cat\nimg3,\n")
    assert [s.labels for s in load_dataset(root)] == [(0,), (1,), (0, 1), ()]


def test_roots_that_cannot_be_read(tmp_path: Path, tiny_voc_root) -> None:
    with pytest.raises(BadInputError, match="not a folder"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(BadInputError, match="no JPEGImages"):
        load_dataset(tmp_path)
    root = tiny_voc_root()
    (root / "labels.csv").write_text("id,classes\nimg0,cat\n")
    with pytest.raises(BadInputError, match=r"labels\.csv: labels\.csv must start with the header"):
        load_dataset(root)
    (root / "labels.csv").write_bytes(b"image,labels\n\xff\xfe,cat\n")
    with pytest.raises(BadInputError, match="not valid CSV text"):
        load_dataset(root)
    (root / "labels.csv").unlink()
    with pytest.raises(BadInputError, match=r"no labels\.csv"):
        load_dataset(root)
    assert len(load_dataset(root, require_labels=False)) == 4  # evaluate needs no labels
    (root / "classes.txt").unlink()
    with pytest.raises(BadInputError, match=r"no classes\.txt"):
        load_dataset(root, require_labels=False)
    empty = tiny_voc_root()
    for p in (empty / "JPEGImages").iterdir():
        p.unlink()
    with pytest.raises(BadInputError, match="JPEGImages/ holds no image"):
        load_dataset(empty)


# ------------------------------------------------------------------ nothing dropped silently
def test_a_label_row_with_an_extra_column_is_a_problem(tiny_voc_root, caplog) -> None:
    root = tiny_voc_root()
    text = (root / "labels.csv").read_text()
    (root / "labels.csv").write_text(text.replace("img2,cat dog", "img2,cat,dog"))
    with pytest.raises(BadInputError, match=r"labels\.csv: line \d: image 'img2' has 3 columns"
                                            r".*fix: .*`img2,cat dog`"):
        load_dataset(root)
    with caplog.at_level(logging.WARNING):
        assert load_dataset(root, policy="skip").ids == ["img0", "img1", "img3"]
    assert any("skipped" in r.getMessage() and "img2" in r.getMessage() for r in caplog.records)
    collected = load_dataset(root, policy="collect")
    assert [p.kind for p in collected.problems] == ["bad-label-row"]
    assert collected.problems[0].severity == "error"
    # a trailing empty cell (a spreadsheet's export) holds no class: nothing is dropped
    (root / "labels.csv").write_text(text.replace("img2,cat dog", "img2,cat dog,"))
    assert load_dataset(root).by_id()["img2"].labels == (0, 1)
    (root / "labels.csv").write_text(text.replace("image,labels", "image,labels,notes"))
    with pytest.raises(BadInputError, match="3 columns, not the two"):
        load_dataset(root)


def test_image_suffixes_in_any_case_and_unsupported_files(tiny_voc_root, caplog) -> None:
    root = tiny_voc_root()
    images = root / "JPEGImages"
    (images / "img1.png").rename(images / "img1.Png")
    (images / "img2.png").rename(images / "img2.PNG")
    assert load_dataset(root).ids == ["img0", "img1", "img2", "img3"]  # none disappears
    assert load_dataset(root).by_id()["img1"].image == images / "img1.Png"
    (images / "img3.png").rename(images / "img3.gif")
    with pytest.raises(BadInputError, match=r"JPEGImages/img3\.gif: \.gif is not an image "
                                            r"format.*fix: convert it"):
        load_dataset(root)
    with caplog.at_level(logging.WARNING):
        assert load_dataset(root, policy="skip").ids == ["img0", "img1", "img2"]
    assert any("img3.gif" in r.getMessage() for r in caplog.records)
    kinds = [p.kind for p in load_dataset(root, policy="collect").problems]
    assert kinds == ["unsupported-image"]  # not also "label row without image"
    # a split file that lists it: the same problem, not "listed but has no file"
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "all.txt").write_text("img1\nimg3\n")
    with pytest.raises(BadInputError, match=r"img3\.gif: \.gif is not an image format"):
        load_dataset(root, "all")
    # two files of one id: not one silently picked
    (images / "img3.gif").unlink()
    shutil.copy(images / "img0.png", images / "img0.jpg")
    with pytest.raises(BadInputError, match=r"image id 'img0' has 2 files \(img0\.jpg, img0\.png"):
        load_dataset(root)


def test_ids_with_control_characters_are_refused(tiny_voc_root) -> None:
    from pseudolabel.io import check_image_id

    for bad in ("x\n", "x\r\n", "a\x00b", "x\t", "\nx"):
        with pytest.raises(BadInputError, match="not a plain relative name"):
            check_image_id(bad)
    assert check_image_id("2008/000_1.a-b") == "2008/000_1.a-b"
    root = tiny_voc_root()
    shutil.copy(root / "JPEGImages" / "img0.png", root / "JPEGImages" / "evil\n.png")
    with pytest.raises(BadInputError, match=r"image id 'evil\\n' is not a plain relative name"):
        load_dataset(root)
    assert "evil\n" not in load_dataset(root, policy="skip").ids


def test_an_unknown_split_is_an_error_on_every_root(tiny_voc_root) -> None:
    no_sets = tiny_voc_root()
    with pytest.raises(BadInputError, match=r"no split 'nonsense': the root has no split files"
                                            r".*fix: leave the split out"):
        load_dataset(no_sets, "nonsense")
    with pytest.raises(BadInputError, match="no split 'val'"):
        load_dataset(no_sets, "val")
    # train (the default of train and make-cams) and no split: every image
    assert load_dataset(no_sets, "train").ids == load_dataset(no_sets).ids == list(DEFAULT_LABELS)
    with_sets = tiny_voc_root(splits={"train": ["img0"], "val": ["img1"]})
    with pytest.raises(BadInputError, match=r"no split 'nonsense'.*use one of: train, val"):
        load_dataset(with_sets, "nonsense")


def test_every_problem_kind_has_a_severity_and_the_docs_list_it() -> None:
    import re

    from pseudolabel.data.dataset import PROBLEM_KINDS

    repo = Path(__file__).resolve().parents[2]
    code = "\n".join(p.read_text() for p in (repo / "pseudolabel" / "data").glob("*.py"))
    used = set(re.findall(r'Problem\(\s*"([a-z-]+)"', code))
    used |= set(re.findall(r'return Problem\("([a-z-]+)"', code))
    assert used and used <= set(PROBLEM_KINDS), used - set(PROBLEM_KINDS)
    docs = (repo / "docs" / "concepts.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (error|warning) \|", docs, re.M))
    assert rows == {kind: sev for kind, (sev, _) in PROBLEM_KINDS.items()}
