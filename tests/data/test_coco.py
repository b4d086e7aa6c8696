"""COCO instances: RLE decoding (against an encoder written from the format), polygons (against a
naive per-pixel ray casting), classes/labels/masks of a hand-made file, bad input."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pseudolabel.data import DataSource, open_dataset
from pseudolabel.data.coco import (
    CocoMasks,
    decode_rle_string,
    load_coco,
    polygon_to_mask,
    rle_to_mask,
)
from pseudolabel.errors import BadInputError


def runs_of(mask: np.ndarray) -> list[int]:
    """Naive COCO run lengths: column-major, starting with a (possibly empty) run of zeros."""
    flat = mask.T.reshape(-1).tolist()
    runs, current, n = [], 0, 0
    for v in flat:
        if v != current:
            runs.append(n)
            current, n = v, 0
        n += 1
    runs.append(n)
    return runs


def encode_counts(runs: list[int]) -> str:
    """COCO's compressed RLE string, written from the format description."""
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        while True:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | 0x20 if more else c) + 48))
            if not more:
                break
    return "".join(out)


def naive_polygon(poly: list[float], h: int, w: int) -> np.ndarray:
    xs, ys = poly[0::2], poly[1::2]
    out = np.zeros((h, w), bool)
    for r in range(h):
        for c in range(w):
            px, py, inside = c + 0.5, r + 0.5, False
            j = len(xs) - 1
            for i in range(len(xs)):
                if (ys[i] > py) != (ys[j] > py) and px < (xs[j] - xs[i]) * (py - ys[i]) / (
                        ys[j] - ys[i]) + xs[i]:
                    inside = not inside
                j = i
            out[r, c] = inside
    return out


@pytest.mark.parametrize("seed", range(4))
def test_rle_round_trip(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 30, 2)
    mask = rng.random((h, w)) < rng.uniform(0.05, 0.95)
    if seed == 0:
        mask[:] = True  # starts with an empty run of zeros
    runs = runs_of(mask)
    assert sum(runs) == h * w
    np.testing.assert_array_equal(rle_to_mask(runs, h, w), mask)
    string = encode_counts(runs)
    assert decode_rle_string(string) == runs
    np.testing.assert_array_equal(rle_to_mask(decode_rle_string(string), h, w), mask)


def test_rle_string_with_large_and_negative_deltas() -> None:
    runs = [5, 100000, 3, 1, 70000, 2, 0, 123456]
    assert decode_rle_string(encode_counts(runs)) == runs
    with pytest.raises(ValueError):
        decode_rle_string("\x7f")
    with pytest.raises(ValueError):
        rle_to_mask([3, 4], 2, 2)


def test_polygon_matches_naive_ray_casting() -> None:
    np.testing.assert_array_equal(polygon_to_mask([0, 0, 4, 0, 4, 4, 0, 4], 6, 7),
                                  np.pad(np.ones((4, 4), bool), ((0, 2), (0, 3))))
    rng = np.random.default_rng(0)
    for _ in range(6):
        n = int(rng.integers(3, 9))
        poly = rng.uniform(-3, 23, 2 * n).tolist()  # also self-intersecting, outside
        np.testing.assert_array_equal(polygon_to_mask(poly, 17, 21), naive_polygon(poly, 17, 21))
    assert not polygon_to_mask([1, 1, 2, 2], 5, 5).any()  # fewer than 3 points


