"""A stand-in for ``pseudolabel.store.CamStore`` with the reader interface of CONTRIBUTING.md.

The refine tests build their CAM stores with :func:`write_store` and point the stage at
:class:`FakeCamStore` (see the ``fake_store`` fixture) while the real store package is not in
the tree. Layout: plain h5py, one group per image with ``labels``, ``image_size``,
``class_indices``, ``scores`` and one dataset per CAM key under ``cams/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np


@dataclass(frozen=True)
class FakeRecord:
    id: str
    image_size: tuple[int, int]
    labels: np.ndarray
    class_indices: np.ndarray
    scores: np.ndarray
    cams: dict[str, np.ndarray]


def write_store(path: Path, classes: Sequence[str], records: Sequence[Mapping],
                config: Mapping | None = None) -> Path:
    """records: dicts with id, image_size (H, W), class_indices (k,), cams {key: (k, h, w)}."""
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = 1
        f.attrs["classes"] = json.dumps(list(classes))
        f.attrs["config"] = json.dumps(dict(config or {}))
        keys = sorted(records[0]["cams"]) if records else []
        f.attrs["keys"] = json.dumps(keys)
        images = f.create_group("images")
        for r in records:
            g = images.create_group(r["id"].replace("/", "|"))
            idx = np.asarray(r["class_indices"], np.int64)
            labels = np.zeros(len(classes), np.uint8)
            labels[idx] = 1
            g["labels"], g["class_indices"] = labels, idx
            g["image_size"] = np.asarray(r["image_size"], np.int64)
            g["scores"] = np.full(len(idx), 0.9, np.float32)
            for k, v in r["cams"].items():
                g[f"cams/{k.replace('/', '|')}"] = np.asarray(v, np.float32)
    return path


class FakeCamStore:
    """Read-only access to a :func:`write_store` file (opens lazily, pickles by path)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: h5py.File | None = None

    @classmethod
    def open(cls, path: Path) -> FakeCamStore:
        if not Path(path).is_file():
            from pseudolabel.errors import BadInputError

            raise BadInputError("CAM store does not exist", path=path)
        return cls(path)

    @property
    def file(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def __enter__(self) -> FakeCamStore:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "_file": None}

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(json.loads(self.file.attrs["classes"]))

    @property
    def config(self) -> dict:
        return json.loads(self.file.attrs["config"])

    @property
    def keys(self) -> list[str]:
        return json.loads(self.file.attrs["keys"])

    def ids(self) -> list[str]:
        return [name.replace("|", "/") for name in self.file["images"]]

    def __len__(self) -> int:
        return len(self.file["images"])

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def read(self, image_id: str) -> FakeRecord:
        g = self.file["images"][image_id.replace("|", "/").replace("/", "|")]
        return FakeRecord(image_id, tuple(int(v) for v in g["image_size"][()]),
                          g["labels"][()], g["class_indices"][()], g["scores"][()],
                          {k.replace("|", "/"): g["cams"][k][()] for k in g["cams"]})
