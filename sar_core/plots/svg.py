"""A static SVG accuracy chart: drawn with the numbers it shows, no JavaScript to load.

The lesson's main chart answers every slider move; a plotly chart there waited 1-3 s for
plotly.js on a loaded 2-core machine after its numbers were already on screen. This one is plain
SVG text (a viewBox that scales to its column), with a native tooltip (``<title>``) on every
point. Same conventions as :func:`sar_core.plots.robustness.sweep_figure`: accuracies in [0, 1]
drawn in %, a log x axis labelled at the measured levels, a 95% CI band per model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

from sar_core.plots.style import curve_colors, curve_percents, method_label

W, H = 640, 380  # viewBox units
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 34, 92  # plot margins (legend and axis title below)


def _level_text(v: float) -> str:
    if v >= 1e-3:
        return f"{v:.2g}"
    m, e = f"{v:.1e}".split("e")
    return f"{m.rstrip('0').rstrip('.')}e{int(e)}"


def y_range(curves: Sequence[Mapping]) -> tuple[float, float, int]:
    """(low, high, tick step) in %: the data's span with a margin, both ends on the tick step
    (10 points, or 20 over a wide span), within [0, 100]."""
    vals = curve_percents(curves)
    if not vals:
        return 0.0, 100.0, 20
    step = 10 if max(vals) - min(vals) <= 45 else 20
    lo = max(0.0, math.floor((min(vals) - 2) / step) * step)
    hi = min(100.0, math.ceil((max(vals) + 1) / step) * step)
    return (lo, hi, step) if hi > lo else (max(0.0, hi - step), hi, step)


def accuracy_svg(
    curves: Sequence[Mapping],
    *,
    title: str = "Accuracy vs bit error rate",
    mark_x: float | None = None,
    x_title: str = "bit error rate (log scale)",
) -> str:
    """Mean accuracy (%) with a 95% CI band per model against a log-scaled rate, as SVG text.

    ``curves``: dicts with ``label``, ``method``, ``x`` (levels > 0), ``mean``, ``lo``, ``hi``
    (accuracies in [0, 1]) and optionally ``dash`` ("dash" for a dashed line).
    """
    levels = sorted({float(v) for c in curves for v in c["x"]})
    if not levels or min(levels) <= 0:
        raise ValueError(f"Invalid levels={levels}: need at least one level, every one > 0")
    lx0, lx1 = math.log10(levels[0]), math.log10(levels[-1])
    span = (lx1 - lx0) or 1.0
    y0, y1, step = y_range(curves)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(v: float) -> float:
        return LEFT + (math.log10(v) - lx0) / span * pw if lx1 > lx0 else LEFT + pw / 2

    def py(a: float) -> float:
        return TOP + (1 - (100 * a - y0) / (y1 - y0)) * ph

    out = [
        f'<svg class="sar-accuracy-chart" viewBox="0 0 {W} {H}" width="100%" '
        'xmlns="http://www.w3.org/2000/svg" role="img" '
        'style="font-family: sans-serif; max-width: 100%; height: auto">',
        f'<text x="{LEFT - 40}" y="18" font-size="14" font-weight="600">{escape(title)}</text>',
    ]
    for t in range(int(y0), int(y1) + 1, step):
        y = py(t / 100)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e6e6"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#555">{t}</text>'
        )
    for v in levels:
        x = px(v)
        out.append(
            f'<text x="{x:.1f}" y="{TOP + ph + 16}" font-size="10" text-anchor="middle" '
            f'fill="#555">{_level_text(v)}</text>'
        )
    out.append(
        f'<text x="{LEFT + pw / 2:.1f}" y="{TOP + ph + 34}" font-size="12" text-anchor="middle" '
        f'fill="#555">{escape(x_title)}</text>'
        f'<text transform="translate(14 {TOP + ph / 2:.1f}) rotate(-90)" font-size="12" '
        'text-anchor="middle" fill="#555">test accuracy (%)</text>'
    )
    if mark_x is not None and levels[0] <= mark_x <= levels[-1]:
        x = px(mark_x)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#555" '
            'stroke-dasharray="2 3"/>'
        )
    colors = curve_colors([c.get("method", "") for c in curves])
    for c, col in zip(curves, colors):
        label = escape(c.get("label") or method_label(c.get("method", "")))
        pts = list(zip(c["x"], c["mean"], c["lo"], c["hi"]))
        if len(pts) > 1:
            band = [(px(x), py(h)) for x, _, _, h in pts] + [
                (px(x), py(lo)) for x, _, lo, _ in pts[::-1]
            ]
            out.append(
                f'<polygon points="{" ".join(f"{a:.1f},{b:.1f}" for a, b in band)}" '
                f'fill="{col}" fill-opacity="0.16" stroke="none"/>'
            )
        dash = ' stroke-dasharray="6 4"' if c.get("dash") == "dash" else ""
        line = " ".join(f"{px(x):.1f},{py(m):.1f}" for x, m, _, _ in pts)
        out.append(
            f'<polyline data-label="{label}" points="{line}" fill="none" stroke="{col}" '
            f'stroke-width="2.5"{dash}/>'
        )
        for x, m, lo, hi in pts:
            out.append(
                f'<circle cx="{px(x):.1f}" cy="{py(m):.1f}" r="3.5" fill="{col}">'
                f"<title>{label} at {_level_text(x)}: {100 * m:.1f}% "
                f"(95% CI {100 * lo:.1f}–{100 * hi:.1f}%)</title></circle>"
            )
    # legend: one row (two when long), under the axis title
    x, y = LEFT, TOP + ph + 58
    for c, col in zip(curves, colors):
        label = escape(c.get("label") or method_label(c.get("method", "")))
        w = 40 + 8 * len(label)
        if x + w > W - RIGHT:
            x, y = LEFT, y + 18
        out.append(
            f'<line x1="{x}" x2="{x + 22}" y1="{y - 4}" y2="{y - 4}" stroke="{col}" '
            f'stroke-width="3"/><text x="{x + 28}" y="{y}" font-size="12">{label}</text>'
        )
        x += w
    out.append("</svg>")
    return "".join(out)
