"""COCO instances files as a :class:`DatasetIndex` (no pycocotools needed).

Classes are the categories sorted by id (category ``i`` in that order has mask value ``i + 1``);
an image's labels are the categories of its annotations; its ground-truth mask is rasterised from
the polygons and RLEs (uncompressed and compressed COCO RLE) on demand by :class:`CocoMasks`,
a picklable reader that parses the instances file once per process. Crowd regions become 255
(ignore) where no other object covers them. The image id is the file name without its suffix.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pseudolabel.data.dataset import DatasetIndex, Policy, Problem, Sample, _Problems, read_split
from pseudolabel.errors import BadInputError
from pseudolabel.io import check_image_id

IGNORE = 255


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
                raise ValueError("RLE string ends inside a number")
            c = ord(counts[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {counts[pos]!r} is not RLE")
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
    runs = np.asarray(counts, dtype=np.int64)
    if (runs < 0).any() or runs.sum() != height * width:
        raise ValueError(f"RLE run lengths add up to {int(runs.sum())}, not {height}x{width}")
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
    """(H, W) bool mask of one COCO ``segmentation``: polygons, or an RLE dict."""
    if isinstance(segmentation, list):
        mask = np.zeros((height, width), dtype=bool)
        for poly in segmentation:
            mask |= polygon_to_mask(poly, height, width)  # the union of the parts
        return mask
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size", [height, width])
        if [int(v) for v in size] != [height, width]:
            raise ValueError(f"RLE size {size} differs from the image size {[height, width]}")
        counts = segmentation["counts"]
        runs = decode_rle_string(counts) if isinstance(counts, str) else counts
        return rle_to_mask(runs, height, width)
    raise ValueError(f"unknown segmentation format ({type(segmentation).__name__})")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise BadInputError(f"cannot read COCO file ({exc.strerror})", path=path) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"not valid JSON ({exc})", path=path,
                            fix="give a COCO instances_*.json file") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(
            data.get("categories"), list):
        raise BadInputError("not a COCO instances file (no 'images' or 'categories' list)",
                            path=path, fix="give a COCO instances_*.json file")
    return data


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
            int(img.get("height", 0)), int(img.get("width", 0)), [])
        by_coco_id[img.get("id")] = entry
        by_id.setdefault(_image_id(str(img.get("file_name", ""))), entry)
    for ann in data.get("annotations") or []:
        entry = by_coco_id.get(ann.get("image_id"))
        if entry is not None and ann.get("category_id") in known:
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
        with _format_errors(self.path):
            return self._read(sample)

    def _read(self, sample: Sample) -> np.ndarray:
        try:
            height, width, anns = self.index()[sample.id]
        except KeyError:
            raise BadInputError(f"image {sample.id!r} is not in the COCO file",
                                path=self.path) from None
        if height <= 0 or width <= 0:
            from pseudolabel.data.images import image_size

            height, width = image_size(sample.image)
        mask = np.zeros((height, width), dtype=np.uint8)
        crowd = np.zeros((height, width), dtype=bool)
        order = sorted(anns, key=lambda a: -float(a.get("area", 0.0)))
        for ann in order:
            try:
                region = segmentation_to_mask(ann.get("segmentation"), height, width)
            except (ValueError, TypeError) as exc:
                raise BadInputError(f"annotation {ann.get('id')} of image {sample.id!r}: {exc}",
                                    path=self.path, fix="fix or drop the annotation") from None
            if ann.get("iscrowd"):
                crowd |= region
            else:
                mask[region] = self.category_index[ann["category_id"]] + 1
        mask[crowd & (mask == 0)] = IGNORE
        return mask


@contextlib.contextmanager
def _format_errors(path: Path) -> Iterator[None]:
    """A value of the wrong JSON type anywhere in the file -> one line naming the file."""
    try:
        yield
    except BadInputError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError, IndexError) as exc:
        raise BadInputError(f"COCO file holds a value of an unexpected type "
                            f"({type(exc).__name__}: {str(exc)[:120]})", path=path,
                            fix="check it against the COCO instances format") from None


def load_coco(
    instances_json: str | os.PathLike,
    images_dir: str | os.PathLike,
    split: str | None = None,
    policy: Policy = "raise",
) -> DatasetIndex:
    """A COCO instances file and its image folder as a :class:`DatasetIndex`.

    Args:
        split: None for every image, or a text file of image ids (one per line) to keep.
        policy: "raise", "skip" or "collect" (see :func:`~pseudolabel.data.load_dataset`).
    """
    with _format_errors(Path(instances_json)):
        return _load_coco(Path(instances_json), Path(images_dir), split, policy)


def _load_coco(path: Path, images_dir: Path, split: str | None, policy: Policy) -> DatasetIndex:
    from pseudolabel.data.images import find_image

    if not images_dir.is_dir():
        raise BadInputError("COCO image folder does not exist", path=images_dir,
                            fix="give --images the folder holding the COCO images")
    data = _read_json(path)
    problems = _Problems(policy)
    try:
        categories = sorted(data["categories"], key=lambda c: int(c["id"]))
        names = [str(c["name"]) for c in categories]
        category_index = {int(c["id"]): i for i, c in enumerate(categories)}
    except (KeyError, TypeError, ValueError):
        raise BadInputError("a category lacks an integer 'id' or a 'name'", path=path) from None
    if not names:
        raise BadInputError("the COCO file has no category", path=path)
    if len(set(names)) != len(names):
        raise BadInputError("two categories share a name", path=path,
                            fix="give every category its own name")

    coco_ids: dict[Any, str] = {}
    order: list[str] = []
    seen: set[str] = set()
    for img in data["images"]:
        file_name = str(img.get("file_name", "")) if isinstance(img, dict) else ""
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
        seen.add(image_id)
        coco_ids[img.get("id")] = image_id
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
    if split is not None:
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
        image = find_image(images_dir, image_id)
        if image is None:
            problems(Problem("missing-image", images_dir / image_id,
                             f"image {image_id!r} is listed but has no file",
                             "add the image or give the right --images folder", image_id))
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
                        tuple(sorted(problems.bad_ids)), reader)
