"""Training curves from RUN_DIR/metrics.json rows: RUN_DIR/curves.svg and the report's section.

Both draw with :mod:`pseudolabel.report.svg`, so there is one plotting path and no plotting
library to install.
"""

from __future__ import annotations

from collections.abc import Sequence

from pseudolabel.report.svg import line_chart, side_by_side

#: Row keys that are scores in [0, 1] (validation), drawn on a fixed 0..1 axis.
SCORE_SUFFIXES = ("mAP", "mean_f1")


def _numeric(rows: Sequence[dict]) -> list[str]:
    keys: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in (
                    "epoch", "phase_epoch", "images_per_s"):
                keys[k] = None
    return list(keys)


def training_charts(rows: Sequence[dict]) -> list[str]:
    """Two SVG charts of one training run: the losses and the validation scores per epoch.

    rows: RUN_DIR/metrics.json, one dict per epoch with ``epoch`` (counted over every phase),
    ``loss`` (the total) and per-role terms such as ``student/cls`` and ``student/mAP``.
    Losses: the total and each term (other numbers such as ``lr`` are left out); scores: mAP and
    mean F1 per role, on a 0..1 axis. Epochs
    are whole-number ticks, so one epoch reads as well as a hundred.
    """
    keys = _numeric(rows)
    scores = [k for k in keys if k.split("/")[-1] in SCORE_SUFFIXES or k.lower().endswith("map")]
    # the total loss and each role's terms (student/cls, student/align, ...); not lr and the like
    losses = [k for k in keys if k not in scores and ("loss" in k.lower() or "/" in k)]

    def series(names: list[str]) -> dict[str, list[tuple[float, float]]]:
        return {k: [(float(r.get("epoch", i + 1)), float(r[k])) for i, r in enumerate(rows)
                    if isinstance(r.get(k), (int, float))] for k in names}

    charts = []
    if losses:
        charts.append(line_chart(series(losses), title="training loss", xlabel="epoch",
                                 integer_x=True))
    if scores:
        charts.append(line_chart(series(scores), title="validation mAP and mean F1",
                                 xlabel="epoch", integer_x=True, y_range=(0.0, 1.0)))
    return [c for c in charts if c]


def training_figure(rows: Sequence[dict]) -> str:
    """:func:`training_charts` side by side in one standalone SVG document ("" without rows)."""
    charts = training_charts(rows)
    return side_by_side(charts, title="training curves") if charts else ""