def write_coco(tmp_path: Path, *, extra_ann=None, size=(20, 24)) -> tuple[Path, Path]:
    h, w = size
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(images / name)
    box = np.zeros((h, w), bool)
    box[2:6, 3:9] = True
    anns = [
        # a: a big dog polygon with a small cat polygon on top
        {"id": 1, "image_id": 10, "category_id": 7, "iscrowd": 0, "area": 200.0,
         "segmentation": [[0, 0, 20, 0, 20, 10, 0, 10]]},
        {"id": 2, "image_id": 10, "category_id": 2, "iscrowd": 0, "area": 4.0,
         "segmentation": [[1, 1, 3, 1, 3, 3, 1, 3]]},
        # b: a compressed-RLE crowd of people and an uncompressed-RLE cat
        {"id": 3, "image_id": 11, "category_id": 5, "iscrowd": 1, "area": 24.0,
         "segmentation": {"size": [h, w], "counts": encode_counts(runs_of(box))}},
        {"id": 4, "image_id": 11, "category_id": 2, "iscrowd": 0, "area": 24.0,
         "segmentation": {"size": [h, w], "counts": runs_of(box[::-1])}},
        *(extra_ann or []),
    ]
    data = {"images": [{"id": 10, "file_name": "a.png", "height": h, "width": w},
                       {"id": 11, "file_name": "b.png", "height": h, "width": w},
                       {"id": 12, "file_name": "c.png", "height": h, "width": w}],
            "categories": [{"id": 7, "name": "dog"}, {"id": 2, "name": "cat"},
                           {"id": 5, "name": "person"}],
            "annotations": anns}
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, images


def test_load_coco_classes_labels_and_masks(tmp_path: Path) -> None:
    path, images = write_coco(tmp_path)
    ds = open_dataset(DataSource(coco=path, images=images))
    assert ds.classes == ("cat", "person", "dog")  # sorted by category id: 2, 5, 7
    labels = {s.id: s.labels for s in ds}
    assert labels == {"a": (0, 2), "b": (0, 1), "c": ()}
    by_id = ds.by_id()
    a = ds.read_gt(by_id["a"])
    expected = np.zeros((20, 24), np.uint8)
    expected[:10, :20] = 3  # dog
    expected[1:3, 1:3] = 1  # the small cat stays on top
    np.testing.assert_array_equal(a, expected)
    b = ds.read_gt(by_id["b"])
    box = np.zeros((20, 24), bool)
    box[2:6, 3:9] = True
    flipped = box[::-1]
    np.testing.assert_array_equal(b == 1, flipped)
    np.testing.assert_array_equal(b == 255, box & ~flipped)  # crowd -> ignore
    assert not ds.read_gt(by_id["c"]).any()
    # the reader pickles by path and parses the file again in the new process
    reader = pickle.loads(pickle.dumps(ds.gt_reader))
    assert isinstance(reader, CocoMasks) and reader._by_id is None
    np.testing.assert_array_equal(reader(by_id["a"]), a)


def test_coco_ground_truth_scores_itself_perfectly(tmp_path: Path) -> None:
    from pseudolabel.data.masks import write_mask
    from pseudolabel.evaluate import EvaluateConfig, run

    path, images = write_coco(tmp_path)
    ds = load_coco(path, images)
    masks = tmp_path / "masks"
    for s in ds:
        write_mask(masks / f"{s.id}.png", ds.read_gt(s))
    res = run(EvaluateConfig(workers=2, chunk_size=1), masks, coco=path, images=images)
    assert res.miou == 1.0 and res.classes == ("background", "cat", "person", "dog")


def test_coco_bad_input(tmp_path: Path) -> None:
    bad = {"id": 9, "image_id": 12, "category_id": 99, "iscrowd": 0, "area": 1.0,
           "segmentation": [[0, 0, 1, 0, 1, 1]]}
    path, images = write_coco(tmp_path, extra_ann=[bad])
    with pytest.raises(BadInputError, match=r"instances\.json.*unknown category 99"):
        load_coco(path, images)
    skipped = load_coco(path, images, policy="skip")
    assert skipped.ids == ["a", "b"] and skipped.skipped == ("c",)
    collected = load_coco(path, images, policy="collect")
    assert [p.kind for p in collected.problems] == ["unknown-class"]
    (images / "a.png").unlink()
    assert load_coco(path, images, policy="skip").ids == ["b"]
    path.write_text(path.read_text().replace('"category_id": 99', '"category_id": 2'))
    with pytest.raises(BadInputError, match=r"images/a.png: image 'a' is listed but has no file"):
        load_coco(path, images)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(BadInputError, match=r"junk\.json: not valid JSON"):
        load_coco(tmp_path / "junk.json", images)
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(BadInputError, match="not a COCO instances file"):
        load_coco(tmp_path / "list.json", images)


