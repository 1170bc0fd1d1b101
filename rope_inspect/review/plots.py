"""Small inline-SVG bar charts for the review page (no plotting library, no script).

Defects per metre of rope, per hour, and the score histogram with the threshold
marked. Styling lives in `static/review.css` (classes `bar`, `axis`, `tick`, `marker`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from html import escape

import numpy as np

from rope_inspect.storage import Histogram

WIDTH, HEIGHT = 380, 190
LEFT, RIGHT, TOP, BOTTOM = 38, 12, 28, 36


def _x_ticks(edges: np.ndarray, count: int = 5) -> list[float]:
    picks = np.unique(np.linspace(0, len(edges) - 1, min(count, len(edges))).round())
    return [float(edges[int(i)]) for i in picks]


def _frame(title: str, x_label: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    return [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f'<text class="title" x="{LEFT}" y="16">{escape(title)}</text>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" '
        f'y2="{TOP + plot_h}"/>',
        f'<text class="label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" '
        f'text-anchor="middle">{escape(x_label)}</text>',
    ]


def _bars(hist: Histogram, x_of: Callable[[float], float], tick: Callable) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    top = max(int(hist.counts.max()) if hist.counts.size else 0, 1)
    parts = []
    for n, count in enumerate(hist.counts):
        x0, x1 = x_of(float(hist.edges[n])), x_of(float(hist.edges[n + 1]))
        h = count / top * plot_h
        parts.append(
            f'<rect class="bar" x="{x0 + 0.5:.1f}" y="{TOP + plot_h - h:.1f}" '
            f'width="{max(x1 - x0 - 1, 0.8):.1f}" height="{h:.1f}">'
            f"<title>{escape(tick(float(hist.edges[n])))}: {int(count)}</title></rect>"
        )
    for value, y in ((0, TOP + plot_h), (top, TOP + 4)):
        parts.append(
            f'<text class="tick" x="{LEFT - 5}" y="{y:.1f}" '
            f'text-anchor="end">{value}</text>'
        )
    return parts


def _axis_ticks(
    edges: np.ndarray, x_of: Callable[[float], float], tick: Callable, n_ticks: int
) -> list[str]:
    ticks = _x_ticks(edges, n_ticks)
    parts = []
    for n, value in enumerate(ticks):
        anchor = "end" if n == len(ticks) - 1 and n else "middle"
        parts.append(
            f'<text class="tick" x="{x_of(value):.1f}" y="{HEIGHT - BOTTOM + 13}" '
            f'text-anchor="{anchor}">{escape(tick(value))}</text>'
        )
    return parts


def bar_chart(
    hist: Histogram,
    title: str,
    x_label: str,
    tick: Callable[[float], str],
    marker: float | None = None,
    marker_label: str = "threshold",
    n_ticks: int = 5,
) -> str:
    """An SVG bar chart of `hist`; `tick` formats bin edges for the x axis."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    low, high = float(hist.edges[0]), float(hist.edges[-1])
    span = high - low if high > low else 1.0

    def x_of(value: float) -> float:
        return LEFT + (value - low) / span * plot_w

    parts = _frame(title, x_label) + _bars(hist, x_of, tick)
    parts += _axis_ticks(hist.edges, x_of, tick, n_ticks)
    if not hist.counts.sum():
        parts.append(
            f'<text class="empty" x="{LEFT + plot_w / 2:.1f}" '
            f'y="{TOP + plot_h / 2:.1f}" '
            'text-anchor="middle">no defects in this selection</text>'
        )
    if marker is not None and low <= marker <= high:
        x = x_of(marker)
        parts.append(
            f'<line class="marker" x1="{x:.1f}" y1="{TOP - 4}" x2="{x:.1f}" '
            f'y2="{TOP + plot_h}"/><text class="marker-label" x="{x + 3:.1f}" '
            f'y="{TOP + 6}">{escape(marker_label)} {marker:.3g}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def metres(value: float) -> str:
    return f"{value:g} m"


def hour(value: float) -> str:
    return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%m-%d %H:00")


def score(value: float) -> str:
    return f"{value:.2f}"
