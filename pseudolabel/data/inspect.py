"""``inspect``: what a dataset root holds and every problem in it, before anything is trained.

The root is read with policy "collect" (every label problem is listed, nothing stops), then each
image's header and ground-truth mask are checked in worker processes: masks whose size differs
from the image, mask values outside 0..K and 255, masks whose classes differ from the image's
labels, unreadable images (``decode`` decodes every image fully, which also finds truncated
files; by default only the header is read).

Each problem is an error (it stops ``train``: ``inspect`` exits 2) or a warning
(:data:`~pseudolabel.data.dataset.PROBLEM_KINDS`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pseudolabel.config import to_dict
from pseudolabel.data.config import InspectConfig
from pseudolabel.data.dataset import DatasetIndex, Problem, Sample
from pseudolabel.data.images import image_size, load_image
from pseudolabel.data.masks import IGNORE
from pseudolabel.data.source import DataSource, SourceLike, open_dataset
from pseudolabel.data.workers import imap_ordered
from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_write
from pseudolabel.progress import chunked, progress

MAX_PRINTED_PROBLEMS = 40


@dataclass(frozen=True)
class InspectReport:
    """What inspect found. ``cooccurrence[i, j]``: images labelled with both class i and j
    (the diagonal: images per class)."""

    root: Path
    split: str | None
    classes: tuple[str, ...]
    images: int
    negatives: int
    cooccurrence: np.ndarray
    masks: int
    problems: tuple[Problem, ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_class(self) -> np.ndarray:
        return np.diag(self.cooccurrence)

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems that stop ``train`` (``inspect`` exits 2 when there is one)."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root), "split": self.split, "classes": list(self.classes),
            "images": self.images, "negatives": self.negatives, "masks": self.masks,
            "images_per_class": dict(zip(self.classes, self.images_per_class.tolist(),
                                         strict=True)),
            "cooccurrence": self.cooccurrence.tolist(),
            "problem_counts": dict(Counter(p.kind for p in self.problems)),
            "errors": len(self.errors), "warnings": len(self.warnings),
            "problems": [{"kind": p.kind, "severity": p.severity,
                          "path": None if p.path is None else str(p.path),
                          "image": p.image_id, "message": p.message, "fix": p.fix}
                         for p in self.problems],
            "options": self.options,
        }

    def text(self, max_problems: int = MAX_PRINTED_PROBLEMS) -> str:
        """The human-readable summary (aligned tables, the first problems)."""
        n = max(self.images, 1)
        width = max(len("class"), *(len(c) for c in self.classes))
        lines = [f"root: {self.root}" + (f"  split: {self.split}" if self.split else ""),
                 f"images: {self.images}  negatives (no class): {self.negatives} "
                 f"({100 * self.negatives / n:.1f}%)  ground-truth masks: {self.masks}",
                 f"{'class':<{width}}  {'images':>7}  {'share':>6}"]
        for name, count in zip(self.classes, self.images_per_class.tolist(), strict=True):
            lines.append(f"{name:<{width}}  {count:>7}  {100 * count / n:>5.1f}%")
        if len(self.classes) > 1:
            cell = max(7, *(len(c) for c in self.classes))
            lines.append("co-occurrence (images labelled with both):")
            lines.append(" " * width + "".join(f"  {c:>{cell}}" for c in self.classes))
            for name, row in zip(self.classes, self.cooccurrence.tolist(), strict=True):
                lines.append(f"{name:<{width}}" + "".join(f"  {v:>{cell}}" for v in row))
        if not self.problems:
            lines.append("problems: none")
            return "\n".join(lines)
        counts = Counter(p.kind for p in self.problems)
        lines.append(f"problems: {len(self.problems)} ("
                     + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + ")")
        left = max_problems
        for title, group in (("errors (they stop `pseudolabel train`; inspect exits 2)",
                              self.errors), ("warnings", self.warnings)):
            if not group:
                continue
            lines.append(f"{title}: {len(group)}")
            for p in group[:left]:
                lines.append(f"  [{p.kind}] {p.error().one_line()}")
            if len(group) > left:
                lines.append(f"  ... {len(group) - left} more (see --json)")
            left = max(0, left - len(group))
        return "\n".join(lines)


@dataclass(frozen=True)
class _CheckChunk:
    """Picklable per-chunk check (for the pool): the dataset without samples, and the options."""

    gt: DatasetIndex
    decode: bool

    def __call__(self, samples: Sequence[Sample]) -> list[tuple[int, list[Problem]]]:
        return [check_sample(self.gt, s, decode=self.decode) for s in samples]


def check_sample(dataset: DatasetIndex, sample: Sample, *,
                 decode: bool = False) -> tuple[int, list[Problem]]:
    """(1 if the sample has a ground-truth mask else 0, the problems of its image and mask)."""
    found: list[Problem] = []
    try:
        size = load_image(sample.image).shape[:2] if decode else image_size(sample.image)
    except BadInputError as exc:
        return 0, [Problem("bad-image", sample.image, exc.message, exc.fix or "", sample.id)]
    if sample.mask is None and dataset.gt_reader is None:
        return 0, found
    where = sample.mask if sample.mask is not None else dataset.root
    try:
        mask = dataset.read_gt(sample)
    except BadInputError as exc:
        return 0, [Problem("bad-mask", exc.path or where, exc.message, exc.fix or "", sample.id)]
    if mask is None:
        return 0, found
    if tuple(mask.shape) != tuple(size):
        found.append(Problem(
            "mask-size", where, f"mask is {mask.shape[1]}x{mask.shape[0]} px but the image "
            f"{sample.image.name} is {size[1]}x{size[0]}", "remake the mask at the image's size",
            sample.id))
    k = dataset.num_classes
    counts = np.bincount(mask.reshape(-1), minlength=256)
    bad = (np.flatnonzero(counts[k + 1: IGNORE]) + k + 1).tolist()
    if bad:
        found.append(Problem(
            "mask-values", where, f"mask holds values {bad[:5]} outside 0..{k} and 255",
            f"values are class indices: 0 background, 1..{k} the classes of classes.txt",
            sample.id))
    in_mask = {int(v) - 1 for v in np.flatnonzero(counts[1: k + 1]) + 1}
    if not found and sample.mask is not None and in_mask != set(sample.labels):  # COCO: crowd
        names = dataset.classes
        found.append(Problem(
            "mask-labels", where,
            f"mask shows {sorted(names[c] for c in in_mask) or 'no class'} but the image is "
            f"labelled {sorted(names[c] for c in sample.labels) or 'with no class'}",
            "fix the label row or the mask", sample.id))
    return 1, found


def inspect_dataset(dataset: DatasetIndex, config: InspectConfig = InspectConfig()) -> InspectReport:
    """Counts, co-occurrence and the problems of an already loaded (policy "collect") dataset."""
    labels = dataset.label_matrix().astype(np.int64)
    cooc = labels.T @ labels
    problems = list(dataset.problems)
    masks = 0
    gt_only = dataclasses.replace(dataset, samples=(), problems=(), skipped=())
    check = _CheckChunk(gt_only, config.decode)
    chunks = list(chunked(dataset.samples, config.chunk_size))
    with progress(total=len(dataset), desc="inspect", unit="img") as bar:
        for results in imap_ordered(check, chunks, config.workers):
            for has_mask, found in results:
                masks += has_mask
                problems.extend(found)
            bar.update(len(results))
    return InspectReport(dataset.root, dataset.split, dataset.classes, len(dataset),
                         int((labels.sum(1) == 0).sum()), cooc, masks, tuple(problems))


def run(config: InspectConfig, source: SourceLike, *,
        json_out: str | os.PathLike | None = None) -> InspectReport:
    """The inspect stage: read the data set (a root, or a :class:`DataSource`) with policy
    "collect", check it, write ``json_out``.

    Raises :class:`BadInputError` only when the data set cannot be read at all; the problems
    found are in the report (``report.errors``: those that stop ``train``).
    """
    source = DataSource.of(source)
    dataset = open_dataset(source, config.split, policy="collect", require_labels=True)
    report = inspect_dataset(dataset, config)
    options = {**to_dict(config), "root": None, "coco": None, "images": None,
               **source.to_dict()}
    report = dataclasses.replace(report, options=options)
    if json_out is not None:
        with atomic_write(json_out, "w", encoding="utf-8") as fh:
            json.dump(report.to_dict(), fh, indent=1)
            fh.write("\n")
    return report
