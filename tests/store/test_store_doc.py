"""docs/store.md against the writer: every attribute a store (and a shard file) holds is
documented, and every documented attribute is written."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np

from pseudolabel.store import CamRecord, ShardPlan, ShardWriter, StoreHeader, write_store

DOC = Path(__file__).resolve().parents[2] / "docs" / "store.md"


def documented_tables() -> dict[str, set[str]]:
    """The first-column names of each table in docs/store.md, by the text of the line that
    introduces the table (e.g. "Root attributes ...", "| shard attribute | ...")."""
    tables: dict[str, set[str]] = {}
    intro, header = "", None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            if line.strip():
                intro, header = line, None
            continue
        if header is None:
            header = line
            tables[f"{intro} {header}"] = set()
            continue
        found = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if found:
            tables[f"{intro} {header}"].add(found.group(1))
    return tables


def table(title: str) -> set[str]:
    matches = [names for key, names in documented_tables().items() if title in key]
    assert len(matches) == 1, f"docs/store.md: one table for {title!r}, found {len(matches)}"
    return matches[0]


def _header() -> StoreHeader:
    return StoreHeader({"root": "/data", "method": "cam"}, ("smoke", "cloud"), ("student",),
                       ("features",), (1.0, 0.5), {"student/features": 2})


def _records() -> list[CamRecord]:
    rng = np.random.default_rng(0)
    return [CamRecord(f"im{i}", (8, 6), np.array([1, 0], np.uint8), np.array([0], np.int64),
                      np.array([0.8], np.float32),
                      {"student/features": rng.random((1, 4, 3), dtype=np.float32)})
            for i in range(3)]


def _attribute_names(path: Path) -> tuple[set[str], set[str], set[str]]:
    """(root attributes, attributes of the image groups, attributes of the CAM datasets)."""
    groups: set[str] = set()
    datasets: set[str] = set()
    with h5py.File(path, "r") as f:
        root = set(f.attrs)

        def visit(name: str, obj: object) -> None:
            target = datasets if isinstance(obj, h5py.Dataset) else groups
            if name.count("/") == 0 or isinstance(obj, h5py.Dataset):  # image groups, CAMs
                target.update(obj.attrs)  # type: ignore[attr-defined]
        f.visititems(visit)
    return root, groups, datasets


def test_store_attributes_are_the_documented_ones(tmp_path: Path) -> None:
    out = write_store(tmp_path / "cams.h5", _header(), _records())
    root, groups, datasets = _attribute_names(out)
    assert root == table("Root attributes")
    assert groups == table("Group attributes")
    assert datasets == table("dataset attribute")


def test_shard_attributes_are_documented(tmp_path: Path) -> None:
    records = _records()
    plan = ShardPlan(tmp_path / "cams.h5", tuple(r.id for r in records), 8, "fp")
    with ShardWriter(plan, _header()) as writer:
        writer.begin(0)
        for rec in records:
            writer.write(rec)
        writer.end()
    root, _, _ = _attribute_names(plan.shard_path(0))
    documented = table("Root attributes") | table("shard attribute")
    assert root <= documented, f"not in docs/store.md: {sorted(root - documented)}"
    assert table("shard attribute") <= root


def test_the_doc_tables_are_found() -> None:
    # the parser must see the rows (else the equalities above would compare empty sets)
    assert {"format_version", "keys", "strides"} <= table("Root attributes")
    assert "labels" in table("Group attributes")
