"""The make-cams stage: multi-layer, multi-scale CAMs of every image into one HDF5 store.

    run(MakeCamsConfig(...), root, run_dir, out) -> out

Work is cut into shard files (see :mod:`pseudolabel.store.writer`): a killed run resumes by
skipping finished shards, and ``shard="i/n"`` computes only part ``i`` so that several GPUs or
machines share the work; the store is merged when every shard exists.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pseudolabel.cams.config import MakeCamsConfig
from pseudolabel.cams.loader import batch_loader, plan_batches
from pseudolabel.cams.methods import CamMethod, get_method
from pseudolabel.cams.multiscale import cam_stride, multiscale_cams
from pseudolabel.config import save_config, to_dict
from pseudolabel.data import DatasetIndex
from pseudolabel.data.source import DataSource, SourceLike
from pseudolabel.errors import BadInputError
from pseudolabel.io import OutputBusyError, RunLock
from pseudolabel.models import Classifier, check_same_classes, load_run
from pseudolabel.ops import nonfinite_tensors, resolve_device
from pseudolabel.progress import progress
from pseudolabel.runtime import claim_output, comparable, resolve_output
from pseudolabel.store import (
    CamRecord,
    ShardPlan,
    ShardWriter,
    StoreHeader,
    check_output,
    merge_shards,
)

log = logging.getLogger(__name__)

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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_finite_weights(model: torch.nn.Module, path: Path) -> None:
    """Refuse a checkpoint whose weights hold NaN or inf (the training that wrote it diverged):
    its CAMs would be NaN, and only refine would notice."""
    bad = nonfinite_tensors(model.state_dict())
    if bad:
        raise BadInputError(f"checkpoint weights are not finite ({len(bad)} tensors, e.g. "
                            f"{bad[0]}): the training that wrote it diverged", path=path,
                            fix="train again with a lower --lr (or more --warmup-epochs)")


def warn_if_other_checkpoints(now: Mapping[str, str], recorded: Mapping[str, Any]) -> None:
    """One warning per model whose checkpoint's sha256 is not the one a config records."""
    for which, sha in sorted(recorded.items()):
        if which in now and now[which] != sha:
            log.warning("the %s checkpoint is not the one the config records (sha256 %.12s..., "
                        "now %.12s...): the CAMs will differ from the recorded run's; fix: "
                        "use the recorded checkpoint to reproduce it", which, str(sha),
                        now[which])


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
            check_finite_weights(model, ckpt)
            check_same_classes(model.classes, ckpt, self.data.classes, source.classes_file)
            self.method.check_layers(model, config.layers)
            # gradients are taken w.r.t. activations only: no graph for the weights
            self.models[which] = model.to(self.device).eval().requires_grad_(False)
            checkpoints[which] = _sha256(ckpt)
        # each model at its own strides: a CNN student (32) and a ViT teacher (16) share a store
        self.strides = {which: {n: cam_stride(model.layer_info(n).reduction, config.scales,
                                              config.grid) for n in config.layers}
                        for which, model in self.models.items()}
        strides = {f"{which}/{n}": r for which, per in self.strides.items() for n, r in per.items()}
        ids = tuple(self.data.ids)
        check_id_clashes(ids, config.models, source.where)
        options = {k: v for k, v in to_dict(config).items()  # what a replay may not repeat
                   if k not in ("shard", "merge", "overwrite")}
        resolved = {**source.to_dict(), "run_dir": str(run_dir.resolve()),
                    **options, "checkpoints": checkpoints}  # the same for every part
        # the one compatibility rule: the fields that may change are left out of the fingerprint
        content = comparable(resolved, MakeCamsConfig.RESUME_MAY_CHANGE)
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
        out: str | os.PathLike, *, recorded_checkpoints: Mapping[str, Any] | None = None
        ) -> Path:
    """Make (or finish, or merge) the CAM store ``out`` of the images of ``root`` (a root path,
    or a :class:`~pseudolabel.data.source.DataSource`: a COCO file and its images).

    ``recorded_checkpoints``: model -> sha256 a replayed config records; a checkpoint that
    differs now is a warning (the CAMs will not be the recorded run's).

    Resumes by skipping finished shard files; with ``config.shard = "i/n"`` only part ``i`` is
    computed and the store is merged once every part is done (or with ``config.merge``).
    """
    out = resolve_output(out)  # an alias through a symlink is the same store, parts and lock
    config = from_torchrun(config)
    job = _Job(config, DataSource.of(root), Path(run_dir), out)
    warn_if_other_checkpoints(job.resolved["checkpoints"], recorded_checkpoints or {})
    part, num_parts = config.part
    single = num_parts == 1 and not config.merge
    if check_output(out, job.plan.fingerprint, overwrite=config.overwrite):
        log.info("%s is complete already", out)
        with claim_output(out, kind="file"):  # a run killed after its merge left its parts
            _finish(job)
        return out
    if single:
        # one claim over computing and merging: no gap another run could slip into;
        # --overwrite deletes the previous store, its config and its parts first
        with claim_output(out, kind="file", overwrite=config.overwrite,
                          outputs=functools.partial(_store_files, job, parts=True)):
            _make_part(job, part, num_parts)
            _merge(job)
        return out
    if config.overwrite:  # parts share the folder of shards: only the previous store goes
        with claim_output(out, kind="file", overwrite=True,
                          outputs=functools.partial(_store_files, job, parts=False)):
            pass
    if not config.merge:
        with RunLock(job.plan.parts_dir / f"part-{part}-of-{num_parts}"):
            _make_part(job, part, num_parts)
        if job.plan.missing():
            log.info("part %d/%d done; the store is merged when every part is done "
                     "(or run again with --merge)", part, num_parts)
            return out
    try:
        with claim_output(out, kind="file"):
            _merge(job)
    except OutputBusyError:
        if config.merge:
            raise
        log.info("another part is merging %s", out)  # two parts finished at once
    return out


def _store_files(job: _Job, out: Path, *, parts: bool) -> list[Path]:
    """What belongs to the store ``out``: the file, its config and (``parts``) its parts."""
    return [out, _config_path(out), *([job.plan.parts_dir] if parts else [])]


def _config_path(out: Path) -> Path:
    return out.with_name(out.name + ".config.yaml")


def _make_part(job: _Job, part: int, num_parts: int) -> None:
    """Compute the missing shards of part ``part`` of ``num_parts`` (under a lock); with
    ``overwrite`` (several parts) this part's previous shards are made again."""
    owned = job.plan.owned(part, num_parts)
    if job.config.overwrite and num_parts > 1:
        for j in owned:
            job.plan.shard_path(j).unlink(missing_ok=True)
    job.plan.remove_stale_temp_files(owned)
    todo = job.plan.missing(owned)
    log.info("part %d/%d: %d of %d shards to make (%d images)", part, num_parts, len(todo),
             len(owned), len(job.plan.ids))
    if todo:
        job.compute(todo)


def _merge(job: _Job) -> None:
    """Under the store's claim: merge the shards (unless done already), then :func:`_finish`."""
    if not check_output(job.out, job.plan.fingerprint):
        merge_shards(job.plan, job.header)
        log.info("wrote %s (%d images)", job.out, len(job.plan.ids))
    _finish(job)


def _finish(job: _Job) -> None:
    """A complete store: no parts left, its resolved config beside it."""
    if job.plan.parts_dir.exists():
        shutil.rmtree(job.plan.parts_dir, ignore_errors=True)
    save_config(job.resolved, _config_path(job.out))
