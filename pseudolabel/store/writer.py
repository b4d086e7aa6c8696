"""Writing a CAM store that survives ``kill -9``: shard files, then one atomic merge.

The ids are cut into shards of ``shard_size`` consecutive images; shard ``j`` is written to a
temporary file in ``<out>.parts/`` and renamed onto ``shard-<j>.h5`` when complete, so a kill
loses at most the shard being written. Part ``i`` of ``n`` (``--shard i/n``) owns the shards
``j % n == i``. When every shard exists they are merged, in order, into a temporary file that is
renamed onto ``<out>`` (atomic), and the parts folder is removed. Every shard carries the
*fingerprint* of the options and ids that made it: a shard with another fingerprint is stale
and is made again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from pseudolabel.errors import BadInputError
from pseudolabel.io import TMP_PREFIX, atomic_path, remove_stale_temp_files
from pseudolabel.store.schema import (
    LIBVER,
    CamRecord,
    StoreHeader,
    is_hdf5,
    read_ids,
    store_problem,
    write_header,
    write_ids,
    write_record,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardPlan:
    """How the ids of one output are cut into shard files.

    out: the final store; ids: every image id, in order; shard_size: images per shard.
    """

    out: Path
    ids: tuple[str, ...]
    shard_size: int
    fingerprint: str

    @property
    def parts_dir(self) -> Path:
        return self.out.with_name(self.out.name + ".parts")

    @property
    def num_shards(self) -> int:
        return -(-len(self.ids) // self.shard_size)

    def shard_ids(self, j: int) -> tuple[str, ...]:
        return self.ids[j * self.shard_size:(j + 1) * self.shard_size]

    def shard_path(self, j: int) -> Path:
        return self.parts_dir / f"shard-{j:06d}.h5"

    def owned(self, part: int, num_parts: int) -> list[int]:
        """The shards of part ``part`` of ``num_parts`` (round robin)."""
        return [j for j in range(self.num_shards) if j % num_parts == part]

    def is_done(self, j: int) -> bool:
        """Whether shard ``j`` is complete and was made with this plan's fingerprint."""
        path = self.shard_path(j)
        if not path.is_file():
            return False
        try:
            with h5py.File(path, "r") as f:
                same = f.attrs.get("fingerprint") == self.fingerprint
        except OSError:
            same = False
        if not same:
            log.warning("%s was made with other options or is damaged: making it again", path)
        return same

    def missing(self, shards: Sequence[int] | None = None) -> list[int]:
        """The shards (of ``shards``, default all) that still have to be made."""
        todo = range(self.num_shards) if shards is None else shards
        return [j for j in todo if not self.is_done(j)]

    def remove_stale_temp_files(self, shards: Sequence[int]) -> None:
        """Delete temporary files a killed run left for ``shards`` (and only those)."""
        remove_stale_temp_files(self.parts_dir, [self.shard_path(j).name for j in shards])


class _OpenShard:
    """One shard being written to its temporary file."""

    def __init__(self, plan: ShardPlan, j: int, header: StoreHeader, compression: str) -> None:
        self.final = plan.shard_path(j)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.final.with_name(f"{TMP_PREFIX}{self.final.name}.{os.getpid()}")
        self.file = h5py.File(self.tmp, "w", libver=LIBVER)
        write_header(self.file, header)
        self.file.attrs["fingerprint"] = plan.fingerprint
        self.file.attrs["shard"] = j
        self.strides = header.strides
        self.compression = compression
        self.ids: list[str] = []
        self.skipped: list[str] = []

    def write(self, rec: CamRecord) -> None:
        write_record(self.file, rec, self.strides, self.compression)
        self.ids.append(rec.id)

    def finish(self) -> None:
        write_ids(self.file, self.ids)
        self.file.attrs["skipped"] = json.dumps(self.skipped)
        self.file.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.final)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(OSError):
            self.tmp.unlink()


_STOP = object()


class ShardWriter:
    """Writes records into shard files on a background thread (bounded queue).

    Call order: ``begin(j)``, any number of ``write(rec)`` / ``skip(id)``, ``end()``; then the
    next shard. Use as a context manager: on leaving, the queue is drained and the thread joined;
    an error in the thread is raised in the caller; after an error the open shard is discarded.
    """

    def __init__(self, plan: ShardPlan, header: StoreHeader, compression: str = "gzip",
                 max_queue: int = 64) -> None:
        self.plan = plan
        self.header = header
        self.compression = compression
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="cam-store-writer", daemon=True)

    def __enter__(self) -> ShardWriter:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is not None:
                self._put(("abort", None), check=False)
            self._put(_STOP, check=False)
        finally:
            self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error

    def begin(self, j: int) -> None:
        self._put(("begin", j))

    def write(self, rec: CamRecord) -> None:
        self._put(("write", rec))

    def skip(self, image_id: str) -> None:
        self._put(("skip", image_id))

    def end(self) -> None:
        self._put(("end", None))

    def _put(self, item: Any, check: bool = True) -> None:
        while True:
            if check and self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    if not check:
                        return
                    raise RuntimeError("the CAM store writer thread stopped") from self._error

    def _run(self) -> None:
        shard: _OpenShard | None = None
        try:
            for item in iter(self._queue.get, _STOP):
                op, arg = item
                if op == "begin":
                    shard = _OpenShard(self.plan, arg, self.header, self.compression)
                elif op == "write":
                    shard.write(arg)  # type: ignore[union-attr]
                elif op == "skip":
                    shard.skipped.append(arg)  # type: ignore[union-attr]
                elif op == "end":
                    shard.finish()  # type: ignore[union-attr]
                    shard = None
                elif op == "abort" and shard is not None:
                    shard.abort()
                    shard = None
            if shard is not None:  # stopped with a shard still open: it is incomplete
                shard.abort()
        except BaseException as exc:  # handed to the caller
            self._error = exc
            if shard is not None:
                shard.abort()
            while True:  # keep draining so that the caller never blocks on a full queue
                try:
                    if self._queue.get(timeout=0.5) is _STOP:
                        return
                except queue.Empty:
                    continue


