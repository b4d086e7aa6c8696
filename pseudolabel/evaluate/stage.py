"""The evaluate stage: score MASK_DIR/<id>.png against the ground truth of a dataset.

One dataset-level confusion matrix (ground truth 255 ignored; predictions 255 left out of the
matrix and counted as "not covered"), streamed over the images in chunks, in worker processes
when ``workers > 1``. Per image one small bincount of (gt, pred) pairs is made (values go
through a lookup table; 255 and out-of-range values get two extra bins), from which the
confusion matrix, the coverage counts and the out-of-range checks are read.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pseudolabel.config import to_dict
from pseudolabel.data.dataset import DatasetIndex, Sample
from pseudolabel.data.masks import CONTEXT_DIR, read_mask
from pseudolabel.data.source import DataSource, open_dataset
from pseudolabel.data.workers import imap_ordered
from pseudolabel.errors import BadInputError
from pseudolabel.evaluate.config import EvaluateConfig
from pseudolabel.evaluate.metrics import (
    IGNORE,
    ConfusionAccumulator,
    context_counts,
    context_leakage,
    foreground_iou,
    label_pair_counts,
)
from pseudolabel.io import atomic_write, output_path
from pseudolabel.progress import chunked, progress
from pseudolabel.runtime import claim_output

log = logging.getLogger(__name__)

MASK_SUFFIX = ".png"


@dataclass(frozen=True)
class EvalResult:
    """Scores of a mask folder.

    classes: names of the mask values, background first; confusion: (C, C) int64 (rows ground
    truth); metrics: :meth:`ConfusionAccumulator.compute`; missing / skipped: ids left out;
    worst: (id, foreground IoU) lowest first; options: what was evaluated, for the JSON;
    context: (2, C) int64 :func:`~pseudolabel.evaluate.metrics.context_counts` summed over the
    images with a context mask (ROOT/SegmentationContext/<id>.png), None when there is none.
    """

    classes: tuple[str, ...]
    confusion: np.ndarray
    metrics: dict[str, Any]
    missing: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    worst: tuple[tuple[str, float], ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    context: np.ndarray | None = None
    context_images: int = 0

    @property
    def miou(self) -> float:
        return float(self.metrics["miou"])

    @property
    def leakage(self) -> dict[str, float]:
        """{foreground class: share of context pixels labelled as it}; empty without context."""
        if self.context is None:
            return {}
        share = context_leakage(self.context)
        return {name: float(share[i]) for i, name in enumerate(self.classes) if i > 0}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able scores (NaN written as null)."""
        m = self.metrics

        def num(v: Any) -> Any:
            v = float(v)
            return None if math.isnan(v) else v

        return {
            "classes": list(self.classes),
            "miou": num(m["miou"]),
            "miou_present": num(m["miou_present"]),
            "pixel_accuracy": num(m["pixel_accuracy"]),
            "coverage": num(m["coverage"]),
            "images": int(m["images"]),
            "per_class": {
                name: {"iou": num(m["iou"][i]), "precision": num(m["precision"][i]),
                       "recall": num(m["recall"][i]), "gt_pixels": int(m["gt_pixels"][i]),
                       "pred_pixels": int(m["pred_pixels"][i])}
                for i, name in enumerate(self.classes)},
            "confusion": self.confusion.tolist(),
            "missing": list(self.missing),
            "skipped": list(self.skipped),
            "worst": [{"id": i, "iou": num(v)} for i, v in self.worst],
            "options": self.options,
            **({} if self.context is None else {
                "context_leakage": {k: num(v) for k, v in self.leakage.items()},
                "context": {"images": self.context_images,
                            "labelled": dict(zip(self.classes, self.context[0].tolist(), strict=True)),
                            "counted": dict(zip(self.classes, self.context[1].tolist(), strict=True))}}),
        }

    def table(self) -> str:
        """An aligned text table: class, IoU, precision, recall; then the summary lines."""
        m = self.metrics
        width = max(len("class"), *(len(c) for c in self.classes))

        def fmt(v: float) -> str:
            return "     -" if math.isnan(v) else f"{v:6.4f}"

        lines = [f"{'class':<{width}}  {'IoU':>6}  {'prec':>6}  {'recall':>6}"]
        for i, name in enumerate(self.classes):
            lines.append(f"{name:<{width}}  {fmt(m['iou'][i])}  {fmt(m['precision'][i])}  "
                         f"{fmt(m['recall'][i])}")
        lines.append(f"mIoU {fmt(m['miou']).strip()}  (classes present in the ground truth: "
                     f"{fmt(m['miou_present']).strip()})  pixel accuracy "
                     f"{fmt(m['pixel_accuracy']).strip()}  coverage {fmt(m['coverage']).strip()}"
                     f"  images {m['images']}")
        if self.context is not None:
            leak = "  ".join(f"{k} {fmt(v).strip()}" for k, v in self.leakage.items())
            lines.append(f"context leakage (share of context pixels labelled as the class, "
                         f"{self.context_images} images): {leak}")
        if self.missing or self.skipped:
            lines.append(f"left out: {len(self.missing)} without a mask, "
                         f"{len(self.skipped)} bad")
        if self.worst:
            lines.append("worst images (foreground IoU):")
            lines += [f"  {i}  {fmt(v).strip()}" for i, v in self.worst]
        return "\n".join(lines)


