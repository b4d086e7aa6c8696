"""COCO instances files as a :class:`DatasetIndex` (no pycocotools needed).

Classes are the categories sorted by id (category ``i`` in that order has mask value ``i + 1``);
an image's labels are the categories of its annotations; its ground-truth mask is rasterised from
the polygons and RLEs (uncompressed and compressed COCO RLE) on demand by :class:`CocoMasks`,
a picklable reader that parses the instances file once per process. Crowd regions become 255
(ignore) where no other object covers them. The image id is the file name without its suffix.

The file's structure is checked once, when it is read (:func:`check_instances`): a value of the
wrong type anywhere is a :class:`BadInputError` naming the file and the JSON path
(``annotations[3].segmentation``); bad content of a well-typed value (an RLE that does not add up
to its size) is a :class:`CocoFormatError`, turned into one when a mask is read. Nothing else is
caught: an internal bug stays a traceback.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pseudolabel.data.dataset import (
    DEFAULT_SPLIT,
    DatasetIndex,
    Policy,
    Problem,
    ProblemLog,
    Sample,
    missing_image_problem,
    read_split,
    unsupported_image_problem,
)
from pseudolabel.data.images import find_image, image_size, is_image_file
from pseudolabel.data.masks import IGNORE
from pseudolabel.errors import BadInputError
from pseudolabel.io import check_image_id

FORMAT_FIX = "check it against the COCO instances format (https://cocodataset.org/#format-data)"


class CocoFormatError(ValueError):
    """Bad content in a well-typed COCO value: an RLE string or run lengths that do not decode."""


def decode_rle_string(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string.

    Each number is written in 5-bit groups (least significant first) as characters from
    ``chr(48)``; bit 0x20 says another group follows, bit 0x10 of the last group is the sign.
    From the third number on, the value is stored as the difference to the number two before.
    """
    out: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise CocoFormatError("RLE string ends inside a number")
            c = ord(counts[pos]) - 48
            if not 0 <= c < 64:
                raise CocoFormatError(f"character {counts[pos]!r} is not RLE")
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                value -= 1 << shift  # sign-extend
        if len(out) > 2:
            value += out[-2]
        out.append(value)
    return out


