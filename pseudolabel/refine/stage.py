"""The refine stage: a chain of refiners over every record of a CAM store -> palette PNG masks.

    MASK_DIR/<id>.png          (H, W) uint8, VOC palette: 0 background, class index + 1, 255 ignore
    MASK_DIR/scores/<id>.npz   (--save-scores) ``scores`` (k+1, H, W) float16 and ``values`` (k+1,)
                               uint8, the mask value of each row (0 = background); no pickle
    MASK_DIR/refine.yaml       the resolved configuration (replayable: refine --config refine.yaml)
    MASK_DIR/refine.source.json  a fingerprint of the CAM store (its make-cams config)

Every file is written atomically and the mask last, so a rerun skips finished images and a run
killed at any point (kill -9 included) ends, once rerun, with the same files as an uninterrupted
run. A rerun with another configuration in the same MASK_DIR is refused unless ``overwrite``.

Work is split into chunks of ids; with ``workers > 1`` a process pool maps over the chunks, each
chunk opening its own CamStore (memory stays flat in the data set size). Refiners that fit on
the whole data set (``gmm:scope=dataset``) get a first pass that collects a bounded, uniformly
random (seeded per image, so order-independent) sample of values, then are fitted once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pseudolabel.config import save_config, to_dict
from pseudolabel.data.images import image_folder
from pseudolabel.data.masks import write_mask
from pseudolabel.data.workers import imap_ordered
from pseudolabel.errors import BadInputError
from pseudolabel.io import atomic_write, output_path
from pseudolabel.progress import chunked, progress
from pseudolabel.refine.api import (
    Samples,
    apply_chain,
    check_chain,
    fit_chain,
    fit_samples,
    load_state,
    resolve_key,
)
from pseudolabel.refine.base import Refiner, RefineState, to_mask
from pseudolabel.refine.config import RefineConfig
from pseudolabel.refine.registry import create_chain
from pseudolabel.runtime import claim_output

log = logging.getLogger(__name__)

CONFIG_NAME = "refine.yaml"
# What the masks were made from beyond the options (not replayable through --config).
SOURCE_NAME = "refine.source.json"
SCORES_DIR = "scores"
MASK_SUFFIX = ".png"
SCORES_SUFFIX = ".npz"

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs for its chunks (pickled to the worker with each chunk)."""

    cams: Path
    key: str
    chain: tuple[Refiner, ...]
    image_dir: Path | None
    all_keys: bool
    skip_bad: bool
    out_dir: Path
    save_scores: bool = False
    limit_threads: bool = False


def _open_store(path: Path) -> Any:
    from pseudolabel.store import CamStore

    return CamStore.open(path)


def _write_outputs(state: RefineState, image_id: str, job: _Job) -> None:
    """Scores (optional) first, then the mask: the mask marks the image as finished."""
    if job.save_scores:
        values = np.concatenate([[0], state.classes + 1]).astype(np.uint8)
        with atomic_write(output_path(job.out_dir / SCORES_DIR, image_id, SCORES_SUFFIX)) as fh:
            np.savez_compressed(fh, scores=state.scores.astype(np.float16), values=values)
    write_mask(output_path(job.out_dir, image_id, MASK_SUFFIX), to_mask(state))


def _each_record(job: _Job, ids: Sequence[str],
                 work: Callable[[RefineState], R]) -> list[tuple[str, R | None, str | None]]:
    """(id, result, error line) for each id: ``work`` on the state after the chain."""
    out: list[tuple[str, R | None, str | None]] = []
    limits = contextlib.nullcontext()
    if job.limit_threads:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)
    with limits, _open_store(job.cams) as store:
        for image_id in ids:
            try:
                state = load_state(store, image_id, job.key, image_dir=job.image_dir,
                                   all_keys=job.all_keys)
                out.append((image_id, work(apply_chain(job.chain, state)), None))
            except BadInputError as exc:
                if not job.skip_bad:
                    raise
                out.append((image_id, None, exc.one_line()))
    return out


def _refine_chunk(job: _Job, ids: Sequence[str]) -> list[tuple[str, None, str | None]]:
    def work(state: RefineState) -> None:
        _write_outputs(state, state.image_id, job)

    return _each_record(job, ids, work)


def _sample_chunk(job: _Job, refiner: Refiner, ids: Sequence[str]) -> list[tuple[str, Any, Any]]:
    """Per id: the :data:`~pseudolabel.refine.api.Samples` for ``refiner``'s dataset fit."""
    return _each_record(job, ids, functools.partial(fit_samples, refiner))


def _report_bad(results: Sequence[tuple[str, Any, str | None]], bad: list[str]) -> None:
    for image_id, _, error in results:
        if error is not None:
            log.warning("skipped %s: %s", image_id, error)
            bad.append(image_id)


