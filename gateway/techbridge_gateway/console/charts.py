"""Inline SVG charts for the dashboard: pure functions from figures to markup, no I/O, no script.

Horizontal bars read well at phone width (labels above their bars, the SVG scales to its
container through its viewBox) and need no charting library.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from html import escape

PALETTE = ("#2563eb", "#f59e0b", "#16a34a", "#db2777", "#7c3aed", "#0891b2")
WIDTH = 360
ROW = 22
GAP = 8
LABEL = 16


def bar_chart(title: str, rows: Sequence[tuple[str, Sequence[float]]], series: Sequence[str],
              fmt=lambda v: f"{v:g}", empty: str = "—", width: int = WIDTH) -> str:
    """One group per row (its label above), one bar per series in the group, scaled to the max.

    Drawn at `width` pixels on a wide screen (never scaled up), narrowed with its text on a phone."""
    if not rows:
        return f'<p class="chart-empty" role="note">{escape(title)}: {escape(empty)}</p>'
    top = max((v for _, values in rows for v in values), default=0) or 1
    legend_h = ROW if len(series) > 1 else 0
    group_h = LABEL + ROW * len(series) + GAP
    height = legend_h + group_h * len(rows)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
           f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    if legend_h:
        x = 0
        for i, name in enumerate(series):
            out.append(f'<rect x="{x}" y="4" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>'
                       f'<text x="{x + 16}" y="14" class="legend">{escape(name)}</text>')
            x += 24 + 9 * len(name) + (8 * sum(1 for c in name if ord(c) > 0x2e80))
    y = legend_h
    for label, values in rows:
        out.append(f'<text x="0" y="{y + 12}" class="label">{escape(label)}</text>')
        y += LABEL
        for i, v in enumerate(values):
            w = max(0.0, v) / top * (width - 120)
            colour = PALETTE[i % len(PALETTE)]
            out.append(f'<rect x="0" y="{y + 2}" width="{w:.1f}" height="{ROW - 6}" rx="2" fill="{colour}">'
                       f'<title>{escape(series[i])}: {escape(fmt(v))}</title></rect>'
                       f'<text x="{w + 6:.1f}" y="{y + ROW - 8}" class="value">{escape(fmt(v))}</text>')
            y += ROW
        y += GAP
    out.append("</svg>")
    return "".join(out)


def count_by(values: Iterable[str], limit: int = 12) -> list[tuple[str, list[float]]]:
    """Most common first (ties by name), as chart rows of one series."""
    counts = Counter(values)
    return [(k, [float(n)]) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def by_month(timestamps: Iterable[str | None]) -> list[tuple[str, list[float]]]:
    """ISO timestamps -> rows per YYYY-MM in calendar order."""
    counts = Counter(ts[:7] for ts in timestamps if ts)
    return [(m, [float(counts[m])]) for m in sorted(counts)]