def rle_to_mask(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of COCO run lengths: alternating 0/1 runs in column-major order."""
    counts = [int(v) for v in counts]  # Python ints: no int64 overflow on huge values
    if any(v < 0 for v in counts) or sum(counts) != height * width:
        raise CocoFormatError(f"RLE run lengths add up to {sum(counts)}, not {height}x{width}")
    runs = np.asarray(counts, dtype=np.int64)
    values = np.arange(len(runs)) % 2 == 1
    return np.repeat(values, runs).reshape((height, width), order="F")


def polygon_to_mask(polygon: Sequence[float], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of the pixels whose centre lies inside a polygon (even-odd rule).

    ``polygon`` is COCO's flat ``[x1, y1, x2, y2, ...]`` in pixel coordinates (the top-left corner
    of the image is (0, 0), pixel (r, c) has its centre at (c + 0.5, r + 0.5)). Vectorised: the
    crossings of every edge with every pixel-row centre line are toggled in an (H, W + 1) array
    whose running parity along each row is the mask.
    """
    pts = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    mask = np.zeros((height, width), dtype=bool)
    if len(pts) < 3:
        return mask
    x1, y1 = pts[:, 0], pts[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    lo = max(0, int(np.floor(pts[:, 1].min() - 0.5)))
    hi = min(height, int(np.ceil(pts[:, 1].max() + 0.5)))
    if lo >= hi:
        return mask
    yc = np.arange(lo, hi, dtype=np.float64)[:, None] + 0.5  # (R, 1) row centres
    crosses = ((y1 <= yc) & (yc < y2)) | ((y2 <= yc) & (yc < y1))  # (R, E), half-open
    rows, edges = np.nonzero(crosses)
    dy = y2[edges] - y1[edges]
    x = x1[edges] + (yc[rows, 0] - y1[edges]) * (x2[edges] - x1[edges]) / dy
    col = np.clip(np.floor(x + 0.5), 0, width).astype(np.int64)  # first centre right of x
    toggles = np.zeros((hi - lo, width + 1), dtype=np.int64)
    np.add.at(toggles, (rows, col), 1)
    mask[lo:hi] = (np.cumsum(toggles, axis=1)[:, :width] % 2).astype(bool)
    return mask


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of one COCO ``segmentation``: polygons, or an RLE dict.

    :class:`CocoFormatError` when it is neither, or its RLE does not fit ``(height, width)``.
    """
    if isinstance(segmentation, list):
        mask = np.zeros((height, width), dtype=bool)
        for poly in segmentation:
            mask |= polygon_to_mask(poly, height, width)  # the union of the parts
        return mask
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size") or [height, width]
        if [int(v) for v in size] != [height, width]:
            raise CocoFormatError(f"RLE size {size} differs from the image size "
                                  f"{[height, width]}")
        counts = segmentation["counts"]
        runs = decode_rle_string(counts) if isinstance(counts, str) else counts
        return rle_to_mask(runs, height, width)
    raise CocoFormatError(f"unknown segmentation format ({type(segmentation).__name__})")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise BadInputError(f"cannot read COCO file ({exc.strerror})", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"not valid JSON ({exc})", path=path,
                            fix="give a COCO instances_*.json file") from None
    check_instances(data, path)
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _expect(ok: bool, path: Path, where: str, what: str) -> None:
    if not ok:
        raise BadInputError(f"{where} {what}", path=path, fix=FORMAT_FIX)


def _check_segmentation(seg: Any, path: Path, where: str) -> None:
    if isinstance(seg, list):
        for j, poly in enumerate(seg):
            _expect(isinstance(poly, list) and all(_is_number(v) for v in poly)
                    and len(poly) % 2 == 0, path, f"{where}[{j}]",
                    "is not a polygon (a list of x, y numbers)")
    elif isinstance(seg, dict):
        counts, size = seg.get("counts"), seg.get("size")
        _expect(isinstance(counts, str) or (isinstance(counts, list) and all(
            _is_int(v) and v >= 0 for v in counts)), path, f"{where}.counts",
            "is neither an RLE string nor a list of run lengths")
        _expect(size is None or (isinstance(size, list) and len(size) == 2 and all(
            _is_int(v) and v >= 0 for v in size)), path, f"{where}.size",
            "is not [height, width]")
    else:
        _expect(seg is None, path, where, "is neither a list of polygons nor an RLE")


def check_instances(data: Any, path: Path) -> None:
    """Check the structure of a parsed instances file: every value the loader reads has the type
    COCO gives it. :class:`BadInputError` naming ``path`` and the JSON location otherwise."""
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
            data.get("categories"), list):
        raise BadInputError("not a COCO instances file (no 'images' or 'categories' list)",
                            path=path, fix="give a COCO instances_*.json file")
    for i, cat in enumerate(data["categories"]):
        where = f"categories[{i}]"
        _expect(isinstance(cat, dict), path, where, "is not an object")
        _expect(_is_int(cat.get("id")), path, f"{where}.id", "is not an integer")
        name = cat.get("name")
        _expect(isinstance(name, str) and bool(name.strip()), path, f"{where}.name",
                "is not a name")
    for i, img in enumerate(data["images"]):
        where = f"images[{i}]"
        _expect(isinstance(img, dict), path, where, "is not an object")
        _expect(_is_int(img.get("id")) or isinstance(img.get("id"), str), path, f"{where}.id",
                "is not an integer or string")
        _expect(isinstance(img.get("file_name"), str), path, f"{where}.file_name",
                "is not a string")
        for key in ("height", "width"):
            _expect(img.get(key) is None or (_is_int(img[key]) and img[key] >= 0), path,
                    f"{where}.{key}", "is not a size in pixels")
        limit = Image.MAX_IMAGE_PIXELS
        _expect(not limit or (img.get("height") or 0) * (img.get("width") or 0) <= 2 * limit,
                path, where, "is larger than PIL's decompression-bomb limit")
    annotations = data.get("annotations")
    _expect(annotations is None or isinstance(annotations, list), path, "annotations",
            "is not a list")
    for i, ann in enumerate(annotations or []):
        where = f"annotations[{i}]"
        _expect(isinstance(ann, dict), path, where, "is not an object")
        _expect(_is_int(ann.get("image_id")) or isinstance(ann.get("image_id"), str), path,
                f"{where}.image_id", "is not an integer or string")
        _expect(_is_int(ann.get("category_id")), path, f"{where}.category_id",
                "is not an integer")
        _expect(ann.get("iscrowd") in (None, 0, 1), path, f"{where}.iscrowd", "is not 0 or 1")
        _expect(ann.get("area") is None or _is_number(ann["area"]), path, f"{where}.area",
                "is not a number")
        _check_segmentation(ann.get("segmentation"), path, f"{where}.segmentation")


def _image_id(file_name: str) -> str:
    return os.path.splitext(file_name.replace("\\", "/"))[0]


def _build_index(data: dict[str, Any], categories: tuple[tuple[int, int], ...]
                 ) -> dict[str, tuple[int, int, list[dict[str, Any]]]]:
    """id -> (height, width, annotations of known categories) of a parsed instances file."""
    known = dict(categories)
    by_coco_id = {}
    by_id: dict[str, tuple[int, int, list[dict[str, Any]]]] = {}
    for img in data["images"]:
        entry: tuple[int, int, list[dict[str, Any]]] = (
            img.get("height") or 0, img.get("width") or 0, [])
        by_coco_id.setdefault(img["id"], entry)  # the loader keeps the first of a shared id
        by_id.setdefault(_image_id(img["file_name"]), entry)
    for ann in data.get("annotations") or []:
        entry = by_coco_id.get(ann["image_id"])
        if entry is not None and ann["category_id"] in known:
            entry[2].append(ann)
    return by_id


@functools.lru_cache(maxsize=2)
def _cached_index(path: str, mtime_ns: int, categories: tuple[tuple[int, int], ...]
                  ) -> dict[str, tuple[int, int, list[dict[str, Any]]]]:
    del mtime_ns  # part of the cache key only: a changed file is parsed again
    return _build_index(_read_json(Path(path)), categories)


class CocoMasks:
    """Ground-truth reader of a COCO instances file: ``reader(sample) -> (H, W) uint8``.

    Picklable: only the file path and the category map travel to a worker, which parses the
    file once on its first call. Objects are painted largest first, so small objects that lie on
    bigger ones stay visible; crowd regions become 255 where no object was painted.
    """

    def __init__(self, instances: str | os.PathLike, category_index: dict[int, int]) -> None:
        self.path = Path(instances)
        self.category_index = dict(category_index)
        self._by_id: dict[str, tuple[int, int, list[dict[str, Any]]]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "category_index": self.category_index, "_by_id": None}

    def index(self, data: dict[str, Any] | None = None) -> dict[str, tuple[int, int, list]]:
        """id -> (height, width, annotations), from ``data`` or the file (parsed once a process:
        a pool pickles the reader with every task, the parse is cached by path and mtime)."""
        if self._by_id is None:
            cats = tuple(sorted(self.category_index.items()))
            self._by_id = (_build_index(data, cats) if data is not None else
                           _cached_index(str(self.path), self.path.stat().st_mtime_ns, cats))
        return self._by_id

    def __call__(self, sample: Sample) -> np.ndarray:
        """The (H, W) uint8 ground truth of ``sample`` (class order + 1, crowd 255)."""
        entry = self.index().get(sample.id)
        if entry is None:
            raise BadInputError(f"image {sample.id!r} is not in the COCO file", path=self.path)
        height, width, anns = entry
        if height <= 0 or width <= 0:
            height, width = image_size(sample.image)
        mask = np.zeros((height, width), dtype=np.uint8)
        crowd = np.zeros((height, width), dtype=bool)
        order = sorted(anns, key=lambda a: -(a.get("area") or 0.0))
        for ann in order:
            try:
                region = segmentation_to_mask(ann.get("segmentation"), height, width)
            except CocoFormatError as exc:
                raise BadInputError(f"annotation {ann.get('id')} of image {sample.id!r}: {exc}",
                                    path=self.path, fix="fix or drop the annotation") from None
            if ann.get("iscrowd"):
                crowd |= region
            else:
                mask[region] = self.category_index[ann["category_id"]] + 1
        mask[crowd & (mask == 0)] = IGNORE
        return mask


def load_coco(
    instances_json: str | os.PathLike,
    images_dir: str | os.PathLike,
    split: str | None = None,
    policy: Policy = "raise",
) -> DatasetIndex:
    """A COCO instances file and its image folder as a :class:`DatasetIndex`.

    Args:
        split: None for every image, or a text file of image ids (one per line) to keep;
            :data:`~pseudolabel.data.dataset.DEFAULT_SPLIT` (train's default) without such a
            file is every image too, as on a VOC root without split files.
        policy: "raise", "skip" or "collect" (see :func:`~pseudolabel.data.load_dataset`).
    """
    path, images_dir = Path(instances_json), Path(images_dir)
    if not images_dir.is_dir():
        raise BadInputError("COCO image folder does not exist", path=images_dir,
                            fix="give --images the folder holding the COCO images")
    data = _read_json(path)
    problems = ProblemLog(policy)
    categories = sorted(data["categories"], key=lambda c: c["id"])
    names = [c["name"] for c in categories]
    category_index = {c["id"]: i for i, c in enumerate(categories)}
    if not names:
        raise BadInputError("the COCO file has no category", path=path)
    if len(set(names)) != len(names):
        raise BadInputError("two categories share a name", path=path,
                            fix="give every category its own name")
    if len(category_index) != len(categories):
        raise BadInputError("two categories share an id", path=path,
                            fix="give every category its own id")

    coco_ids: dict[Any, str] = {}
    file_names: dict[str, str] = {}
    order: list[str] = []
    seen: set[str] = set()
    for img in data["images"]:
        file_name = img["file_name"]
        image_id = _image_id(file_name)
        try:
            check_image_id(image_id, source=path)
        except BadInputError as exc:
            problems(Problem("bad-id", path, exc.message, exc.fix or ""))
            continue
        if image_id in seen:
            problems(Problem("duplicate-id", path, f"file {file_name!r} is listed twice",
                             "list every image once", image_id), fatal_for_image=False)
            continue
        if img["id"] in coco_ids:
            problems(Problem("duplicate-id", path,
                             f"images {coco_ids[img['id']]!r} and {image_id!r} share the id "
                             f"{img['id']!r}", "give every image its own id", image_id))
            continue
        seen.add(image_id)
        coco_ids[img["id"]] = image_id
        file_names[image_id] = file_name
        order.append(image_id)

    labels: dict[str, set[int]] = {i: set() for i in order}
    for ann in data.get("annotations") or []:
        image_id = coco_ids.get(ann.get("image_id"))
        if image_id is None:
            problems(Problem("label-without-image", path,
                             f"annotation {ann.get('id')} names image {ann.get('image_id')!r}, "
                             "which is not listed", "remove the annotation"),
                     fatal_for_image=False)
            continue
        cat = ann.get("category_id")
        if cat not in category_index:
            problems(Problem("unknown-class", path,
                             f"annotation {ann.get('id')} of {image_id!r} has unknown category "
                             f"{cat!r}", "add the category or remove the annotation", image_id))
            continue
        labels[image_id].add(category_index[cat])

    keep = order
    if split is not None and (split != DEFAULT_SPLIT or Path(split).is_file()):
        split_file = Path(split)
        if not split_file.is_file():
            raise BadInputError(f"no split {split!r} for a COCO file", path=split_file,
                                fix="give --split a text file of image ids, or leave it out")
        wanted = read_split(split_file)
        unknown = [i for i in wanted if i not in labels]
        for image_id in unknown:
            problems(Problem("missing-image", split_file,
                             f"image {image_id!r} is not in the COCO file",
                             "remove it from the split file", image_id))
        keep = [i for i in wanted if i in labels]

    samples = []
    for image_id in keep:
        named = images_dir / file_names[image_id].replace("\\", "/")
        if named.is_file() and not is_image_file(named):
            problems(unsupported_image_problem(named, image_id))
            continue
        image = named if named.is_file() else find_image(images_dir, image_id)
        if image is None:
            problems(missing_image_problem(
                images_dir, image_id, "the COCO file (or give the right --images folder)",
                named))
            continue
        if image_id in problems.bad_ids:
            continue
        samples.append(Sample(image_id, image, tuple(sorted(labels[image_id]))))
    if not samples:
        raise BadInputError("no usable image in the COCO file", path=path,
                            fix="check --images and the file names in the COCO file")
    reader = CocoMasks(path, category_index)
    reader.index(data)
    return DatasetIndex(images_dir, tuple(names), tuple(samples), split, tuple(problems.found),
                        tuple(sorted(problems.bad_ids)), reader, image_dir=images_dir,
                        label_file=path)
