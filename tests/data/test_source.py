"""One way to open a data set (a VOC root or COCO) and no import loop inside pseudolabel.data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from data.test_coco import write_coco
from pseudolabel.data import DatasetIndex, DataSource, load_coco, load_dataset, open_dataset
from pseudolabel.errors import BadInputError

DATA = Path(__file__).resolve().parents[2] / "pseudolabel" / "data"


def test_a_root_and_a_coco_file_open_as_the_same_index(tiny_voc_root, tmp_path: Path) -> None:
    root = tiny_voc_root()
    voc = open_dataset(root)
    assert isinstance(voc, DatasetIndex) and voc.ids == load_dataset(root).ids
    assert voc.image_dir == root / "JPEGImages" and voc.label_file == root / "labels.csv"
    assert open_dataset(DataSource(root=root), "train").ids == voc.ids
    (tmp_path / "c").mkdir()
    path, images = write_coco(tmp_path / "c")
    coco = open_dataset(DataSource(coco=path, images=images))
    assert isinstance(coco, DatasetIndex) and coco.image_dir == images
    assert coco.label_file == path  # what train names when a class has no positive image
    assert coco.ids == load_coco(path, images).ids == ["a", "b", "c"]
    assert coco.classes == ("cat", "person", "dog")
    # train's default split, "train", is every image of a COCO file as of a root without splits
    assert open_dataset(DataSource(coco=str(path), images=str(images)), "train").ids == coco.ids
    source = DataSource(coco=str(path), images=str(images))
    assert source.to_dict() == {"coco": str(path.resolve()), "images": str(images.resolve())}
    assert source.where == path == source.classes_file
    assert DataSource.of(root).to_dict() == {"root": str(root.resolve())}
    assert DataSource.of(root).classes_file == root / "classes.txt"
    assert DataSource.of(source) is source


def test_a_source_must_be_one_kind() -> None:
    with pytest.raises(BadInputError, match="give ROOT, or --coco FILE --images DIR"):
        DataSource()
    with pytest.raises(BadInputError, match="needs its image folder"):
        DataSource(coco="x.json")
    with pytest.raises(BadInputError, match="--images goes with --coco"):
        DataSource(root="r", images="i")
    with pytest.raises(BadInputError, match="give ROOT, or --coco"):
        DataSource(root="r", coco="x.json", images="i")


def _imports(path: Path) -> set[str]:
    """The pseudolabel.data modules ``path`` imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n.rsplit(".", 1)[-1] for n in names
            if n.startswith("pseudolabel.data.") and n.count(".") == 2}


def test_no_import_loop_between_the_data_modules() -> None:
    graph = {p.stem: _imports(p) for p in DATA.glob("*.py") if p.stem != "__init__"}
    assert "dataset" in graph["coco"] and "coco" in graph["source"]  # the graph is read

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    loops = sorted(m for m in graph if reaches(m, m, set()))
    assert not loops, f"import loop through {loops}"
