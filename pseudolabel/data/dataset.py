"""Dataset roots in the contract's VOC-style layout (torch-free).

    ROOT/JPEGImages/<id>.jpg                  images (IMAGE_SUFFIXES, any case: .jpg, .JPG, .png)
    ROOT/ImageSets/Segmentation/<split>.txt   one id per line (no split files: see below)
    ROOT/classes.txt                          foreground classes; optional first line 'background'
    ROOT/labels.csv                           header `image,labels`, labels space-separated
    ROOT/Annotations/<id>.xml                 (alternative) VOC object names
    ROOT/SegmentationClass/<id>.png           (optional) ground-truth masks

Class ``i`` (0-based, foreground only) has mask value ``i + 1``; 0 is background, 255 ignore.

Splits: a split is the file ``ImageSets/Segmentation/<split>.txt``. No split (None) is every
image. A root without split files is one split named ``train`` (:data:`DEFAULT_SPLIT`, the
default of ``train`` and ``make-cams``): any other split name is an error on every root.

Nothing is dropped silently: every file in JPEGImages/ is an image of the data set (hidden files
aside), so a file whose suffix pseudolabel does not read (``.gif``, ``.heic``, ``.txt``) is an
``unsupported-image`` problem; a label row with an extra column (``id,smoke,cloud``) is a
``bad-label-row``. Problems are handled by a policy: ``"raise"`` (a :class:`BadInputError` naming
the file and the fix), ``"skip"`` (``--skip-bad``: log, drop the image, go on) or ``"collect"``
(``inspect``: keep going and report every problem). :data:`PROBLEM_KINDS` says which problems
stop ``train`` (errors) and which do not (warnings: never raised, logged).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from pseudolabel.data.images import IMAGE_SUFFIXES, find_image, is_image_file, same_stem_files
from pseudolabel.errors import BadInputError
from pseudolabel.io import check_image_id, read_text

log = logging.getLogger(__name__)

Policy = Literal["raise", "skip", "collect"]
Severity = Literal["error", "warning"]

#: The split that means "every image" on a root without split files (train's default).
DEFAULT_SPLIT = "train"

#: Every kind of dataset problem: its severity and what it means. An "error" stops ``train`` and
#: ``make-cams`` (unless ``--skip-bad`` drops the image) and makes ``inspect`` exit 2; a "warning"
#: does not (ground-truth masks are read by ``evaluate`` only). docs/concepts.md shows this table.
PROBLEM_KINDS: dict[str, tuple[Severity, str]] = {
    "bad-id": ("error", "an id that is not a plain relative name ('..', '/abs', control "
                        "characters, a leading dot)"),
    "duplicate-id": ("error", "an id listed twice, or two image files for one id"),
    "missing-image": ("error", "an id of the split file, labels or COCO file without an image file"),
    "unsupported-image": ("error", "a file among the images whose suffix pseudolabel does not "
                                   "read (.gif, .heic, ...)"),
    "bad-image": ("error", "an image that cannot be read (a truncated one: with --decode)"),
    "no-label-row": ("error", "an image without a label row or annotation file"),
    "duplicate-label-row": ("error", "a second label row for one image"),
    "bad-label-row": ("error", "a label row with more than two columns (classes separated by "
                               "commas instead of spaces)"),
    "unknown-class": ("error", "a class name or COCO category that is not declared"),
    "bad-annotation": ("error", "an annotation file that is not valid XML"),
    "label-without-image": ("warning", "a label row or COCO annotation of an image that does "
                                       "not exist"),
    "bad-mask": ("warning", "a ground-truth mask that cannot be read (evaluate stops on it)"),
    "mask-size": ("warning", "a ground-truth mask whose size differs from its image's"),
    "mask-values": ("warning", "mask values outside 0..K and 255"),
    "mask-labels": ("warning", "a mask whose classes differ from the image's labels"),
}

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


@dataclass(frozen=True)
class Sample:
    """One image: its id, file, foreground class indices (0-based) and optional mask file."""

    id: str
    image: Path
    labels: tuple[int, ...]
    mask: Path | None = None


@dataclass(frozen=True)
class Problem:
    """A problem found in a dataset root: what kind, which file, the message and the fix."""

    kind: str
    path: Path | None
    message: str
    fix: str = ""
    image_id: str | None = None

    @property
    def severity(self) -> Severity:
        """"error" (stops ``train``) or "warning", from :data:`PROBLEM_KINDS`."""
        return PROBLEM_KINDS[self.kind][0]

    def error(self) -> BadInputError:
        return BadInputError(self.message, path=self.path, fix=self.fix or None)


def unsupported_image_problem(path: Path, image_id: str | None) -> Problem:
    """The problem of an image file whose suffix is not one of ``IMAGE_SUFFIXES``."""
    return Problem("unsupported-image", path,
                   f"{path.suffix or 'a file without suffix'} is not an image format pseudolabel "
                   f"reads ({', '.join(IMAGE_SUFFIXES)}, any case)",
                   "convert it to .jpg or .png (segmentation frameworks read those too), or move "
                   "it out of the image folder", image_id)


@dataclass(frozen=True)
class DatasetIndex:
    """The images of one split with their image-level labels; cheap to pickle to workers.

    ``gt_reader`` reads a ground-truth mask for a sample when masks are not PNG files
    (COCO polygons); by default masks are read from ``Sample.mask``. ``image_dir`` is the folder
    the image files lie in (ROOT/JPEGImages, or the COCO image folder); ``label_file`` the file
    (or folder) the labels come from: labels.csv, Annotations/ or the COCO file.
    """

    root: Path
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    split: str | None = None
    problems: tuple[Problem, ...] = ()
    skipped: tuple[str, ...] = ()
    gt_reader: Callable[[Sample], np.ndarray | None] | None = field(default=None, repr=False)
    image_dir: Path | None = None
    label_file: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    def by_id(self) -> dict[str, Sample]:
        return {s.id: s for s in self.samples}

    def label_matrix(self) -> np.ndarray:
        """(N, K) float32 multi-hot image-level labels."""
        out = np.zeros((len(self.samples), len(self.classes)), dtype=np.float32)
        for i, s in enumerate(self.samples):
            out[i, list(s.labels)] = 1.0
        return out

    @property
    def has_gt(self) -> bool:
        return self.gt_reader is not None or any(s.mask is not None for s in self.samples)

    def read_gt(self, sample: Sample) -> np.ndarray | None:
        """The (H, W) uint8 ground-truth mask of ``sample`` or None when it has none."""
        if self.gt_reader is not None:
            return self.gt_reader(sample)
        if sample.mask is None:
            return None
        from pseudolabel.data.masks import read_mask

        return read_mask(sample.mask)

    def subset(self, ids: Sequence[str]) -> DatasetIndex:
        """The same dataset restricted to ``ids`` (in that order)."""
        by_id = self.by_id()
        return dataclasses.replace(self, samples=tuple(by_id[i] for i in ids))


def _decode_error(path: Path) -> str | None:
    from pseudolabel.data.images import load_image

    try:
        load_image(path)
    except BadInputError as exc:
        return exc.one_line()
    return None


def drop_undecodable(index: DatasetIndex, workers: int = 2) -> DatasetIndex:
    """``--skip-bad`` for stages that decode images in DataLoader workers (train): decode every
    image once up front, log and drop the ones that fail (truncated files pass a header check)."""
    from pseudolabel.data.workers import imap_ordered
    from pseudolabel.progress import progress

    errors = list(progress(imap_ordered(_decode_error, [s.image for s in index.samples], workers),
                           total=len(index), desc="checking images"))
    bad = [(s, e) for s, e in zip(index.samples, errors, strict=True) if e is not None]
    for _, message in bad:
        log.warning("skipped: %s", message)
    if not bad:
        return index
    keep = [s.id for s, e in zip(index.samples, errors, strict=True) if e is None]
    if not keep:
        raise BadInputError("no image of the split can be decoded", path=index.image_dir or index.root)
    return dataclasses.replace(index.subset(keep),
                               skipped=tuple(sorted({*index.skipped, *(s.id for s, _ in bad)})))


class ProblemLog:
    """Applies the policy to problems as they are found (shared by the VOC and COCO readers).

    Warnings (:data:`PROBLEM_KINDS`) are recorded and, unless collecting, logged; never raised.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.found: list[Problem] = []
        self.bad_ids: set[str] = set()

    def __call__(self, problem: Problem, *, fatal_for_image: bool = True) -> None:
        self.found.append(problem)
        if problem.severity == "warning":
            if self.policy != "collect":
                log.warning("%s", problem.error().one_line())
            return
        if self.policy == "raise":
            raise problem.error()
        if fatal_for_image and problem.image_id is not None:
            self.bad_ids.add(problem.image_id)
        if self.policy == "skip":
            log.warning("skipped: %s", problem.error().one_line())


