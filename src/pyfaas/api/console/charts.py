"""Charts as inline SVG, drawn on the server: no chart library, no script needed to see them.

A chart is a few series of values over the same x positions (time buckets, days). Lines
join every value; each value above zero also gets a circle (``class="point"``) with its
value in ``data-value`` and a ``<title>`` the browser shows on hover.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 14, 24


@dataclass(frozen=True, slots=True)
class Series:
    """One line (or set of bars) of a chart; ``css`` names its colour class."""

    label: str
    values: Sequence[float | None]
    css: str


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at or above ``value`` (1 for nothing)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return float(step * power)
    return float(10 * power)


def _number(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.3g}"


def chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    unit: str = "",
    bars: bool = False,
) -> Markup:
    """An SVG chart of ``series`` over ``x_labels`` (one label per value; the first and
    last are printed under the axis). ``bars`` draws bars side by side instead of lines."""
    n = len(x_labels)
    top = max((v for s in series for v in s.values if v is not None), default=0.0)
    y_max = nice_ceiling(top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(n, 1)

    def x(i: int) -> float:
        return LEFT + slot * (i + 0.5)

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / y_max)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" data-title="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>',
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + 4}" text-anchor="end">'
        f"{escape(_number(y_max) + unit)}</text>",
        f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h + 4}" text-anchor="end">0</text>',
    ]
    if n:
        parts.append(f'<text class="tick" x="{LEFT}" y="{HEIGHT - 6}">{escape(x_labels[0])}</text>')
        parts.append(
            f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - 6}" text-anchor="end">'
            f"{escape(x_labels[-1])}</text>"
        )
    bar_w = slot * 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        points = [(i, v) for i, v in enumerate(s.values) if v is not None]
        if bars:
            for i, v in points:
                if v <= 0:
                    continue
                left = LEFT + slot * i + slot * 0.1 + bar_w * k
                parts.append(
                    f'<rect class="point bar {s.css}" x="{left:.1f}" y="{y(v):.1f}" '
                    f'width="{bar_w:.1f}" height="{TOP + plot_h - y(v):.1f}" '
                    f'data-value="{v:g}"><title>{escape(x_labels[i])}: '
                    f"{escape(_number(v) + unit)} {escape(s.label)}</title></rect>"
                )
            continue
        if points:
            line = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in points)
            parts.append(f'<polyline class="line {s.css}" points="{line}"/>')
        for i, v in points:
            if v > 0:
                parts.append(
                    f'<circle class="point {s.css}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" '
                    f'data-value="{v:g}"><title>{escape(x_labels[i])}: '
                    f"{escape(_number(v) + unit)} {escape(s.label)}</title></circle>"
                )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key {s.css}">{escape(s.label)}</span>' for s in series if s.label
    )
    return Markup(
        f'<figure class="chart-box"><figcaption>{escape(title)}'
        f'<span class="legend">{legend}</span></figcaption>{"".join(parts)}</figure>'
    )