def _fit_chain(chain: list[Refiner], job: _Job, ids: list[str], workers: int,
               chunk_size: int) -> list[Refiner]:
    """The chain with every refiner that needs a dataset fit fitted (in order), the samples
    collected by ``workers`` processes over chunks of ids."""

    def sampler(prefix: Sequence[Refiner], refiner: Refiner) -> Iterator[Samples]:
        fn = functools.partial(_sample_chunk, dataclasses.replace(job, chain=tuple(prefix)), refiner)
        with progress(total=len(ids), desc=f"fit {refiner.name}") as bar:
            for results in imap_ordered(fn, list(chunked(ids, chunk_size)), workers):
                for _, samples, _ in results:
                    yield samples or {}
                bar.update(len(results))

    return fit_chain(chain, sampler=sampler)


def _mask_outputs(out_dir: Path) -> list[Path]:
    """The outputs of a refine run in MASK_DIR: every mask (sub-folders included), the scores."""
    found = [p for p in out_dir.rglob("*" + MASK_SUFFIX) if p.is_file()]
    return found + ([out_dir / SCORES_DIR] if (out_dir / SCORES_DIR).exists() else [])


def _finished(out_dir: Path, image_id: str, save_scores: bool) -> bool:
    if not output_path(out_dir, image_id, MASK_SUFFIX).is_file():
        return False
    return not save_scores or output_path(out_dir / SCORES_DIR, image_id, SCORES_SUFFIX).is_file()


def run(config: RefineConfig, cams_h5: str | Path, out_dir: str | Path,
        images_root: str | Path | None = None) -> Path:
    """Write MASK_DIR/<id>.png for every record of the CAM store ``cams_h5``; returns MASK_DIR.

    Args:
        config: the chain and options.
        cams_h5: the CAM store (``pseudolabel make-cams``).
        out_dir: MASK_DIR.
        images_root: the data set root (or a folder of images); required when a refiner of the
            chain needs the images (``pseudolabel refine --list`` says which).
    """
    cams_h5, out_dir = Path(cams_h5).resolve(), Path(out_dir)
    chain = create_chain(config.refiners)
    if not cams_h5.is_file():
        raise BadInputError("CAM store does not exist", path=cams_h5,
                            fix="make it with pseudolabel make-cams, or check the path")
    needs = frozenset().union(*(r.required() for r in chain))
    image_dir = None
    if "image" in needs:
        users = ", ".join(r.name for r in chain if "image" in r.required())
        if images_root is None:
            raise BadInputError(f"refiner {users} needs the images",
                                fix="add --images ROOT (the data set root the CAMs were made from)")
        image_dir = image_folder(images_root).resolve()
    with _open_store(cams_h5) as store:
        ids = list(store.ids())
        # make-cams' config identifies what is in the store (a store remade at the same path).
        cams_config = hashlib.sha1(json.dumps(getattr(store, "config", None) or {},
                                              sort_keys=True, default=str).encode()).hexdigest()
        keys = list(store.keys)
        key = resolve_key(keys, config.key, path=cams_h5)
    check_chain(chain, keys)
    resolved = {
        "cams": str(cams_h5),
        "cams_config": cams_config,
        "images": str(image_dir) if image_dir is not None else None,
        **to_dict(dataclasses.replace(config, key=key,
                                      refiners=tuple(r.spec() for r in chain))),
    }
    del resolved["overwrite"]  # never replayed from a saved config
    job = _Job(cams_h5, key, tuple(chain), image_dir, "all_keys" in needs, config.skip_bad,
               Path(out_dir), config.save_scores, limit_threads=config.workers > 1)
    with claim_output(out_dir, record=(CONFIG_NAME, SOURCE_NAME), resolved=resolved,
                      may_change=RefineConfig.RESUME_MAY_CHANGE, overwrite=config.overwrite,
                      outputs=_mask_outputs) as claim:
        out_dir = claim.path
        job = dataclasses.replace(job, out_dir=out_dir)
        with atomic_write(out_dir / SOURCE_NAME, "w") as fh:
            json.dump({"cams_config": resolved.pop("cams_config")}, fh)
        save_config(resolved, out_dir / CONFIG_NAME)
        bad: list[str] = []
        if any(r.needs_fit for r in chain):
            chain = _fit_chain(chain, job, ids, config.workers, config.chunk_size)
            job = dataclasses.replace(job, chain=tuple(chain))
        todo = [i for i in ids if not _finished(job.out_dir, i, config.save_scores)]
        log.info("refine: %d of %d images to do (%d already done) with %s", len(todo), len(ids),
                 len(ids) - len(todo), " -> ".join(r.name for r in chain) or "no refiner")
        fn = functools.partial(_refine_chunk, job)
        with progress(total=len(todo), desc="refine") as bar:
            for results in imap_ordered(fn, list(chunked(todo, config.chunk_size)), config.workers):
                _report_bad(results, bad)
                bar.update(len(results))
        if bad:
            log.warning("%d image(s) skipped as bad (--skip-bad): %s", len(bad),
                        ", ".join(bad[:10]) + (" ..." if len(bad) > 10 else ""))
    return out_dir
