"""The CAM store: round trip, schema as plain h5py sees it, refusals, shards and merge, size."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from pseudolabel.errors import BadInputError
from pseudolabel.store import (
    FORMAT_VERSION,
    CamRecord,
    CamStore,
    ShardPlan,
    ShardWriter,
    StoreHeader,
    check_output,
    merge_shards,
    write_store,
)

CLASSES = ("cat", "dog", "bird")
HEADER = StoreHeader({"method": "cam"}, CLASSES, ("student", "teacher"), ("features", "layer3"),
                     (1.0, 0.5), {"features": 32, "layer3": 16})


def make_records(n: int, rng: np.random.Generator, size: tuple[int, int] = (64, 48)
                 ) -> list[CamRecord]:
    """n records with random labels (some with none) and random CAMs in [0, 1]."""
    recs = []
    for i in range(n):
        labels = (rng.random(len(CLASSES)) < 0.5).astype(np.uint8)
        idx = np.flatnonzero(labels).astype(np.int64)
        cams = {}
        for key in HEADER.keys:
            stride = HEADER.strides[key.split("/")[1]]
            h, w = -(-size[0] // stride), -(-size[1] // stride)
            cams[key] = rng.random((len(idx), h, w)).astype(np.float32)
        image_id = f"set{i % 2}/img{i}" if i % 3 else f"img{i}"
        recs.append(CamRecord(image_id, size, labels, idx,
                              rng.random(len(idx)).astype(np.float32), cams))
    return recs


def assert_same_record(got: CamRecord, want: CamRecord) -> None:
    assert got.id == want.id and got.image_size == want.image_size
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.class_indices, want.class_indices)
    np.testing.assert_array_equal(got.scores, want.scores)
    assert sorted(got.cams) == sorted(want.cams)
    for key, cam in want.cams.items():
        assert got.cams[key].dtype == np.float32 and got.cams[key].shape == cam.shape
        np.testing.assert_allclose(got.cams[key], cam, atol=5e-4)  # float16 storage


def test_round_trip_and_reader_interface(tmp_path: Path) -> None:
    recs = make_records(7, np.random.default_rng(0))
    path = write_store(tmp_path / "cams.h5", HEADER, recs)
    with CamStore.open(path) as store:
        assert store.format_version == FORMAT_VERSION
        assert store.classes == CLASSES
        assert store.keys == ["student/features", "student/layer3", "teacher/features",
                              "teacher/layer3"]
        assert store.config == {"method": "cam"}
        assert store.ids() == [r.id for r in recs] and len(store) == 7
        assert "set1/img1" in store and "nope" not in store and "set1" not in store
        assert store.stride("teacher/layer3") == 16
        for rec in recs:
            assert_same_record(store.read(rec.id), rec)
        with pytest.raises(KeyError):
            store.read("nope")
        clone = pickle.loads(pickle.dumps(store))  # pickles by path, opens its own handle
        assert clone._file is None
        assert_same_record(clone.read(recs[3].id), recs[3])


def test_schema_with_plain_h5py(tmp_path: Path) -> None:
    recs = make_records(3, np.random.default_rng(1))
    path = write_store(tmp_path / "cams.h5", HEADER, recs)
    with h5py.File(path, "r") as f:
        assert f.attrs["format_version"] == 1
        assert str(f.attrs["created_by"]).startswith("pseudolabel")
        assert json.loads(f.attrs["classes"]) == list(CLASSES)
        assert json.loads(f.attrs["models"]) == ["student", "teacher"]
        assert json.loads(f.attrs["layers"]) == ["features", "layer3"]
        assert json.loads(f.attrs["scales"]) == [1.0, 0.5]
        assert json.loads(f.attrs["config"]) == {"method": "cam"}
        g = f[recs[1].id]  # ids with '/' are group paths
        assert tuple(g.attrs["image_size"]) == (64, 48)
        ds = g["teacher/layer3"]
        assert ds.dtype == np.float16 and ds.shape == (len(recs[1].class_indices), 4, 3)
        if ds.size:
            assert ds.compression == "gzip" and ds.chunks is not None
        assert ds.attrs["stride"] == 16


def test_refuses_foreign_newer_and_non_hdf5(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(BadInputError, match="not a pseudolabel CAM store") as info:
        CamStore.open(foreign)
    assert str(foreign) in str(info.value)

    newer = write_store(tmp_path / "newer.h5", HEADER, make_records(1, np.random.default_rng(2)))
    with h5py.File(newer, "a") as f:
        f.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(BadInputError, match="newer") as info:
        CamStore.open(newer)
    assert "newer.h5" in str(info.value) and "upgrade" in str(info.value)

    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(BadInputError, match="not an HDF5 file"):
        CamStore.open(text)
    with pytest.raises(BadInputError, match="does not exist"):
        CamStore.open(tmp_path / "missing.h5")


def test_check_output(tmp_path: Path) -> None:
    out = tmp_path / "cams.h5"
    assert check_output(out, "abc") is False
    write_store(out, HEADER, make_records(2, np.random.default_rng(3)), fingerprint="abc")
    assert check_output(out, "abc") is True
    with pytest.raises(BadInputError, match="other options"):
        check_output(out, "other")
    foreign = tmp_path / "foreign.h5"
    foreign.write_bytes(b"not hdf5 at all")
    with pytest.raises(BadInputError, match="not a CAM store") as info:
        check_output(foreign, "abc")
    assert "foreign.h5" in str(info.value)


def test_shards_merge_like_one_write(tmp_path: Path) -> None:
    recs = make_records(10, np.random.default_rng(4))
    plan = ShardPlan(tmp_path / "cams.h5", tuple(r.id for r in recs), 3, "fp")
    assert plan.num_shards == 4 and plan.owned(1, 2) == [1, 3]
    by_id = {r.id: r for r in recs}
    for part in (1, 0):  # two parts, in any order
        with ShardWriter(plan, HEADER) as writer:
            for j in plan.owned(part, 2):
                writer.begin(j)
                for image_id in plan.shard_ids(j):
                    writer.write(by_id[image_id])
                writer.end()
    assert plan.missing() == []
    merge_shards(plan, HEADER)
    assert not plan.parts_dir.exists()
    with CamStore.open(plan.out) as store:
        assert store.ids() == [r.id for r in recs]
        for rec in recs:
            assert_same_record(store.read(rec.id), rec)


def test_unfinished_shard_is_not_done_and_merge_refuses(tmp_path: Path) -> None:
    recs = make_records(4, np.random.default_rng(5))
    plan = ShardPlan(tmp_path / "cams.h5", tuple(r.id for r in recs), 2, "fp")
    with pytest.raises(RuntimeError, match="boom"), ShardWriter(plan, HEADER) as writer:
        writer.begin(0)
        writer.write(recs[0])
        raise RuntimeError("boom")
    assert plan.missing() == [0, 1]
    assert not list(plan.parts_dir.glob(".tmp-*"))  # the aborted temp file is gone
    with pytest.raises(BadInputError, match="2 of 2 shards are missing"):
        merge_shards(plan, HEADER)
    # a shard made with other options is stale
    other = ShardPlan(plan.out, plan.ids, 2, "other")
    with ShardWriter(other, HEADER) as writer:
        writer.begin(0)
        writer.end()
    assert plan.missing() == [0, 1] and other.missing() == [1]


def test_writer_thread_error_reaches_the_caller(tmp_path: Path) -> None:
    recs = make_records(2, np.random.default_rng(6))
    plan = ShardPlan(tmp_path / "cams.h5", ("a", "a"), 2, "fp")
    dup = CamRecord("a", recs[0].image_size, recs[0].labels, recs[0].class_indices,
                    recs[0].scores, recs[0].cams)
    with pytest.raises((ValueError, RuntimeError, OSError)), ShardWriter(plan, HEADER) as w:
        w.begin(0)
        w.write(dup)
        w.write(dup)  # the same datasets twice: h5py refuses in the thread
        w.end()
    assert plan.missing() == [0]


def test_size_per_image_is_a_tenth_of_irn_npy(tmp_path: Path) -> None:
    """IRN keeps K x H x W float32 per image; ours (float16 at stride, compressed) <= 1/10."""
    rng = np.random.default_rng(7)
    header = StoreHeader({}, ("smoke",), ("student",), ("features",), (1.0,), {"features": 32})
    for size in ((64, 64), (160, 160), (375, 500)):
        h, w = -(-size[0] // 32), -(-size[1] // 32)
        recs = [CamRecord(f"i{i}", size, np.ones(1, np.uint8), np.zeros(1, np.int64),
                          np.ones(1, np.float32), {"student/features": rng.random((1, h, w))})
                for i in range(50)]
        path = write_store(tmp_path / f"s{size[0]}.h5", header, recs)
        per_image = path.stat().st_size / len(recs)
        irn = 1 * size[0] * size[1] * 4
        assert per_image <= irn / 10, (size, per_image, irn)