@dataclass(frozen=True)
class _Job:
    """What a worker needs: the mask folder and a sample-less copy of the dataset (gt reader)."""

    mask_dir: Path
    gt: DatasetIndex
    num_classes: int  # mask values 0..num_classes-1 (background included)
    context_dir: Path | None = None  # ROOT/SegmentationContext when the data set has one


@dataclass
class _ChunkResult:
    confusion: np.ndarray
    valid: int = 0
    covered: int = 0
    images: int = 0
    per_image: list[tuple[str, float]] = field(default_factory=list)
    context: np.ndarray | None = None  # (2, C) context counts
    context_images: int = 0
    # (id, "missing" | "bad", message, path, fix)
    issues: list[tuple[str, str, str, str | None, str | None]] = field(default_factory=list)


def _outside(values: np.ndarray, c: int) -> list[int]:
    """The distinct values of a uint8 map that are neither 0..c-1 nor 255 (error messages)."""
    u = np.unique(values)
    return u[(u >= c) & (u != IGNORE)].tolist()


def score_image(job: _Job, sample: Sample, path: Path
                ) -> tuple[np.ndarray, int, int, np.ndarray | None]:
    """(C, C) confusion, gt-valid and covered pixel counts of the mask ``path`` of ``sample``,
    and its (2, C) context counts (None when the image has no context mask).

    Raises :class:`BadInputError` for a missing ground truth, another size, values outside
    0..C-1 and 255 in the mask or the ground truth.
    """
    gt = job.gt.read_gt(sample)
    if gt is None:
        raise BadInputError(f"image {sample.id!r} has no ground-truth mask",
                            path=job.gt.root / "SegmentationClass" / f"{sample.id}.png",
                            fix="add it, choose a split with ground truth, or pass --skip-bad")
    pred = read_mask(path)
    if pred.shape != gt.shape:
        raise BadInputError(
            f"mask is {pred.shape[1]}x{pred.shape[0]} px but the ground truth is "
            f"{gt.shape[1]}x{gt.shape[0]}", path=path,
            fix="masks must have the image's size: remake them with pseudolabel refine")
    c = job.num_classes
    counts = label_pair_counts(pred, gt, c)  # (c + 2, c + 2): c = ignore, c + 1 = bad value
    if counts[:, c + 1].any():
        raise BadInputError(f"mask holds values {_outside(pred, c)[:5]} outside 0..{c - 1} "
                            "and 255", path=path,
                            fix=f"the data set has {c - 1} classes: remake the masks for it")
    if counts[c + 1].any():
        raise BadInputError(f"ground truth holds values {_outside(gt, c)[:5]} outside "
                            f"0..{c - 1} and 255", path=sample.mask or job.gt.root,
                            fix="fix the mask or add the classes to classes.txt")
    cm = counts[:c, :c].copy()
    ctx = None
    if job.context_dir is not None:
        ctx_path = output_path(job.context_dir, sample.id, MASK_SUFFIX)
        if ctx_path.is_file():
            context = read_mask(ctx_path)
            if context.shape != gt.shape:
                raise BadInputError("context mask and ground truth differ in size", path=ctx_path,
                                    fix="context masks must have the image's size")
            ctx = context_counts(pred, context, c, gt)
    return cm, int(counts[:c].sum()), int(cm.sum()), ctx


def _score_chunk(job: _Job, samples: Sequence[Sample]) -> _ChunkResult:
    out = _ChunkResult(np.zeros((job.num_classes, job.num_classes), np.int64))
    for sample in samples:
        path = output_path(job.mask_dir, sample.id, MASK_SUFFIX)
        if not path.is_file():
            out.issues.append((sample.id, "missing", "no mask for this image", str(path),
                               "run refine on the same split, or pass --allow-missing"))
            continue
        try:
            cm, valid, covered, ctx = score_image(job, sample, path)
        except BadInputError as exc:
            out.issues.append((sample.id, "bad", exc.message,
                               None if exc.path is None else str(exc.path), exc.fix))
            continue
        out.confusion += cm
        out.valid += valid
        out.covered += covered
        out.images += 1
        if ctx is not None:
            out.context = ctx if out.context is None else out.context + ctx
            out.context_images += 1
        out.per_image.append((sample.id, foreground_iou(cm)))
    return out


