"""RUN_DIR/metrics.json (one row per epoch) and RUN_DIR/curves.svg."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from pseudolabel.io import atomic_write

#: The training curves' file in RUN_DIR (an SVG: any browser shows it).
CURVES_FILE = "curves.svg"


def _clean(value: Any) -> Any:
    """NaN/inf -> None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_metrics(path: Path, rows: list[dict]) -> None:
    """The metric rows as a strict-JSON list, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(_clean(rows), fh, indent=1)


def plot_curves(path: Path, rows: list[dict]) -> bool:
    """Loss and validation scores per epoch as an SVG (the report's own drawing); False without
    rows. Needs no plotting library, so it never warns."""
    from pseudolabel.report.curves import training_figure

    figure = training_figure(_clean(rows))
    if not figure:
        return False
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(figure)
    return True
