"""Charts as server-rendered SVG: no script, no CDN, readable without colour.

Each chart carries a <title> and an aria-label saying in words what it shows, and the
pages put the same figures in a table next to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from html import escape

PASS_COLOUR, FAIL_COLOUR, TARGET_COLOUR, GRID = "#1b5e20", "#b71c1c", "#4a4a4a", "#d0d0d0"
LINE_COLOUR = "#0b4f8a"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def ratio_bar(ratio: float | None, target: float, label: str, width: int = 120) -> str:
    """A horizontal bar for a ratio with a tick at the target."""
    height = 14
    fill = 0 if ratio is None else max(0.0, min(1.0, ratio)) * width
    colour = PASS_COLOUR if ratio is not None and ratio + 1e-9 >= target else FAIL_COLOUR
    tx = max(0.0, min(1.0, target)) * width
    return (f'<svg class="bar" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(label)}" viewBox="0 0 {width} {height}">'
            f'<title>{escape(label)}</title>'
            f'<rect x="0" y="2" width="{width}" height="{height - 4}" fill="#eeeeee"/>'
            f'<rect x="0" y="2" width="{fill:.1f}" height="{height - 4}" fill="{colour}"/>'
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="0" y2="{height}" stroke="{TARGET_COLOUR}" '
            f'stroke-width="2"/></svg>')


def sparkline(points: Sequence[tuple[dt.date, float | None]], target: float, label: str,
              width: int = 120, height: int = 28) -> str:
    """A small trend line (ratio 0..1) with the target as a dashed line."""
    values = [(d, v) for d, v in points if v is not None]
    head = (f'<svg class="spark" width="{width}" height="{height}" role="img" '
            f'aria-label="{escape(label)}" viewBox="0 0 {width} {height}">'
            f'<title>{escape(label)}</title>')
    ty = height - 2 - target * (height - 4)
    target_line = (f'<line x1="0" x2="{width}" y1="{ty:.1f}" y2="{ty:.1f}" '
                   f'stroke="{TARGET_COLOUR}" stroke-dasharray="3 2" stroke-width="1"/>')
    if len(values) < 2:
        return head + target_line + "</svg>"
    first, last = values[0][0], values[-1][0]
    span = max((last - first).days, 1)
    coords = " ".join(f"{(d - first).days / span * (width - 2) + 1:.1f},"
                      f"{height - 2 - v * (height - 4):.1f}" for d, v in values)
    return (head + target_line + f'<polyline fill="none" stroke="{LINE_COLOUR}" '
            f'stroke-width="1.5" points="{coords}"/></svg>')


def trend_chart(points: Sequence[tuple[dt.date, float | None]], target: float, label: str,
                date_format: str, width: int = 640, height: int = 220) -> str:
    """Ratio per day (0-100 %) with the target line, axes and date labels."""
    left, right, top, bottom = 44, 12, 12, 28
    pw, ph = width - left - right, height - top - bottom
    out = [f'<svg class="trend" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(label)}" preserveAspectRatio="xMidYMid meet">'
           f'<title>{escape(label)}</title>']
    for pct in (0, 25, 50, 75, 100):
        y = top + ph - pct / 100 * ph
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{GRID}" stroke-width="1"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" '
                   f'font-size="11" fill="#333333">{pct}%</text>')
    ty = top + ph - target * ph
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{ty:.1f}" y2="{ty:.1f}" '
               f'stroke="{TARGET_COLOUR}" stroke-width="2" stroke-dasharray="6 4"/>'
               f'<text x="{left + pw}" y="{ty - 4:.1f}" text-anchor="end" font-size="11" '
               f'fill="#333333">{_pct(target)}</text>')
    values = [(d, v) for d, v in points if v is not None]
    if values:
        first, last = points[0][0], points[-1][0]
        span = max((last - first).days, 1)

        def x(day: dt.date) -> float:
            return left + (day - first).days / span * pw

        coords = " ".join(f"{x(d):.1f},{top + ph - v * ph:.1f}" for d, v in values)
        if len(values) == 1:
            d, v = values[0]
            out.append(f'<circle cx="{x(d):.1f}" cy="{top + ph - v * ph:.1f}" r="3" '
                       f'fill="{LINE_COLOUR}"/>')
        else:
            out.append(f'<polyline fill="none" stroke="{LINE_COLOUR}" stroke-width="2" '
                       f'points="{coords}"/>')
        for day in (first, first + (last - first) / 2, last):
            out.append(f'<text x="{x(day):.1f}" y="{height - 8}" text-anchor="middle" '
                       f'font-size="11" fill="#333333">{day.strftime(date_format)}</text>')
    out.append("</svg>")
    return "".join(out)
