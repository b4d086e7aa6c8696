"""Small inline SVG charts (bars and lines) so the HTML report needs no plotting library."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str = "",
              vmax: float = 1.0, width: int = 560) -> str:
    """Horizontal bars, one per label, values in [0, vmax], with the value printed."""
    row, left, pad = 22, 140, 8
    height = pad * 2 + row * len(labels) + (20 if title else 0)
    top = pad + (20 if title else 0)
    span = width - left - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{escape(title)}">']
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


def _x_ticks(values: Sequence[float], sx: Callable[[float], float], y: float) -> list[str]:
    """A centred label under each x value."""
    return [f'<text x="{sx(v):.1f}" y="{y}" font-size="11" text-anchor="middle">{v:.3g}</text>'
            for v in values]


def line_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, title: str = "",
               xlabel: str = "", width: int = 560, height: int = 260, log_x: bool = False) -> str:
    """Lines through (x, y) points, one per series, with a legend and min/max axis labels.

    ``log_x``: place x on a logarithmic axis (for sweeps such as λ in 0.1 .. 10); points with
    x <= 0 are left out, and every distinct x gets a tick label.
    """
    points = [p for s in series.values() for p in s if p[1] == p[1] and (p[0] > 0 or not log_x)]
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    fx = math.log10 if log_x else float
    x0, x1 = fx(min(xs)), fx(max(xs))
    y0, y1 = min(ys), max(ys)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    left, right, top, bottom = 50, 130, 28, 34

    def sx(x: float) -> float:
        return left + (fx(x) - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="{escape(title)}">',
             f'<text x="8" y="16" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" '
             f'y2="{height - bottom}" stroke="#888"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="#888"/>',
             f'<text x="{left - 4}" y="{sy(y1) + 4:.1f}" font-size="11" text-anchor="end">'
             f'{y1:.3g}</text>',
             f'<text x="{left - 4}" y="{sy(y0) + 4:.1f}" font-size="11" text-anchor="end">'
             f'{y0:.3g}</text>',
             *(_x_ticks(sorted(set(xs)), sx, height - bottom + 14) if log_x else [
                 f'<text x="{sx(min(xs)):.1f}" y="{height - bottom + 14}" font-size="11">'
                 f'{min(xs):.3g}</text>',
                 f'<text x="{sx(max(xs)):.1f}" y="{height - bottom + 14}" font-size="11" '
                 f'text-anchor="end">{max(xs):.3g}</text>']),
             f'<text x="{(left + width - right) / 2:.1f}" y="{height - 6}" font-size="11" '
             f'text-anchor="middle">{escape(xlabel)}</text>']
    for i, (name, pts) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        good = [(x, y) for x, y in pts if y == y and (x > 0 or not log_x)]
        if not good:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for x, y in good:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{colour}"/>')
        ly = top + 4 + i * 16
        parts.append(f'<rect x="{width - right + 10}" y="{ly}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{width - right + 24}" y="{ly + 9}" '
                     f'font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _x_ticks(values: Sequence[float], sx: Callable[[float], float], y: float) -> list[str]:
    """A centred label under each x value."""
    return [f'<text x="{sx(v):.1f}" y="{y}" font-size="11" text-anchor="middle">{v:.3g}</text>'
            for v in values]
