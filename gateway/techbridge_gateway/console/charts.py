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


def _axis_label(ts: float, span: float) -> str:
    from datetime import UTC, datetime

    d = datetime.fromtimestamp(ts, UTC)
    return d.strftime("%H:%M") if span < 2 * 86400 else d.strftime("%Y-%m-%d")


def timeline_chart(title: str, points: Sequence[tuple[float, Sequence[float]]], series: Sequence[str],
                   fmt=lambda v: f"{v:g}", empty: str = "—", width: int = 480, height: int = 240,
                   until: float | None = None) -> str:
    """Cumulative figures over time as step lines: `points` are (unix seconds, one value per series)
    in time order, each value holding until the next point and the last one until `until` (the
    time of the page). The x axis is proportional to time and spans at least a minute."""
    if not points:
        return f'<p class="chart-empty" role="note">{escape(title)}: {escape(empty)}</p>'
    left, right, top_pad, bottom = 8, 8, 40, 22
    t0 = points[0][0]
    t1 = max(points[-1][0], until or 0, t0 + 60)
    span = t1 - t0
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top = max((v for _, values in points for v in values), default=0) or 1

    def x(ts: float) -> float:
        return left + (ts - t0) / span * plot_w

    def y(v: float) -> float:
        return top_pad + plot_h - max(0.0, v) / top * plot_h

    out = [f'<svg class="chart timeline" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    lx = 0
    for i, name in enumerate(series):
        out.append(f'<rect x="{lx}" y="4" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>'
                   f'<text x="{lx + 16}" y="14" class="legend">{escape(name)}</text>')
        lx += 24 + 9 * len(name) + (8 * sum(1 for c in name if ord(c) > 0x2e80))
    for k in range(5):  # light grid with the value it stands for
        v = top * k / 4
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>')
        if k:
            out.append(f'<text x="{left + 2}" y="{y(v) - 3:.1f}" class="value">{escape(fmt(v))}</text>')
    for i in range(len(series)):
        colour = PALETTE[i % len(PALETTE)]
        path, prev = [], None
        for ts, values in points:
            v = values[i]
            if prev is None:
                path.append(f"M{x(ts):.1f},{y(v):.1f}")
            else:
                path.append(f"H{x(ts):.1f}V{y(v):.1f}")
            prev = v
        path.append(f"H{x(t1):.1f}")
        final = points[-1][1][i]
        out.append(f'<path d="{"".join(path)}" fill="none" stroke="{colour}" stroke-width="2.5" data-series="{i}">'
                   f'<title>{escape(series[i])}: {escape(fmt(final))}</title></path>')
    base = height - 6
    for ts, anchor in ((t0, "start"), ((t0 + t1) / 2, "middle"), (t1, "end")):
        out.append(f'<text x="{x(ts):.1f}" y="{base}" text-anchor="{anchor}" class="value">'
                   f'{escape(_axis_label(ts, span))}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(title: str, edges: Sequence[float], counts: Sequence[int], markers: Sequence[tuple[str, float]] = (),
              fmt=lambda v: f"{v:g}", empty: str = "—", width: int = 480, height: int = 220) -> str:
    """Vertical bars of a distribution (bin i spans edges[i]..edges[i+1]) with labelled vertical
    markers (e.g. P10 / P50 / P90) and the first and last edge under the axis."""
    if not counts or len(edges) != len(counts) + 1 or edges[-1] <= edges[0]:
        return f'<p class="chart-empty" role="note">{escape(title)}: {escape(empty)}</p>'
    top_pad, bottom, side = 22, 22, 4
    lo, hi = edges[0], edges[-1]
    plot_w, plot_h = width - 2 * side, height - top_pad - bottom
    most = max(counts) or 1

    def x(v: float) -> float:
        return side + (v - lo) / (hi - lo) * plot_w

    out = [f'<svg class="chart histogram" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>']
    for i, n in enumerate(counts):
        x0, x1 = x(edges[i]), x(edges[i + 1])
        h = n / most * plot_h
        out.append(f'<rect class="bin" x="{x0 + 0.5:.1f}" y="{top_pad + plot_h - h:.1f}" width="{max(0.5, x1 - x0 - 1):.1f}" '
                   f'height="{h:.1f}" fill="{PALETTE[0]}" fill-opacity="0.75"><title>{escape(fmt(edges[i]))} – '
                   f'{escape(fmt(edges[i + 1]))}: {n}</title></rect>')
    out.append(f'<line x1="{side}" x2="{width - side}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h}" class="axis"/>')
    for j, (name, v) in enumerate(markers):
        if lo <= v <= hi:
            mx = x(v)
            anchor = "start" if mx < width * 0.15 else "end" if mx > width * 0.85 else "middle"
            out.append(f'<line class="marker" x1="{mx:.1f}" x2="{mx:.1f}" y1="{top_pad - 4}" y2="{top_pad + plot_h}" '
                       f'stroke="{PALETTE[1 + j % (len(PALETTE) - 1)]}" stroke-width="2" stroke-dasharray="4 3"/>'
                       f'<text x="{mx:.1f}" y="{top_pad - 8 - (j % 2) * 0}" text-anchor="{anchor}" class="label">'
                       f'{escape(name)}</text>')
    out.append(f'<text x="{side}" y="{height - 6}" class="value">{escape(fmt(lo))}</text>'
               f'<text x="{width - side}" y="{height - 6}" text-anchor="end" class="value">{escape(fmt(hi))}</text>')
    out.append("</svg>")
    return "".join(out)
