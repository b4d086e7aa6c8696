"""Small inline SVG charts (bars, lines, a colour bar): the project's one plotting path.

The HTML report embeds them and ``pseudolabel train`` writes RUN_DIR/curves.svg with them, so
no plotting library is needed anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        'aria-label="{t}" font-family="system-ui, sans-serif">')


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str = "",
              vmax: float = 1.0, width: int = 560) -> str:
    """Horizontal bars, one per label, values in [0, vmax], with the value printed."""
    row, left, pad = 22, 140, 8
    height = pad * 2 + row * len(labels) + (20 if title else 0)
    top = pad + (20 if title else 0)
    span = width - left - 60
    parts = [_SVG.format(w=width, h=height, t=escape(title))]
    if title:
        parts.append(f'<text x="{pad}" y="{pad + 12}" font-size="13" font-weight="bold">'
                     f'{escape(title)}</text>')
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row
        w = 0.0 if value != value else max(0.0, min(1.0, value / vmax)) * span
        text = "n/a" if value != value else f"{value:.3f}"
        parts.append(f'<text x="{left - 6}" y="{y + 15}" font-size="12" text-anchor="end">'
                     f'{escape(str(label))}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 15}" font-size="12">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def nice_step(span: float, count: int = 5, *, integer: bool = False) -> float:
    """A step of 1, 2, 2.5 or 5 x 10^k giving about ``count`` intervals over ``span`` (> 0);
    with ``integer`` a whole number (2.5 x 10^k skipped below 10)."""
    raw = span / max(count, 1)
    power = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = m * power
        if step >= raw * (1 - 1e-9) and not (integer and step != round(step)):
            break
    return max(1.0, round(step)) if integer else step


def ticks(lo: float, hi: float, step: float) -> list[float]:
    """The multiples of ``step`` in [lo, hi] (rounded to the step's precision)."""
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    digits = _digits(step) + 2
    return [round(k * step, digits) for k in range(first, last + 1)]


def _digits(step: float) -> int:
    """Decimals that print every multiple of ``step`` exactly (0.25 -> 2, 0.1 -> 1, 5 -> 0)."""
    for d in range(0, 10):
        if abs(step * 10 ** d - round(step * 10 ** d)) < 1e-6:
            return d
    return 10


def _axis(values: Sequence[float], *, integer: bool, fixed: tuple[float, float] | None,
          pad_to_ticks: bool, count: int = 5) -> tuple[float, float, list[float], int]:
    """(lo, hi, ticks, decimals) of an axis over ``values``.

    ``fixed``: the range to show (widened if a value falls outside it); ``integer``: whole-number
    ticks only (epochs); ``pad_to_ticks``: widen the range to the ticks around the values.
    """
    lo, hi = min(values), max(values)
    if fixed is not None:
        lo, hi = min(lo, fixed[0]), max(hi, fixed[1])
    if hi <= lo:  # one value: a range around it that reads well
        half = 0.5 if integer else (abs(lo) * 0.1 or 0.5)
        lo, hi = lo - half, hi + half
    step = nice_step(hi - lo, count, integer=integer)
    if pad_to_ticks and fixed is None:
        lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    return lo, hi, ticks(lo, hi, step), _digits(step)


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str = "",
               xlabel: str = "", ylabel: str = "", width: int = 560, height: int = 260,
               log_x: bool = False, integer_x: bool = False,
               y_range: tuple[float, float] | None = None) -> str:
    """Lines through (x, y) points, one per series, with a legend, ticks and grid lines.

    Ticks are at 1, 2, 2.5 or 5 x 10^k steps; ``integer_x`` keeps them on whole numbers (epochs:
    one epoch shows one tick "1", a hundred epochs 0, 20, .. 100); ``y_range`` fixes the y axis
    (e.g. (0, 1) for AP, mAP and IoU). ``log_x`` places x on a logarithmic axis (for sweeps such
    as λ in 0.1 .. 10): points with x <= 0 are left out, and every distinct x gets a label.
    NaN values are left out.
    """
    points = [p for s in series.values() for p in s if p[1] == p[1] and (p[0] > 0 or not log_x)]
    if not points:
        return ""
    xs, ys = [float(p[0]) for p in points], [float(p[1]) for p in points]
    fx: Callable[[float], float] = math.log10 if log_x else float
    if log_x:
        x0, x1 = fx(min(xs)), fx(max(xs))
        if x1 <= x0:
            x0, x1 = x0 - 0.5, x1 + 0.5
        xticks, xdigits = sorted(set(xs)), None
    else:
        x0, x1, xticks, xd = _axis(xs, integer=integer_x, fixed=None, pad_to_ticks=False,
                                   count=8)
        xdigits = xd
    y0, y1, yticks, ydigits = _axis(ys, integer=False, fixed=y_range, pad_to_ticks=True)
    left, right, top, bottom = 52, 150, 28, 38

    def sx(x: float) -> float:
        return left + (fx(x) - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [_SVG.format(w=width, h=height, t=escape(title)),
             f'<text x="8" y="16" font-size="13" font-weight="bold">{escape(title)}</text>']
    for y in yticks:
        parts.append(f'<line x1="{left}" y1="{sy(y):.1f}" x2="{width - right}" y2="{sy(y):.1f}" '
                     f'stroke="#e4e4e4"/><text x="{left - 5}" y="{sy(y) + 4:.1f}" '
                     f'font-size="11" text-anchor="end">{y:.{ydigits}f}</text>')
    for x in xticks:
        label = f"{x:.3g}" if xdigits is None else f"{x:.{xdigits}f}"
        parts.append(f'<line x1="{sx(x):.1f}" y1="{height - bottom}" x2="{sx(x):.1f}" '
                     f'y2="{height - bottom + 4}" stroke="#888"/><text x="{sx(x):.1f}" '
                     f'y="{height - bottom + 16}" font-size="11" text-anchor="middle">{label}'
                     f'</text>')
    parts += [f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" '
              f'y2="{height - bottom}" stroke="#888"/>',
              f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
              f'<text x="{(left + width - right) / 2:.1f}" y="{height - 4}" font-size="11" '
              f'text-anchor="middle">{escape(xlabel)}</text>']
    if ylabel:
        parts.append(f'<text x="12" y="{(top + height - bottom) / 2:.1f}" font-size="11" '
                     f'text-anchor="middle" transform="rotate(-90 12 '
                     f'{(top + height - bottom) / 2:.1f})">{escape(ylabel)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        good = [(x, y) for x, y in pts if y == y and (x > 0 or not log_x)]
        if not good:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for x, y in good if len(good) <= 40 else ():  # dots while they stay apart
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
        ly = top + 4 + i * 16
        parts.append(f'<rect x="{width - right + 10}" y="{ly}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{width - right + 24}" y="{ly + 9}" '
                     f'font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def colour_bar(stops: Sequence[tuple[int, int, int]], *, title: str = "", width: int = 260,
               labels: Sequence[float] = (0.0, 0.5, 1.0)) -> str:
    """A horizontal colour bar: ``stops`` (RGB, low to high) spread evenly over [0, 1]."""
    bar_w, h = width - 20, 52
    grad = "".join(f'<stop offset="{i / (len(stops) - 1):.3f}" stop-color="rgb{tuple(c)}"/>'
                   for i, c in enumerate(stops))
    parts = [_SVG.format(w=width, h=h, t=escape(title)),
             f'<defs><linearGradient id="cbar">{grad}</linearGradient></defs>',
             f'<text x="10" y="12" font-size="11">{escape(title)}</text>',
             f'<rect x="10" y="17" width="{bar_w}" height="14" fill="url(#cbar)" '
             f'stroke="#888"/>']
    for v in labels:
        x = 10 + v * bar_w
        parts.append(f'<line x1="{x:.1f}" y1="31" x2="{x:.1f}" y2="35" stroke="#888"/>'
                     f'<text x="{x:.1f}" y="47" font-size="11" text-anchor="middle">{v:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def side_by_side(charts: Sequence[str], *, title: str = "") -> str:
    """One standalone SVG document holding ``charts`` (each an <svg> with width/height) in a row."""
    sizes = [tuple(int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', c).groups())
             for c in charts if c]
    charts = [c for c in charts if c]
    width = sum(w for w, _ in sizes) or 1
    height = max((h for _, h in sizes), default=1)
    parts = [_SVG.format(w=width, h=height, t=escape(title)).replace(
        "<svg ", '<svg version="1.1" ', 1),
             f'<rect width="{width}" height="{height}" fill="white"/>']
    x = 0
    for chart, (w, _) in zip(charts, sizes, strict=True):
        parts.append(chart.replace("<svg ", f'<svg x="{x}" y="0" ', 1))
        x += w
    parts.append("</svg>")
    return "".join(parts)