def check_output(out: Path, fingerprint: str, *, overwrite: bool = False) -> bool:
    """Whether ``out`` already holds this exact store (True), or nothing yet (False).

    Raises :class:`BadInputError` when it holds something else: a foreign file, a store this
    version cannot read, or a store made with other options. With ``overwrite`` any HDF5 file
    there is to be replaced (False); a folder or a file that is not HDF5 is still refused.
    """
    if not out.exists():
        return False
    if out.is_dir() or not is_hdf5(out):
        raise BadInputError("output path holds something that is not a CAM store", path=out,
                            fix="choose another --out, or remove the file")
    if overwrite:
        return False
    try:
        with h5py.File(out, "r") as f:
            problem = store_problem(f)
            same = f.attrs.get("fingerprint") == fingerprint
    except OSError as exc:
        raise BadInputError(f"output file cannot be opened ({exc})", path=out,
                            fix="add --overwrite to replace it, or remove it") from None
    if problem is not None:
        raise BadInputError(f"output path holds a file that is not ours: {problem}", path=out,
                            fix="choose another --out, or add --overwrite to replace it")
    if not same:
        raise BadInputError("output holds CAMs made with other options, model or images",
                            path=out, fix="add --overwrite to replace it, or choose another "
                                          "--out")
    return True


def merge_shards(plan: ShardPlan, header: StoreHeader) -> Path:
    """Merge every shard, in order, into ``plan.out`` (atomically); removes the parts folder.

    Memory stays flat: groups are copied one by one with ``h5py.Group.copy``.
    """
    missing = [j for j in range(plan.num_shards) if not plan.shard_path(j).is_file()]
    if missing:
        raise BadInputError(
            f"cannot merge: {len(missing)} of {plan.num_shards} shards are missing "
            f"(first: {plan.shard_path(missing[0]).name})", path=plan.parts_dir,
            fix="run every part (--shard I/N) to the end first")
    skipped: list[str] = []
    with atomic_path(plan.out) as tmp, h5py.File(tmp, "w", libver=LIBVER) as dst:
        write_header(dst, header)
        dst.attrs["fingerprint"] = plan.fingerprint
        ids: list[str] = []
        for j in range(plan.num_shards):
            with h5py.File(plan.shard_path(j), "r") as src:
                if src.attrs.get("fingerprint") != plan.fingerprint:
                    raise BadInputError("shard was made with other options",
                                        path=plan.shard_path(j),
                                        fix="remove it and run make-cams again")
                shard_ids = read_ids(src)
                for image_id in shard_ids:
                    _copy_image(src, dst, image_id, header.keys)
                ids.extend(shard_ids)
                skipped.extend(json.loads(src.attrs.get("skipped", "[]")))
        write_ids(dst, ids)
        dst.attrs["skipped"] = json.dumps(skipped)
        dst.flush()
    shutil.rmtree(plan.parts_dir, ignore_errors=True)
    return plan.out


def _copy_image(src: h5py.File, dst: h5py.File, image_id: str, keys: Sequence[str]) -> None:
    """Copy one image group: its attributes and its CAM datasets (not nested image groups)."""
    g_src = src[image_id]
    g_dst = dst.require_group(image_id)
    for name, value in g_src.attrs.items():
        g_dst.attrs[name] = value
    for key in keys:
        model, layer = key.split("/", 1)
        src.copy(g_src[key], g_dst.require_group(model), name=layer)


def write_store(out: str | os.PathLike, header: StoreHeader, records: Sequence[CamRecord], *,
                compression: str = "gzip", fingerprint: str = "") -> Path:
    """Write ``records`` as a complete store at ``out`` in one go (tests, small tools)."""
    plan = ShardPlan(Path(out), tuple(r.id for r in records), max(len(records), 1), fingerprint)
    with ShardWriter(plan, header, compression) as writer:
        writer.begin(0)
        for rec in records:
            writer.write(rec)
        writer.end()
    return merge_shards(plan, header)
