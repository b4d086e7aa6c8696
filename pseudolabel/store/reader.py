"""Reading a CAM store: :class:`CamStore` (opens lazily, pickles by path)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py

from pseudolabel.errors import BadInputError
from pseudolabel.store.schema import (
    CamRecord,
    StoreHeader,
    is_hdf5,
    read_header,
    read_ids,
    read_record,
    store_problem,
)


def check_store_file(path: str | os.PathLike) -> None:
    """Raise a :class:`BadInputError` naming ``path`` unless it is a store this version reads."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError("CAM store does not exist", path=path,
                            fix="run `pseudolabel make-cams` first, or check the path")
    if not is_hdf5(path):
        raise BadInputError("not an HDF5 file", path=path,
                            fix="give a CAMS.h5 written by `pseudolabel make-cams`")
    try:
        with h5py.File(path, "r") as f:
            problem = store_problem(f)
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise BadInputError(f"cannot open CAM store ({type(exc).__name__}: {exc})", path=path,
                            fix="the file is truncated or corrupt: rerun make-cams") from None
    if problem is not None:
        fix = ("upgrade pseudolabel" if "newer" in problem
               else "give a CAMS.h5 written by `pseudolabel make-cams`")
        raise BadInputError(problem, path=path, fix=fix)


class CamStore:
    """Read-only access to a CAM store.

    ``CamStore.open(path)`` checks the file at once and returns a reader that opens the HDF5
    file lazily, on first use; it pickles by path, so each worker process opens its own handle::

        with CamStore.open("cams.h5") as store:
            for image_id in store.ids():
                rec = store.read(image_id)      # CamRecord, cams {key: (k, h, w) float32}
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None
        self._header: StoreHeader | None = None
        self._format_version: int | None = None
        self._ids: list[str] | None = None
        self._id_set: frozenset[str] | None = None

    @classmethod
    def open(cls, path: str | os.PathLike) -> CamStore:
        """A reader for ``path``; :class:`BadInputError` for a missing, foreign or newer file."""
        check_store_file(path)
        return cls(path)

    # ------------------------------------------------------------------------------ handle
    @property
    def file(self) -> h5py.File:
        """The open h5py file (opened on first use, in this process)."""
        if self._file is None:
            with self._damaged("the file"):
                self._file = h5py.File(self.path, "r")
        return self._file

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CamStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    @contextlib.contextmanager
    def _damaged(self, what: str) -> Iterator[None]:
        """h5py and decoding errors of a damaged file -> one clear line naming the file."""
        try:
            yield
        except BadInputError:
            raise
        except (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise BadInputError(
                f"CAM store is damaged: cannot read {what} ({type(exc).__name__})", path=self.path,
                fix="make it again with pseudolabel make-cams") from None

    # ------------------------------------------------------------------------------ header
    @property
    def header(self) -> StoreHeader:
        if self._header is None:
            with self._damaged("its header"):
                self._header = read_header(self.file)
        return self._header

    @property
    def format_version(self) -> int:
        if self._format_version is None:
            with self._damaged("its format_version"):
                self._format_version = int(self.file.attrs["format_version"])
        return self._format_version

    @property
    def classes(self) -> tuple[str, ...]:
        return self.header.classes

    @property
    def keys(self) -> list[str]:
        """CAM keys ``<model>/<layer>``, e.g. ``["student/features", "teacher/blocks.5"]``."""
        return self.header.keys

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.header.config)

    @property
    def models(self) -> tuple[str, ...]:
        return self.header.models

    @property
    def layers(self) -> tuple[str, ...]:
        return self.header.layers

    @property
    def scales(self) -> tuple[float, ...]:
        return self.header.scales

    def stride(self, key: str) -> int:
        """The stride (w.r.t. the image) of the CAMs of ``key``."""
        strides = self.header.strides
        with self._damaged(f"the stride of {key!r}"):
            return int(strides[key] if key in strides else strides[key.split("/", 1)[-1]])

    # ------------------------------------------------------------------------------ images
    def ids(self) -> list[str]:
        """Every image id, in the order they were written."""
        if self._ids is None:
            with self._damaged("its image ids"):
                self._ids = read_ids(self.file)
        return list(self._ids)

    def __len__(self) -> int:
        return len(self.ids())

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def __contains__(self, image_id: object) -> bool:
        if self._id_set is None:
            self._id_set = frozenset(self.ids())
        return image_id in self._id_set

    def read(self, image_id: str) -> CamRecord:
        """The :class:`CamRecord` of one image; KeyError if the store does not hold it."""
        if image_id not in self:
            raise KeyError(f"{self.path}: no image {image_id!r} in the CAM store")
        keys = self.keys
        with self._damaged(f"image {image_id!r}"):
            return read_record(self.file, image_id, keys)

    def __repr__(self) -> str:
        return f"CamStore({str(self.path)!r})"
