"""The HDF5 CAM store schema (format version 1; see docs/store.md).

Root attributes::

    format_version  int, FORMAT_VERSION
    created_by      "pseudolabel <version>" (a file without it is not ours)
    config          JSON: the resolved make-cams options
    classes         JSON list of the foreground class names (K)
    models          JSON list: "student", "teacher"
    layers          JSON list of layer names: "features", "layer3", ...
    scales          JSON list of floats
    keys            JSON list of the CAM keys "<model>/<layer>"
    strides         JSON object: key -> stride in pixels
    fingerprint     the run's fingerprint (written by the writer; shards also ``shard``)
    skipped         JSON list of the ids left out with --skip-bad (written by the writer)

docs/store.md documents each (tests/store/test_store_doc.py compares them with a written store).
Root dataset ``@ids`` (variable-length UTF-8 strings): every image id, in order.
One group per image (the id is the group path, so ``2008/000123`` nests) with attributes
``labels`` (K,) uint8, ``image_size`` (2,) int64 (H, W), ``class_indices`` (k,) int64,
``scores`` (k,) float32, and one float16 dataset per key, ``<id>/<model>/<layer>``, of shape
(k, h, w) with ``h = ceil(H / stride)``, ``w = ceil(W / stride)`` and attribute ``stride``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from pseudolabel import __version__

FORMAT_VERSION = 1
CREATED_BY_PREFIX = "pseudolabel"
IDS = "@ids"  # '@' cannot begin an image id, so this name never clashes with an image group
LIBVER = ("v110", "v110")  # compact object headers; readable by HDF5 >= 1.10
JSON_ATTRS = ("config", "classes", "models", "layers", "scales", "keys")
COMPRESSIONS = ("gzip", "lzf", "none")


@dataclass(frozen=True)
class CamRecord:
    """The CAMs of one image.

    id: the image id; image_size: (H, W); labels: (K,) uint8 multi-hot image-level labels;
    class_indices: (k,) int64, the classes stored; scores: (k,) float32 predicted probabilities;
    cams: {key: (k, h, w) float32 in [0, 1]} at the layer's own stride.
    """

    id: str
    image_size: tuple[int, int]
    labels: np.ndarray
    class_indices: np.ndarray
    scores: np.ndarray
    cams: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreHeader:
    """What the root of a store says: the options and the names of everything inside."""

    config: Mapping[str, Any]
    classes: tuple[str, ...]
    models: tuple[str, ...]
    layers: tuple[str, ...]
    scales: tuple[float, ...]
    strides: Mapping[str, int] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        """The CAM keys ``<model>/<layer>``, models first."""
        return [f"{m}/{layer}" for m in self.models for layer in self.layers]


def write_header(f: h5py.File, header: StoreHeader) -> None:
    """Write the root attributes of a store (or of a shard)."""
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["created_by"] = f"{CREATED_BY_PREFIX} {__version__}"
    f.attrs["config"] = json.dumps(dict(header.config), sort_keys=True)
    f.attrs["classes"] = json.dumps(list(header.classes))
    f.attrs["models"] = json.dumps(list(header.models))
    f.attrs["layers"] = json.dumps(list(header.layers))
    f.attrs["scales"] = json.dumps([float(s) for s in header.scales])
    f.attrs["keys"] = json.dumps(header.keys)
    f.attrs["strides"] = json.dumps(dict(header.strides), sort_keys=True)


def read_header(f: h5py.File) -> StoreHeader:
    """The header of an open store (attributes already validated by :func:`check_store`)."""
    attrs = {name: json.loads(_text(f.attrs[name])) for name in JSON_ATTRS}
    strides = json.loads(_text(f.attrs["strides"])) if "strides" in f.attrs else {}
    return StoreHeader(attrs["config"], tuple(attrs["classes"]), tuple(attrs["models"]),
                       tuple(attrs["layers"]), tuple(float(s) for s in attrs["scales"]), strides)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def store_problem(f: h5py.File) -> str | None:
    """Why an open HDF5 file is not a store this version can read, or None when it is."""
    created_by = _text(f.attrs.get("created_by", ""))
    if not created_by.startswith(CREATED_BY_PREFIX) or "format_version" not in f.attrs:
        return "not a pseudolabel CAM store (no created_by/format_version attributes)"
    version = int(f.attrs["format_version"])
    if version > FORMAT_VERSION:
        return (f"CAM store format version {version} is newer than this pseudolabel reads "
                f"({FORMAT_VERSION})")
    missing = [a for a in JSON_ATTRS if a not in f.attrs]
    if missing or IDS not in f:
        return f"CAM store is incomplete (missing {', '.join(missing) or IDS})"
    return None


def is_hdf5(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an HDF5 file (by its signature)."""
    try:
        return bool(h5py.is_hdf5(os.fspath(path)))
    except OSError:
        return False


def write_ids(f: h5py.File, ids: Sequence[str]) -> None:
    """The root ``@ids`` dataset: every image id in order."""
    f.create_dataset(IDS, data=np.array(list(ids), dtype=object),
                     dtype=h5py.string_dtype("utf-8"))


def read_ids(f: h5py.File) -> list[str]:
    return [_text(v) for v in f[IDS][()]]


def write_record(f: h5py.File, rec: CamRecord, strides: Mapping[str, int],
                 compression: str = "gzip") -> None:
    """One image group: attributes and one float16 (k, h, w) dataset per CAM key."""
    g = f.require_group(rec.id)  # exists already when an id "a/b" came before id "a"
    g.attrs["labels"] = np.asarray(rec.labels, np.uint8)
    g.attrs["image_size"] = np.asarray(rec.image_size, np.int64)
    g.attrs["class_indices"] = np.asarray(rec.class_indices, np.int64)
    g.attrs["scores"] = np.asarray(rec.scores, np.float32)
    for key, cam in rec.cams.items():
        data = np.asarray(cam, np.float16)
        kwargs: dict[str, Any] = {}
        if data.size and compression != "none":
            kwargs = {"chunks": (1, *data.shape[1:]), "compression": compression,
                      "shuffle": compression == "gzip"}
        ds = g.create_dataset(key, data=data, **kwargs)
        ds.attrs["stride"] = int(strides.get(key, strides.get(key.split("/", 1)[1], 0)))


def read_record(f: h5py.File, image_id: str, keys: Sequence[str]) -> CamRecord:
    """The :class:`CamRecord` of one image group (CAMs as float32)."""
    g = f[image_id]
    size = g.attrs["image_size"]
    return CamRecord(
        id=image_id,
        image_size=(int(size[0]), int(size[1])),
        labels=np.asarray(g.attrs["labels"], np.uint8),
        class_indices=np.asarray(g.attrs["class_indices"], np.int64).reshape(-1),
        scores=np.asarray(g.attrs["scores"], np.float32).reshape(-1),
        cams={key: np.asarray(g[key][()], np.float32) for key in keys},
    )