def read_classes(path: str | os.PathLike) -> tuple[tuple[str, ...], bool]:
    """Foreground class names from classes.txt, and whether it begins with 'background'."""
    path = Path(path)
    lines = read_text(path, "class list", encoding="utf-8-sig").splitlines()
    names = [ln.strip() for ln in lines]
    while names and not names[-1]:
        names.pop()
    for i, name in enumerate(names):
        if not name:
            raise BadInputError(f"blank line {i + 1} in the class list", path=path,
                                fix="remove blank lines: line i is the class with mask value i+1")
        if any(c in name for c in ",\t") or " " in name:
            raise BadInputError(f"class name {name!r} on line {i + 1} holds a space, tab or comma",
                                path=path, fix="use names without spaces (labels.csv separates by space)")
    has_background = bool(names) and names[0].lower() in ("background", "_background_", "bg")
    fg = names[1:] if has_background else names
    seen: set[str] = set()
    for name in fg:
        if name in seen:
            raise BadInputError(f"class {name!r} is listed twice", path=path,
                                fix="list every class once")
        seen.add(name)
    if not fg:
        raise BadInputError("the class list names no foreground class", path=path,
                            fix="write one class name per line")
    return tuple(fg), has_background


def read_split(path: Path) -> list[str]:
    """Ids from a split file (one per line, blank lines and '#' comments ignored)."""
    text = read_text(path, "split file", encoding="utf-8-sig",
                     fix="write one image id per line as plain text")
    ids = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    return ids


