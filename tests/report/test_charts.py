"""The SVG charts' axes: nice steps against a naive search, whole-number epoch ticks that read
well for 1 and for 100 epochs, fixed score axes, and the training figure of metrics rows."""

from __future__ import annotations

import itertools
import math
import re
from xml.etree import ElementTree

import pytest

from pseudolabel.report.curves import training_charts, training_figure
from pseudolabel.report.svg import colour_bar, line_chart, nice_step, side_by_side, ticks


def naive_nice_step(span: float, count: int) -> float:
    """The smallest of {1, 2, 2.5, 5} x 10^k (k from -6 to 6) that is >= span / count."""
    candidates = sorted(m * 10.0 ** k for k in range(-6, 7) for m in (1, 2, 2.5, 5))
    return next(c for c in candidates if c >= span / count * (1 - 1e-9))


@pytest.mark.parametrize("span", [0.003, 0.07, 0.34, 1.0, 2.2, 11, 99, 1234])
@pytest.mark.parametrize("count", [4, 5, 8])
def test_nice_step_matches_a_naive_search(span: float, count: int) -> None:
    assert nice_step(span, count) == pytest.approx(naive_nice_step(span, count))
    whole = nice_step(span, count, integer=True)
    assert whole == round(whole) and whole >= max(1, span / count * (1 - 1e-9))


def test_ticks_are_the_multiples_in_range() -> None:
    assert ticks(0.0, 1.0, 0.2) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert ticks(1, 100, 20) == [20, 40, 60, 80, 100]
    assert ticks(0.31, 0.69, 0.1) == [0.4, 0.5, 0.6]


def _x_labels(svg: str) -> list[str]:
    """Tick labels under the x axis (centred text below the plot, the axis title excluded)."""
    return [t for t in re.findall(r'text-anchor="middle">([^<]+)</text>', svg) if t != "epoch"]


def _y_labels(svg: str) -> list[float]:
    return [float(t) for t in re.findall(r'text-anchor="end">([^<]+)</text>', svg)]


def test_epoch_axes_read_well_for_one_and_for_a_hundred_epochs() -> None:
    one = line_chart({"mAP": [(1, 0.55)]}, xlabel="epoch", integer_x=True, y_range=(0, 1))
    assert _x_labels(one) == ["1"]  # one tick, not "1 1" or a range 1..2
    assert _y_labels(one) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    hundred = line_chart({"loss": [(e, 1 / e) for e in range(1, 101)]}, xlabel="epoch",
                         integer_x=True)
    assert _x_labels(hundred) == ["20", "40", "60", "80", "100"]
    y = _y_labels(hundred)
    assert y[0] <= 0.01 and y[-1] >= 1.0 and len(y) <= 8  # covers the values in a few steps
    steps = {round(b - a, 9) for a, b in itertools.pairwise(y)}
    assert len(steps) == 1
    twelve = _x_labels(line_chart({"s": [(e, e) for e in range(1, 13)]}, integer_x=True))
    assert twelve == ["2", "4", "6", "8", "10", "12"]


def test_training_figure_from_metrics_rows() -> None:
    rows = [{"epoch": 1, "phase": "teacher", "loss": 0.7, "teacher/cls": 0.7,
             "teacher/mAP": 0.5, "teacher/mean_f1": 0.4, "teacher/ap": {"smoke": 0.5},
             "images_per_s": 30.0, "lr": 0.001},
            {"epoch": 2, "phase": "student", "loss": 0.6, "student/cls": 0.5,
             "student/align": 0.1, "student/mAP": None, "student/mean_f1": 0.45}]
    loss, scores = training_charts(rows)
    assert "student/align" in loss and "teacher/cls" in loss and ">loss<" in loss
    assert "images_per_s" not in loss + scores and ">lr<" not in loss + scores
    assert "teacher/mAP" in scores and "teacher/mAP" not in loss and "ap" not in re.findall(
        r">([a-z/_]+)</text>", scores)
    assert _y_labels(scores)[0] == 0.0 and _y_labels(scores)[-1] == 1.0
    doc = training_figure(rows)
    root = ElementTree.fromstring(doc)  # one well-formed SVG document holding both charts
    assert len(root.findall("{http://www.w3.org/2000/svg}svg")) == 2
    assert training_figure([]) == "" and side_by_side([]).startswith("<svg")


def test_colour_bar_spreads_its_stops() -> None:
    bar = colour_bar([(0, 0, 0), (128, 128, 128), (255, 255, 255)], title="CAM")
    offsets = [float(v) for v in re.findall(r'offset="([0-9.]+)"', bar)]
    assert offsets == [0.0, 0.5, 1.0] and "rgb(128, 128, 128)" in bar
    ElementTree.fromstring(bar)
    assert math.isclose(float(re.findall(r'<text x="([0-9.]+)"[^>]*>1</text>', bar)[0]),
                        10 + 240, abs_tol=0.1)
