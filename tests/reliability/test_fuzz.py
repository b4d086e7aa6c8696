"""Fuzzing the readers: random and mutated inputs raise BadInputError or nothing, never else.

Readers: labels.csv, classes.txt, split files and VOC XML (through load_dataset), COCO JSON
(load_coco), the HDF5 CAM store (CamStore.open + read of every record), config YAML
(load_config_file + from_dict of each stage's config).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pseudolabel.errors import BadInputError

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

VALID_CSV = b"image,labels\na,cat\nb,dog cat\nc,\n"
VALID_CLASSES = b"cat\ndog\n"
VALID_SPLIT = b"a\nb\nc\n"
VALID_XML = (b"<annotation><filename>a.png</filename><object><name>cat</name></object>"
             b"<object><name>dog</name></object></annotation>")


def only_bad_input(fn: Callable[[], object]) -> None:
    """Run ``fn``; a BadInputError is a fine answer, any other exception fails the test."""
    try:
        fn()
    except BadInputError as exc:
        assert "\n" not in exc.one_line()


@st.composite
def mutated(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` with a few bytes replaced, inserted or removed, or truncated."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "truncate":
            del data[pos:]
    return bytes(data)


def contents(valid: bytes) -> st.SearchStrategy[bytes]:
    text = st.text(st.characters(codec="utf-8"), max_size=200).map(lambda s: s.encode())
    return st.one_of(st.binary(max_size=200), text, mutated(valid))


@contextmanager
def voc_root(csv: bytes = VALID_CSV, classes: bytes = VALID_CLASSES, split: bytes | None = None,
             xml: bytes | None = None) -> Iterator[Path]:
    """A 3-image root (ids a, b, c) with the given files, in a fresh temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "JPEGImages").mkdir()
        for i in "abc":
            Image.new("RGB", (4, 4)).save(root / "JPEGImages" / f"{i}.png")
        (root / "classes.txt").write_bytes(classes)
        if xml is None:
            (root / "labels.csv").write_bytes(csv)
        else:
            (root / "Annotations").mkdir()
            for i in "abc":
                (root / "Annotations" / f"{i}.xml").write_bytes(xml if i == "a" else VALID_XML)
        if split is not None:
            (root / "ImageSets" / "Segmentation").mkdir(parents=True)
            (root / "ImageSets" / "Segmentation" / "train.txt").write_bytes(split)
        yield root


def _load(root: Path, policy: str) -> None:
    from pseudolabel.data import load_dataset

    ds = load_dataset(root, split="train", policy=policy)
    assert all(all(0 <= c < ds.num_classes for c in s.labels) for s in ds)


@FUZZ
@given(data=contents(VALID_CSV), policy=st.sampled_from(["raise", "skip", "collect"]))
def test_labels_csv(data: bytes, policy: str) -> None:
    with voc_root(csv=data) as root:
        only_bad_input(lambda: _load(root, policy))


@FUZZ
@given(data=contents(VALID_CLASSES))
def test_classes_txt(data: bytes) -> None:
    with voc_root(classes=data) as root:
        only_bad_input(lambda: _load(root, "raise"))


utf8_text = st.text(st.characters(codec="utf-8"), max_size=200).map(str.encode)


@FUZZ
@given(data=st.one_of(utf8_text, mutated(VALID_SPLIT).filter(lambda b: _is_utf8(b))),
       policy=st.sampled_from(["raise", "skip"]))
def test_split_file(data: bytes, policy: str) -> None:
    with voc_root(split=data) as root:
        only_bad_input(lambda: _load(root, policy))


def test_split_file_not_utf8() -> None:
    with voc_root(split=b"a\n\x80b\n") as root:
        only_bad_input(lambda: _load(root, "raise"))


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(data=contents(VALID_XML), policy=st.sampled_from(["raise", "skip", "collect"]))
def test_voc_xml(data: bytes, policy: str) -> None:
    with voc_root(xml=data) as root:
        only_bad_input(lambda: _load(root, policy))


# ------------------------------------------------------------------------------ COCO
def _coco_valid() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 4},
                   {"id": 2, "file_name": "b.png", "height": 4, "width": 4}],
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0,
             "segmentation": [[0, 0, 3, 0, 3, 3]], "bbox": [0, 0, 3, 3], "area": 4},
            {"id": 2, "image_id": 2, "category_id": 7, "iscrowd": 1,
             "segmentation": {"counts": [4, 8, 4], "size": [4, 4]}, "bbox": [0, 0, 4, 4],
             "area": 8},
        ],
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=12)