def list_splits(root: Path) -> list[str]:
    folder = root / "ImageSets" / "Segmentation"
    return sorted(p.stem for p in folder.glob("*.txt")) if folder.is_dir() else []


def images_in_folder(folder: Path, problems: ProblemLog) -> dict[str, Path]:
    """id -> file of every image under ``folder`` (sub-folders too; hidden files left out).

    A file whose suffix is not an image suffix is an ``unsupported-image`` problem, two files of
    one id (``a.jpg``, ``a.png``) a ``duplicate-id`` problem (the first in suffix order is kept).
    """
    found: dict[str, list[Path]] = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        image_id = rel.with_suffix("").as_posix()
        if not is_image_file(p):
            problems(unsupported_image_problem(p, image_id))
            continue
        found.setdefault(image_id, []).append(p)
    out = {}
    for image_id, files in found.items():
        if len(files) > 1:
            files.sort(key=lambda f: IMAGE_SUFFIXES.index(f.suffix.lower()))
            problems(Problem("duplicate-id", files[1],
                             f"image id {image_id!r} has {len(files)} files "
                             f"({', '.join(f.name for f in files)})",
                             "keep one file per image id", image_id), fatal_for_image=False)
        out[image_id] = files[0]
    return out


def missing_image_problem(folder: Path, image_id: str, listed_in: str,
                          expected: Path | None = None) -> Problem:
    """The problem of an id without an image file (``expected``, by default ``<id>.jpg``):
    ``unsupported-image`` when a file of another suffix is there (``x.gif``), else
    ``missing-image``."""
    others = same_stem_files(folder, image_id)
    if others:
        return unsupported_image_problem(others[0], image_id)
    return Problem("missing-image", expected or folder / f"{image_id}.jpg",
                   f"image {image_id!r} is listed but has no file",
                   f"add the image or remove the id from {listed_in}", image_id)