class _Worst:
    """The ``n`` lowest (iou, id) pairs seen, in bounded memory."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._heap: list[tuple[float, str]] = []  # (-iou, id): a max-heap of the n lowest

    def add(self, image_id: str, iou: float) -> None:
        if self.n == 0 or math.isnan(iou):
            return
        item = (-iou, image_id)
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, item)
        elif item > self._heap[0]:
            heapq.heapreplace(self._heap, item)

    def result(self) -> tuple[tuple[str, float], ...]:
        return tuple((i, -v) for v, i in sorted(self._heap, key=lambda t: (-t[0], t[1])))


def evaluate(mask_dir: str | Path, dataset: DatasetIndex,
             config: EvaluateConfig = EvaluateConfig()) -> EvalResult:
    """Score ``mask_dir/<id>.png`` for every sample of ``dataset`` against its ground truth."""
    mask_dir = Path(mask_dir)
    if not mask_dir.is_dir():
        raise BadInputError("mask folder does not exist", path=mask_dir,
                            fix="give the MASK_DIR that pseudolabel refine wrote")
    if not dataset.has_gt:
        raise BadInputError("the data set has no ground-truth masks", path=dataset.root,
                            fix="put them in ROOT/SegmentationClass/<id>.png")
    classes = ("background", *dataset.classes)
    gt_only = dataclasses.replace(dataset, samples=(), problems=(), skipped=())
    context_dir = Path(dataset.root) / CONTEXT_DIR
    job = _Job(mask_dir.resolve(), gt_only, len(classes),
               context_dir.resolve() if context_dir.is_dir() else None)
    acc = ConfusionAccumulator(len(classes))
    worst = _Worst(config.worst)
    missing: list[str] = []
    skipped: list[str] = []
    context: np.ndarray | None = None
    context_images = 0
    chunks = list(chunked(dataset.samples, config.chunk_size))
    fn = _ChunkFn(job)
    with progress(total=len(dataset), desc="evaluate", unit="img") as bar:
        for res in imap_ordered(fn, chunks, config.workers):
            for image_id, kind, message, path, fix in res.issues:
                allowed = config.skip_bad or (kind == "missing" and config.allow_missing)
                if not allowed:
                    raise BadInputError(message, path=path, fix=fix)
                (missing if kind == "missing" else skipped).append(image_id)
                log.warning("left out %s: %s", image_id,
                            BadInputError(message, path=path).one_line())
            acc.add(res.confusion, res.valid, res.covered, res.images)
            if res.context is not None:
                context = res.context if context is None else context + res.context
                context_images += res.context_images
            for image_id, iou in res.per_image:
                worst.add(image_id, iou)
            bar.update(res.images + len(res.issues))
    if acc.images == 0:
        raise BadInputError("no mask could be scored", path=mask_dir,
                            fix="check MASK_DIR, --gt and --split")
    return EvalResult(classes, acc.confusion, acc.compute(), tuple(missing), tuple(skipped),
                      worst.result(), context=context, context_images=context_images)


@dataclass(frozen=True)
class _ChunkFn:
    """Picklable ``_score_chunk`` bound to a job (for the pool)."""

    job: _Job

    def __call__(self, samples: Sequence[Sample]) -> _ChunkResult:
        return _score_chunk(self.job, samples)


def is_scores_file(path: Path) -> bool:
    """Whether ``path`` is a scores JSON this command wrote (replaced by a rerun; any other
    file there is refused)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and {"classes", "miou", "options"} <= data.keys()


def run(config: EvaluateConfig, mask_dir: str | Path, gt: str | Path | None = None, *,
        coco: str | Path | None = None, images: str | Path | None = None,
        json_out: str | Path | None = None) -> EvalResult:
    """The evaluate stage: load the ground truth (a root, or COCO), score, write ``json_out``.

    The JSON holds the scores and the resolved options; nothing else is written.
    """
    if gt is None and coco is None:
        raise BadInputError("no ground truth given", fix="give --gt ROOT or --coco JSON --images DIR")
    source = DataSource(root=gt) if gt is not None else DataSource(coco=coco, images=images)
    dataset = open_dataset(source, config.split, policy="skip" if config.skip_bad else "raise",
                           require_labels=False)
    result = evaluate(mask_dir, dataset, config)
    options = {**to_dict(config), "mask_dir": str(Path(mask_dir).resolve()),
               "gt": None if gt is None else str(Path(gt).resolve()),
               "coco": None if coco is None else str(Path(coco).resolve()),
               "images": None if images is None else str(Path(images).resolve())}
    result = dataclasses.replace(result, options=options)
    if json_out is not None:
        with claim_output(json_out, kind="file", option="--json", ours=is_scores_file) as claim, \
                atomic_write(claim.path, "w", encoding="utf-8") as fh:
            json.dump(result.to_dict(), fh, indent=1)
            fh.write("\n")
        log.info("scores written to %s", json_out)
    return result
