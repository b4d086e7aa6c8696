"""A hand-made tiny CAM store for tests of the stages' plumbing (milliseconds to write)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pseudolabel.store import CamRecord, StoreHeader, write_store


def ramp_store(path: Path, ids: Sequence[str], config: dict | None = None) -> Path:
    """A one-class ("smoke") store at ``path``: each record an 8x8 image whose CAM is a 4x4 ramp
    from 0 to 1 at stride 2 (so threshold t keeps a known share of it)."""
    header = StoreHeader(config or {"made": path.name}, ("smoke",), ("student",), ("features",),
                         (1.0,), {"features": 2})
    ramp = np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 4, 4)
    records = [CamRecord(i, (8, 8), np.ones(1, np.uint8), np.zeros(1, np.int64),
                         np.full(1, 0.9, np.float32), {"student/features": ramp}) for i in ids]
    return write_store(path, header, records)