def test_coco_split_file_and_bad_segmentation(tmp_path: Path) -> None:
    bad = {"id": 9, "image_id": 12, "category_id": 2, "iscrowd": 0, "area": 1.0,
           "segmentation": {"size": [3, 3], "counts": [9]}}
    path, images = write_coco(tmp_path, extra_ann=[bad])
    split = tmp_path / "val.txt"
    split.write_text("c\nb\n")
    ds = load_coco(path, images, split=str(split))
    assert ds.ids == ["c", "b"]
    with pytest.raises(BadInputError, match=r"annotation 9 of image 'c'.*RLE size"):
        ds.read_gt(ds[0])
    with pytest.raises(BadInputError, match="no split"):
        load_coco(path, images, split="val")


def test_values_of_the_wrong_type_name_the_json_path(tmp_path: Path) -> None:
    path, images = write_coco(tmp_path)
    good = json.loads(path.read_text())
    cases = [
        (("annotations", 1, "segmentation"), "abc", r"annotations\[1\]\.segmentation is neither"),
        (("annotations", 0, "segmentation"), [[0, 0, 1]], r"annotations\[0\]\.segmentation\[0\]"),
        (("annotations", 0, "category_id"), "7", r"annotations\[0\]\.category_id is not an int"),
        (("annotations", 2, "segmentation", "counts"), [1.5], r"annotations\[2\]\.segmentation"
                                                               r"\.counts"),
        (("images", 2, "height"), -3, r"images\[2\]\.height is not a size"),
        (("images", 0, "id"), [1], r"images\[0\]\.id is not an integer or string"),
        (("categories", 1, "name"), None, r"categories\[1\]\.name is not a name"),
        (("annotations", 0, "area"), float("nan"), r"annotations\[0\]\.area is not a number"),
    ]
    for keys, value, message in cases:
        data = json.loads(json.dumps(good))
        node = data
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
        path.write_text(json.dumps(data))
        with pytest.raises(BadInputError, match=r"instances\.json: " + message):
            load_coco(path, images)


def test_internal_errors_are_not_turned_into_bad_input(tmp_path: Path, monkeypatch) -> None:
    """Only what bad input raises becomes a BadInputError: a bug stays a bug (exit 1)."""
    import pseudolabel.data.coco as coco

    path, images = write_coco(tmp_path)
    ds = load_coco(path, images)

    def broken(*args, **kwargs):
        raise TypeError("a bug")

    monkeypatch.setattr(coco, "polygon_to_mask", broken)
    with pytest.raises(TypeError, match="a bug"):
        ds.read_gt(ds.by_id()["a"])
    monkeypatch.setattr(coco, "check_image_id", lambda *a, **k: {}["missing"])
    with pytest.raises(KeyError):
        load_coco(path, images)


def test_coco_files_that_must_not_disappear(tmp_path: Path) -> None:
    path, images = write_coco(tmp_path)
    data = json.loads(path.read_text())
    (images / "c.png").rename(images / "c.gif")
    data["images"][2]["file_name"] = "c.gif"
    data["images"].append({"id": 10, "file_name": "d.png", "height": 20, "width": 24})
    data["images"].append({"id": 13, "file_name": "e\n.png", "height": 20, "width": 24})
    shutil.copy(images / "a.png", images / "d.png")
    path.write_text(json.dumps(data))
    kinds = {(p.kind, p.image_id) for p in load_coco(path, images, policy="collect").problems}
    assert kinds == {("unsupported-image", "c"), ("duplicate-id", "d"), ("bad-id", None)}
    assert load_coco(path, images, policy="skip").ids == ["a", "b"]
    with pytest.raises(BadInputError, match=r"instances\.json: images 'a' and 'd' share the id"):
        load_coco(path, images)
    data["images"] = data["images"][:3]
    path.write_text(json.dumps(data))
    with pytest.raises(BadInputError, match=r"images/c\.gif: \.gif is not an image format"):
        load_coco(path, images)
