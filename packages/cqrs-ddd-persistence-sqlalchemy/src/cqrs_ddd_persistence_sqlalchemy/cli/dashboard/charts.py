"""Small inline SVG line charts: no script, no external file, nothing to build."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from cqrs_ddd_persistence_sqlalchemy.cli._views import format_seconds

__all__ = ["format_value", "line_chart"]

WIDTH, HEIGHT, PAD = 240, 60, 3
#: Room above the line for the scale.
TOP = 14


def format_value(value: float, unit: str) -> str:
    """``12`` / ``3m 04s`` (unit ``s``)."""
    if unit == "s":
        return format_seconds(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def line_chart(
    key: str, title: str, unit: str, points: Sequence[tuple[float, float]], window_s: float
) -> str:
    """A titled chart of ``points`` (``(unix time, value)``) over the last ``window_s``
    seconds, its y axis from 0 to the largest value shown."""
    head = (
        f'<figure class="chart" id="chart-{escape(key)}" data-samples="{len(points)}">'
        f"<figcaption>{escape(title)}"
    )
    if not points:
        return head + ' <span class="muted">no sample yet</span></figcaption></figure>'
    last = points[-1][1]
    largest = max(v for _, v in points)
    top = largest or 1.0  # a flat zero line sits on the axis
    end = points[-1][0]
    # Until the window is full the chart spans the samples there are (a dashboard started a
    # minute ago draws its minute across the whole width).
    span = min(window_s, end - points[0][0]) or 1.0
    start = end - span

    def xy(at: float, value: float) -> str:
        x = PAD + (WIDTH - 2 * PAD) * max(0.0, at - start) / span
        y = HEIGHT - PAD - (HEIGHT - PAD - TOP) * value / top
        return f"{x:.1f},{y:.1f}"

    coords = " ".join(xy(at, v) for at, v in points)
    dot = xy(*points[-1])
    label = f"{title}: {format_value(last, unit)} now, up to {format_value(largest, unit)}"
    return (
        f'{head} <b class="now">{escape(format_value(last, unit))}</b></figcaption>'
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(label)}">'
        f'<line x1="0" y1="{HEIGHT - PAD}" x2="{WIDTH}" y2="{HEIGHT - PAD}" class="axis"/>'
        f'<polyline points="{coords}" class="line"/>'
        f'<circle cx="{dot.split(",")[0]}" cy="{dot.split(",")[1]}" r="2.5" class="dot"/>'
        f'<text x="{PAD}" y="9" class="scale">max {escape(format_value(largest, unit))} · '
        f"{escape(format_seconds(span))}</text>"
        "</svg></figure>"
    )
