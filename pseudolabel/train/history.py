"""RUN_DIR/metrics.json (one row per epoch) and RUN_DIR/curves.png."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from pseudolabel.io import atomic_path, atomic_write

log = logging.getLogger(__name__)


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
    """Loss and validation mAP per epoch as a PNG (matplotlib, Agg); False when unavailable."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.info("matplotlib is not installed: curves.png skipped")
        return False
    if not rows:
        return False
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10, 4))
    x = list(range(1, len(rows) + 1))
    ax_loss.plot(x, [r.get("loss") for r in rows], marker="o", label="train loss")
    ax_loss.set_xlabel("epoch (all phases)")
    ax_loss.set_title("training loss")
    roles = sorted({k.split("/")[0] for r in rows for k in r if k.endswith("/mAP")})
    for role in roles:
        ax_map.plot(x, [r.get(f"{role}/mAP") for r in rows], marker="o", label=role)
    ax_map.set_title("validation mAP")
    ax_map.set_xlabel("epoch (all phases)")
    if roles:
        ax_map.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return True
