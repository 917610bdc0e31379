"""Charts as inline SVG strings: histogram, tornado, radar. No browser, no plotting library."""

from __future__ import annotations

import math
from html import escape


def fmt_amount(minor: int | float, currency: str = "CNY") -> str:
    """Minor units -> a readable major-unit figure: 12,345,678 fen -> 'CNY 123,456.78' / 'CNY 1.23 m'."""
    major = minor / 100
    if abs(major) >= 1e8:
        return f"{currency} {major / 1e6:,.0f} m"
    if abs(major) >= 1e6:
        return f"{currency} {major / 1e6:,.2f} m"
    return f"{currency} {major:,.2f}"


def _short(minor: float) -> str:
    major = minor / 100
    for div, suffix in ((1e9, "bn"), (1e6, "m"), (1e3, "k")):
        if abs(major) >= div:
            return f"{major / div:.3g}{suffix}"
    return f"{major:.3g}"


def histogram(edges: list[int], counts: list[int], *, p10: int, p50: int, p90: int, currency: str,
              width: int = 640, height: int = 300, font: str = "sans-serif") -> str:
    left, right, top, bottom = 56, 16, 24, 48
    pw, ph = width - left - right, height - top - bottom
    lo, hi = edges[0], edges[-1]
    span = (hi - lo) or 1
    peak = max(counts) or 1

    def x(v: float) -> float:
        return left + (v - lo) / span * pw

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="Histogram of simulated values">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for i, c in enumerate(counts):
        x0, x1 = x(edges[i]), x(edges[i + 1])
        h = c / peak * ph
        parts.append(f'<rect x="{x0:.1f}" y="{top + ph - h:.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
                     f'height="{h:.1f}" fill="#4a78b5"><title>{_short(edges[i])} - {_short(edges[i + 1])}: {c}</title></rect>')
    for label, v, colour in (("P10", p10, "#c0392b"), ("P50", p50, "#222222"), ("P90", p90, "#c0392b")):
        if lo <= v <= hi:
            xv = x(v)
            parts.append(f'<line x1="{xv:.1f}" y1="{top}" x2="{xv:.1f}" y2="{top + ph}" stroke="{colour}" '
                         f'stroke-width="1.5" stroke-dasharray="4 3"/>')
            parts.append(f'<text x="{xv + 3:.1f}" y="{top + 12}" font-size="11" fill="{colour}" '
                         f'font-family="@FONT@">{label} {_short(v)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#555"/>')
    for k in range(5):
        v = lo + span * k / 4
        parts.append(f'<text x="{x(v):.1f}" y="{top + ph + 16}" font-size="11" text-anchor="middle" '
                     f'font-family="@FONT@">{_short(v)}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{height - 8}" font-size="12" text-anchor="middle" '
                 f'font-family="@FONT@">Reconciled value ({escape(currency)})</text>')
    parts.append(f'<text x="14" y="{top + ph / 2:.1f}" font-size="12" text-anchor="middle" font-family="@FONT@" '
                 f'transform="rotate(-90 14 {top + ph / 2:.1f})">Paths</text>')
    parts.append("</svg>")
    return "".join(parts).replace("@FONT@", escape(font))


def tornado(bars: list[dict], *, base: int, currency: str, width: int = 640, font: str = "sans-serif") -> str:
    """Bars: {label, value_at_low, value_at_high, low_input, high_input} in order, widest first."""
    row = 26
    left, right, top = 220, 24, 30
    height = top + row * max(len(bars), 1) + 36
    pw = width - left - right
    if not bars:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="60"><text x="10" y="30" '
                f'font-family="{escape(font)}" font-size="12">No input moves the value.</text></svg>')
    lo = min(min(b["value_at_low"], b["value_at_high"]) for b in bars + [{"value_at_low": base, "value_at_high": base}])
    hi = max(max(b["value_at_low"], b["value_at_high"]) for b in bars + [{"value_at_low": base, "value_at_high": base}])
    span = (hi - lo) or 1

    def x(v: float) -> float:
        return left + (v - lo) / span * pw

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="Tornado chart of input sensitivities">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
             f'<rect x="{left}" y="7" width="10" height="10" fill="#c0392b"/>',
             f'<text x="{left + 14}" y="16" font-size="11" font-family="@FONT@">input low</text>',
             f'<rect x="{left + 90}" y="7" width="10" height="10" fill="#2e8b57"/>',
             f'<text x="{left + 104}" y="16" font-size="11" font-family="@FONT@">input high</text>']
    for i, b in enumerate(bars):
        y = top + i * row
        for v, colour in ((b["value_at_low"], "#c0392b"), (b["value_at_high"], "#2e8b57")):
            x0, x1 = sorted((x(base), x(v)))
            parts.append(f'<rect x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 0.5):.1f}" height="{row - 8}" '
                         f'fill="{colour}" opacity="0.85"><title>{escape(b["label"])}: {_short(v)}</title></rect>')
        parts.append(f'<text x="{left - 6}" y="{y + row / 2 + 4:.1f}" font-size="11" text-anchor="end" '
                     f'font-family="@FONT@">{escape(b["label"][:34])}</text>')
    xb = x(base)
    parts.append(f'<line x1="{xb:.1f}" y1="{top - 4}" x2="{xb:.1f}" y2="{top + row * len(bars)}" stroke="#222"/>')
    yb = top + row * len(bars) + 14
    for k in range(5):
        v = lo + span * k / 4
        parts.append(f'<text x="{x(v):.1f}" y="{yb}" font-size="11" text-anchor="middle" '
                     f'font-family="@FONT@">{_short(v)}</text>')
    parts.append(f'<text x="{left + pw / 2:.1f}" y="{yb + 18}" font-size="12" text-anchor="middle" '
                 f'font-family="@FONT@">Reconciled value ({escape(currency)}); line = base case</text>')
    parts.append("</svg>")
    return "".join(parts).replace("@FONT@", escape(font))


def radar(categories: list[tuple[str, float | None]], *, size: int = 360, font: str = "sans-serif") -> str:
    """Scores 1-5 on one axis per category; an unrated category is drawn at 0 and marked."""
    cx = cy = size / 2
    radius = size / 2 - 70
    n = len(categories)

    def point(i: int, r: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * i / n
        return cx + r * math.cos(a), cy + r * math.sin(a)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
             f'viewBox="0 0 {size} {size}" role="img" aria-label="Scorecard radar chart">',
             f'<rect x="0" y="0" width="{size}" height="{size}" fill="#ffffff"/>']
    for level in range(1, 6):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, radius * level / 5) for i in range(n)))
        parts.append(f'<polygon points="{pts}" fill="none" stroke="#ccc"/>')
    for i, (label, v) in enumerate(categories):
        x, y = point(i, radius)
        parts.append(f'<line x1="{cx}" y1="{cy}" x2="{x:.1f}" y2="{y:.1f}" stroke="#ccc"/>')
        lx, ly = point(i, radius + 30)
        text = f"{label} {v:.1f}" if v is not None else f"{label} (not rated)"
        parts.append(f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="12" text-anchor="middle" '
                     f'font-family="@FONT@">{escape(text)}</text>')
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, radius * (v or 0) / 5) for i, (_, v) in enumerate(categories)))
    parts.append(f'<polygon points="{pts}" fill="#4a78b5" fill-opacity="0.35" stroke="#4a78b5" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts).replace("@FONT@", escape(font))
