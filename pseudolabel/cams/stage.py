"""The make-cams stage: multi-layer, multi-scale CAMs of every image into one HDF5 store.

    run(MakeCamsConfig(...), root, run_dir, out) -> out

Work is cut into shard files (see :mod:`pseudolabel.store.writer`): a killed run resumes by
skipping finished shards, and ``shard="i/n"`` computes only part ``i`` so that several GPUs or
machines share the work; the store is merged when every shard exists.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pseudolabel.cams.loader import batch_loader, plan_batches
from pseudolabel.cams.methods import CamMethod, get_method
from pseudolabel.cams.multiscale import multiscale_cams
from pseudolabel.config import save_config, to_dict
from pseudolabel.data import DatasetIndex
from pseudolabel.data.source import DataSource, SourceLike
from pseudolabel.errors import BadInputError
from pseudolabel.io import TMP_PREFIX, RunLock
from pseudolabel.models import Classifier, check_same_classes, load_run
from pseudolabel.progress import progress
from pseudolabel.store import (
    CamRecord,
    ShardPlan,
    ShardWriter,
    StoreHeader,
    check_output,
    merge_shards,
)
from pseudolabel.store.schema import COMPRESSIONS

log = logging.getLogger(__name__)

# options that do not change the content of the store (left out of its fingerprint)
RUNTIME_OPTIONS = ("batch_size", "device", "workers", "skip_bad", "shard", "merge")


@dataclass(frozen=True)
class MakeCamsConfig:
    """Options of ``pseudolabel make-cams``.

    split: the split of ROOT; method: a CAM method (``CAM_METHODS``); layers: layer names;
    scales/flip: the test-time views merged; models: which checkpoints of RUN_DIR;
    all_classes: store every class (default: the labelled ones); shard: ``"I/N"``, this
    process's part; merge: only merge finished parts; shard_size: images per shard file.
    """

    split: str | None = "train"
    method: str = "cam"
    layers: tuple[str, ...] = ("features",)
    scales: tuple[float, ...] = (1.0, 0.5, 1.5, 2.0)
    flip: bool = True
    models: tuple[str, ...] = ("student",)
    all_classes: bool = False
    batch_size: int = 16
    device: str = "auto"
    workers: int = 2
    skip_bad: bool = False
    shard: str = "0/1"
    merge: bool = False
    shard_size: int = 256
    compression: str = "gzip"

    def __post_init__(self) -> None:
        if not self.layers or not self.scales or not self.models:
            raise ValueError("layers, scales and models must not be empty")
        if any(s <= 0 for s in self.scales):
            raise ValueError(f"scales must be positive, got {self.scales}")
        if len(set(self.models)) != len(self.models) or not set(self.models) <= {
                "student", "teacher"}:
            raise ValueError(f"models must be student and/or teacher, got {self.models}")
        if self.batch_size < 1 or self.shard_size < 1 or self.workers < 0:
            raise ValueError("batch_size and shard_size must be >= 1, workers >= 0")
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}")
        parse_shard(self.shard)

    @property
    def part(self) -> tuple[int, int]:
        return parse_shard(self.shard)


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N) with 0 <= I < N."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must be I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"shard {text!r}: need 0 <= I < N")
    return i, n


def _remove_leftovers(out: Path, plan: ShardPlan, *, parts: bool = True) -> None:
    """Under the output's lock: remove a killed merge's temp file (and the merged parts)."""
    for tmp in out.parent.glob(f"{TMP_PREFIX}{out.name}.*"):
        tmp.unlink(missing_ok=True)
    if parts and plan.parts_dir.exists():
        shutil.rmtree(plan.parts_dir, ignore_errors=True)


def from_torchrun(config: MakeCamsConfig) -> MakeCamsConfig:
    """Under ``torchrun --nproc_per_node N``, process RANK makes part RANK/WORLD_SIZE.

    Parts are independent (no process group is needed); the last part to finish merges the
    store. Each process takes the GPU of its LOCAL_RANK. An explicit ``--shard`` wins.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or config.shard != "0/1" or config.merge:
        return config
    rank = int(os.environ.get("RANK", "0"))
    device = config.device
    if device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}"
    return dataclasses.replace(config, shard=f"{rank}/{world}", device=device)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadInputError(f"device {name!r} asked for but CUDA is not available",
                            fix="use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise BadInputError(f"unknown device {name!r}", fix="use cpu, cuda, cuda:N or auto") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_id_clashes(ids: Sequence[str], models: Sequence[str], source: Path) -> None:
    """An id ``a/student`` would collide with the CAM datasets ``a/student/<layer>`` of ``a``."""
    id_set = set(ids)
    for image_id in ids:
        parts = image_id.split("/")
        for j in range(1, len(parts)):
            if parts[j] in models and "/".join(parts[:j]) in id_set:
                raise BadInputError(
                    f"image id {image_id!r} clashes with the CAMs of image "
                    f"{'/'.join(parts[:j])!r} in the store", path=source,
                    fix=f"rename the folder {parts[j]!r} of the images")


class _Job:
    """Everything one run needs, resolved from the config."""

    def __init__(self, config: MakeCamsConfig, source: DataSource, run_dir: Path, out: Path
                 ) -> None:
        self.config = config
        self.out = out
        policy = "skip" if config.skip_bad else "raise"
        self.data: DatasetIndex = source.open(config.split, policy=policy)
        self.device = resolve_device(config.device)
        self.method: CamMethod = get_method(config.method)
        self.models: dict[str, Classifier] = {}
        checkpoints: dict[str, str] = {}
        for which in config.models:
            model, meta = load_run(run_dir, which, map_location="cpu")
            ckpt = Path(meta["path"])
            check_same_classes(model.classes, ckpt, self.data.classes, source.classes_file)
            self.method.check_layers(model, config.layers)
            # gradients are taken w.r.t. activations only: no graph for the weights
            self.models[which] = model.to(self.device).eval().requires_grad_(False)
            checkpoints[which] = _sha256(ckpt)
        # each model at its own strides: a CNN student (32) and a ViT teacher (16) share a store
        self.strides = {which: {n: model.layer_info(n).reduction for n in config.layers}
                        for which, model in self.models.items()}
        strides = {f"{which}/{n}": r for which, per in self.strides.items() for n, r in per.items()}
        ids = tuple(self.data.ids)
        check_id_clashes(ids, config.models, source.where)
        options = {k: v for k, v in to_dict(config).items() if k not in ("shard", "merge")}
        resolved = {**source.to_dict(), "run_dir": str(run_dir.resolve()),
                    **options, "checkpoints": checkpoints}  # the same for every part
        content = {k: v for k, v in resolved.items() if k not in RUNTIME_OPTIONS}
        content["ids"] = hashlib.sha256("\n".join(ids).encode()).hexdigest()
        fingerprint = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        self.resolved = resolved
        self.header = StoreHeader(resolved, self.data.classes, config.models, config.layers,
                                  config.scales, strides)
        self.plan = ShardPlan(out, ids, config.shard_size, fingerprint)

    # -------------------------------------------------------------------------- compute
    def compute(self, shards: Sequence[int]) -> None:
        """Make the shard files ``shards``."""
        samples = self.data.samples
        paths = [s.image for s in samples]
        per_shard = [(j, range(j * self.plan.shard_size,
                               min((j + 1) * self.plan.shard_size, len(samples))))
                     for j in shards]
        batches, bad = plan_batches(per_shard, paths, self.config.batch_size,
                                    self.config.skip_bad)
        loader = batch_loader(paths, batches, self.config.workers,
                              pin_memory=self.device.type == "cuda")
        total = sum(len(b.indices) for b in batches)
        bar = progress(total=total, desc="make-cams", unit="img")
        current: int | None = None
        grad = torch.enable_grad() if self.method.needs_grad else torch.inference_mode()
        with ShardWriter(self.plan, self.header, self.config.compression) as writer, grad:
            for batch, (groups, errors) in zip(batches, loader, strict=True):
                if batch.shard != current:
                    if current is not None:
                        writer.end()
                    current = batch.shard
                    writer.begin(current)
                    for i in bad.get(current, []):
                        writer.skip(samples[i].id)
                for i, message in errors:
                    if not self.config.skip_bad:
                        raise BadInputError(message)
                    log.warning("skipped: %s", message)
                    writer.skip(samples[i].id)
                for positions, images in groups:
                    self._write_batch(writer, positions, images)
                bar.update(len(batch.indices))
            if current is not None:
                writer.end()
        bar.close()

    def _write_batch(self, writer: ShardWriter, positions: list[int], images: torch.Tensor
                     ) -> None:
        """images: (b, H, W, 3) uint8 -> one CamRecord per image, handed to the writer."""
        x = images.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
        probs = None
        cams: dict[str, Any] = {}
        for which, model in self.models.items():
            p, maps = multiscale_cams(self.method, model, x, self.config.layers, self.strides[which],
                                      self.config.scales, self.config.flip)
            probs = p if probs is None else probs
            for layer, cam in maps.items():
                cams[f"{which}/{layer}"] = cam.half().cpu().numpy()
        assert probs is not None
        probs_np = probs.cpu().numpy()
        k_all = len(self.data.classes)
        size = (int(images.shape[1]), int(images.shape[2]))
        for row, i in enumerate(positions):
            sample = self.data.samples[i]
            labels = np.zeros(k_all, np.uint8)
            labels[list(sample.labels)] = 1
            keep = np.arange(k_all) if self.config.all_classes else np.flatnonzero(labels)
            writer.write(CamRecord(sample.id, size, labels, keep.astype(np.int64),
                                   probs_np[row, keep],
                                   {key: c[row, keep] for key, c in cams.items()}))


def run(config: MakeCamsConfig, root: SourceLike, run_dir: str | os.PathLike,
        out: str | os.PathLike) -> Path:
    """Make (or finish, or merge) the CAM store ``out`` of the images of ``root`` (a root path,
    or a :class:`~pseudolabel.data.source.DataSource`: a COCO file and its images).

    Resumes by skipping finished shard files; with ``config.shard = "i/n"`` only part ``i`` is
    computed and the store is merged once every part is done (or with ``config.merge``).
    """
    out = Path(out)
    config = from_torchrun(config)
    job = _Job(config, DataSource.of(root), Path(run_dir), out)
    if check_output(out, job.plan.fingerprint):
        log.info("%s is complete already", out)
        with RunLock(out):  # a run killed after its merge may have left its parts behind
            _remove_leftovers(out, job.plan)
            save_config(job.resolved, out.with_name(out.name + ".config.yaml"))
        return out
    part, num_parts = config.part
    lock = RunLock(out)
    single = num_parts == 1 and not config.merge
    if single:  # one lock over computing and merging: no gap another run could slip into
        lock.__enter__()
    try:
        if not config.merge:
            owned = job.plan.owned(part, num_parts)
            part_lock = (contextlib.nullcontext() if single
                         else RunLock(job.plan.parts_dir / f"part-{part}-of-{num_parts}"))
            with part_lock:
                job.plan.remove_stale_temp_files(owned)
                todo = job.plan.missing(owned)
                log.info("part %d/%d: %d of %d shards to make (%d images)", part, num_parts,
                         len(todo), len(owned), len(job.plan.ids))
                if todo:
                    job.compute(todo)
            if job.plan.missing():
                log.info("part %d/%d done; the store is merged when every part is done "
                         "(or run again with --merge)", part, num_parts)
                return out
        if not single:
            try:
                lock.__enter__()
            except BadInputError:
                if config.merge:
                    raise
                log.info("another part is merging %s", out)  # two parts finished at once
                return out
        _remove_leftovers(out, job.plan, parts=False)  # a merge killed half-way
        if not check_output(out, job.plan.fingerprint):
            merge_shards(job.plan, job.header)
    finally:
        lock.__exit__(None, None, None)
    save_config(job.resolved, out.with_name(out.name + ".config.yaml"))
    log.info("wrote %s (%d images)", out, len(job.plan.ids))
    return out