def read_labels_csv(
    path: Path, classes: Sequence[str], problems: ProblemLog
) -> dict[str, tuple[int, ...]]:
    """Image-level labels from labels.csv (`image,labels`, labels space-separated)."""
    index = {c: i for i, c in enumerate(classes)}
    out: dict[str, tuple[int, ...]] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header[:2]] != ["image", "labels"]:
                raise BadInputError("labels.csv must start with the header 'image,labels'",
                                    path=path, fix="add the header line `image,labels`")
            if any(h.strip() for h in header[2:]):
                raise BadInputError(f"labels.csv has {len(header)} columns, not the two "
                                    "`image,labels`", path=path,
                                    fix="keep two columns: the classes of an image go in the "
                                        "second one, separated by spaces")
            for lineno, row in enumerate(reader, start=2):
                if not row or not "".join(row).strip():
                    continue
                image_id = row[0].strip()
                stem, suffix = os.path.splitext(image_id)
                image_id = stem if suffix.lower() in IMAGE_SUFFIXES else image_id
                names = row[1].split() if len(row) > 1 else []
                extra = [c.strip() for c in row[2:] if c.strip()]
                if extra:  # `a,smoke,cloud`: cloud must not be dropped silently
                    problems(Problem(
                        "bad-label-row", path,
                        f"line {lineno}: image {image_id!r} has {len(row)} columns "
                        f"({', '.join(map(repr, [*names, *extra]))} after the id)",
                        f"separate the classes by spaces in one column: "
                        f"`{image_id},{' '.join([*names, *extra])}`", image_id))
                    continue
                if image_id in out:
                    problems(Problem("duplicate-label-row", path,
                                     f"line {lineno}: image {image_id!r} has a second label row",
                                     "keep one row per image", image_id), fatal_for_image=False)
                    continue
                labels = []
                for name in names:
                    if name not in index:
                        problems(Problem(
                            "unknown-class", path,
                            f"line {lineno}: unknown class {name!r} for image {image_id!r}",
                            f"use a class of classes.txt ({', '.join(classes)}) or add it there",
                            image_id))
                        break
                    labels.append(index[name])
                else:
                    out[image_id] = tuple(sorted(set(labels)))
    except OSError as exc:
        raise BadInputError(f"cannot read labels ({exc.strerror})", path=path) from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise BadInputError(f"labels.csv is not valid CSV text ({exc})", path=path) from None
    return out


def read_voc_xml(path: Path, classes: Sequence[str], problems: ProblemLog,
                 image_id: str) -> tuple[int, ...] | None:
    """Class indices of the objects named in one VOC annotation file."""
    index = {c: i for i, c in enumerate(classes)}
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        problems(Problem("no-label-row", path, f"image {image_id!r} has no annotation file",
                         "add Annotations/<id>.xml or remove the id from the split", image_id))
        return None
    except ET.ParseError as exc:
        problems(Problem("bad-annotation", path, f"not valid XML ({exc})",
                         "fix or regenerate the annotation file", image_id))
        return None
    labels = set()
    for obj in tree.getroot().iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in index:
            problems(Problem("unknown-class", path, f"unknown class {name!r}",
                             "add it to classes.txt or fix the annotation", image_id))
            return None
        labels.add(index[name])
    return tuple(sorted(labels))