@st.composite
def coco_documents(draw: st.DrawFn) -> bytes:
    """A valid COCO file with one value somewhere replaced by random JSON."""
    doc = _coco_valid()
    section = draw(st.sampled_from(["images", "categories", "annotations", None]))
    if section is None:
        doc[draw(st.sampled_from(["images", "categories", "annotations"]))] = draw(json_values)
    else:
        item = draw(st.sampled_from(doc[section]))
        item[draw(st.sampled_from(sorted(item)))] = draw(json_values)
    return json.dumps(doc).encode()


def _load_coco(data: bytes, policy: str) -> None:
    from pseudolabel.data import load_coco

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("a.png", "b.png"):
            Image.new("RGB", (4, 4)).save(folder / name)
        (folder / "instances.json").write_bytes(data)

        def load() -> None:
            ds = load_coco(folder / "instances.json", folder, policy=policy)
            for s in ds:
                ds.read_gt(s)

        only_bad_input(load)


@FUZZ
@given(data=mutated(json.dumps(_coco_valid()).encode()),
       policy=st.sampled_from(["raise", "skip", "collect"]))
def test_coco_json_mutated_bytes(data: bytes, policy: str) -> None:
    _load_coco(data, policy)


@FUZZ
@given(data=coco_documents(), policy=st.sampled_from(["raise", "skip", "collect"]))
def test_coco_json_wrong_types(data: bytes, policy: str) -> None:
    _load_coco(data, policy)


# ------------------------------------------------------------------------------ HDF5 store
def _read_all(path: Path) -> None:
    from pseudolabel.store import CamStore

    with CamStore.open(path) as store:
        for image_id in store.ids():
            rec = store.read(image_id)
            for cam in rec.cams.values():
                assert cam.ndim == 3 and cam.shape[0] == len(rec.class_indices)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_cam_store_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cams.h5"
        path.write_bytes(data)
        only_bad_input(lambda: _read_all(path))


@FUZZ
@given(data=st.data())
def test_cam_store_truncated(rel_cams: Path, data: st.DataObject) -> None:
    valid = rel_cams.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cams.h5"
        path.write_bytes(valid[: data.draw(st.integers(0, len(valid) - 1))])
        only_bad_input(lambda: _read_all(path))


@FUZZ
@given(data=st.data())
def test_cam_store_flipped_bytes(rel_cams: Path, data: st.DataObject) -> None:
    buf = bytearray(rel_cams.read_bytes())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cams.h5"
        for pos in data.draw(st.lists(st.integers(0, len(buf) - 1), min_size=1, max_size=8)):
            buf[pos] ^= 0xFF
        path.write_bytes(bytes(buf))
        only_bad_input(lambda: _read_all(path))


@FUZZ
@given(data=st.data())
def test_cam_store_garbage_attributes(rel_cams: Path, data: st.DataObject) -> None:
    import h5py

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cams.h5"
        shutil.copy(rel_cams, path)
        with h5py.File(path, "r+") as f:
            target = data.draw(st.sampled_from(sorted(f.attrs)))
            f.attrs[target] = data.draw(st.one_of(st.integers(-3, 300), st.text(max_size=10),
                                                  st.just(np.zeros((2, 3), np.float32))))
        only_bad_input(lambda: _read_all(path))


# ------------------------------------------------------------------------------ config files
def _stage_configs() -> list[type]:
    from pseudolabel.cams.stage import MakeCamsConfig
    from pseudolabel.refine.stage import RefineConfig
    from pseudolabel.train.config import TrainConfig

    return [TrainConfig, MakeCamsConfig, RefineConfig]


yaml_docs = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.dictionaries(st.sampled_from(["epochs", "batch_size", "image_size", "mode", "scales",
                                     "layers", "refiners", "workers", "lr", "seed", "flip",
                                     "augment", "split"]),
                    json_values, max_size=3).map(lambda d: json.dumps(d).encode()),
)


@pytest.mark.parametrize("config_class", _stage_configs(), ids=lambda c: c.__name__)
@FUZZ
@given(data=yaml_docs)
def test_config_yaml(config_class: type, data: bytes) -> None:
    from pseudolabel.config import from_dict, load_config_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(data)
        only_bad_input(lambda: from_dict(config_class, load_config_file(path), where=str(path)))