def load_dataset(
    root: str | os.PathLike,
    split: str | None = None,
    *,
    policy: Policy = "raise",
    require_labels: bool = True,
) -> DatasetIndex:
    """Read a VOC-style dataset root into a :class:`DatasetIndex`.

    Args:
        root: the dataset root (ignored for COCO, where ``images`` is the image folder).
        split: a split file name under ImageSets/Segmentation; None is every image of
            JPEGImages, and so is :data:`DEFAULT_SPLIT` on a root without split files; any other
            split without its file is an error.
        policy: "raise", "skip" (``--skip-bad``) or "collect" (``inspect``).
        require_labels: whether image-level labels must exist (train, make-cams) or not
            (evaluate, which only needs masks).

    A COCO instances file is read by :func:`pseudolabel.data.coco.load_coco`; both kinds through
    one call: :func:`pseudolabel.data.source.open_dataset`.
    """
    root = Path(root)
    if not root.is_dir():
        raise BadInputError("dataset root is not a folder", path=root,
                            fix="give the folder that holds JPEGImages/ and labels.csv")
    image_dir = root / "JPEGImages"
    if not image_dir.is_dir():
        raise BadInputError("dataset root has no JPEGImages/ folder", path=root,
                            fix="put the images in ROOT/JPEGImages/<id>.jpg")
    problems = ProblemLog(policy)

    # classes
    annotations = root / "Annotations"
    if (root / "classes.txt").is_file():
        classes, _ = read_classes(root / "classes.txt")
    elif annotations.is_dir():
        classes = VOC_CLASSES
    else:
        raise BadInputError("dataset root has no classes.txt", path=root / "classes.txt",
                            fix="write the foreground class names, one per line")

    # ids
    split_dir = root / "ImageSets" / "Segmentation"
    split_file = split_dir / f"{split}.txt" if split else None
    files: dict[str, Path] = {}
    if split_file is not None and split_file.is_file():
        ids = read_split(split_file)
        id_source: Path = split_file
        if not ids:
            raise BadInputError("split file lists no image", path=split_file,
                                fix="write one image id per line")
    elif split and list_splits(root):
        raise BadInputError(f"no split {split!r}", path=split_file,
                            fix=f"use one of: {', '.join(list_splits(root))}")
    elif split and split != DEFAULT_SPLIT:
        raise BadInputError(f"no split {split!r}: the root has no split files", path=split_dir,
                            fix=f"leave the split out to use every image, or list the ids of "
                                f"{split!r} in ImageSets/Segmentation/{split}.txt")
    else:
        files = images_in_folder(image_dir, problems)
        ids = list(files)
        id_source = image_dir
        if not ids:
            raise BadInputError("JPEGImages/ holds no image", path=image_dir,
                                fix=f"add images ({', '.join(IMAGE_SUFFIXES)})")

    seen: set[str] = set()
    unique_ids = []
    for image_id in ids:
        try:
            check_image_id(image_id, source=id_source)
        except BadInputError as exc:
            problems(Problem("bad-id", id_source, exc.message, exc.fix or "", None))
            continue
        if image_id in seen:
            problems(Problem("duplicate-id", id_source, f"image id {image_id!r} is listed twice",
                             "list every id once", image_id), fatal_for_image=False)
            continue
        seen.add(image_id)
        unique_ids.append(image_id)

    # labels
    labels: dict[str, tuple[int, ...]] = {}
    labels_csv = root / "labels.csv"
    if labels_csv.is_file():
        labels = read_labels_csv(labels_csv, classes, problems)
        if not labels and require_labels and not problems.found:
            raise BadInputError("labels.csv has no label row", path=labels_csv,
                                fix="add one row `image,labels` per image")
        label_source = labels_csv
    elif annotations.is_dir():
        for image_id in unique_ids:
            got = read_voc_xml(annotations / f"{image_id}.xml", classes, problems, image_id)
            if got is not None:
                labels[image_id] = got
        label_source = annotations
    elif require_labels:
        raise BadInputError("dataset root has no labels.csv (nor Annotations/)", path=labels_csv,
                            fix="write `image,labels` rows with space-separated class names")
    else:
        label_source = None

    mask_dir = root / "SegmentationClass"
    samples = []
    for image_id in unique_ids:
        image = files.get(image_id) or find_image(image_dir, image_id)
        if image is None:
            problems(missing_image_problem(image_dir, image_id, "the split file"))
            continue
        if (label_source == labels_csv and image_id not in labels
                and image_id not in problems.bad_ids):  # (a bad row was reported already)
            problems(Problem("no-label-row", labels_csv,
                             f"image {image_id!r} has no label row",
                             "add a row `<id>,<labels>` (empty labels = no foreground class)",
                             image_id))
        if image_id in problems.bad_ids:
            continue
        mask = mask_dir / f"{image_id}.png"
        samples.append(Sample(image_id, image, labels.get(image_id, ()),
                              mask if mask.is_file() else None))

    if label_source == labels_csv and policy == "collect":
        for image_id in sorted(set(labels) - seen - problems.bad_ids):
            if find_image(image_dir, image_id) is None:
                problems(Problem("label-without-image", labels_csv,
                                 f"label row for {image_id!r} has no image",
                                 "remove the row or add the image", image_id),
                         fatal_for_image=False)
    if not samples:
        raise BadInputError("no usable image in the dataset", path=id_source,
                            fix="check the split file, JPEGImages/ and labels.csv")
    return DatasetIndex(root, tuple(classes), tuple(samples), split, tuple(problems.found),
                        tuple(sorted(problems.bad_ids)), image_dir=image_dir,
                        label_file=label_source)
