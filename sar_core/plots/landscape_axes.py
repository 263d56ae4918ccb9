"""Pieces every loss-landscape figure shares: axis titles, legend names, log ticks, and gaps.

Non-finite losses (and, on a log axis, non-positive ones) become ``None`` so plotly draws a gap;
``_note`` says on the figure how many points are gaps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go

from sar_core.plots.style import method_label

ALPHA_AXIS = "α (step along direction 1, in filter-normalized units)"
BETA_AXIS = "β (step along direction 2, in filter-normalized units)"
LOSS_AXIS = "test loss (cross-entropy, nats)"
COLORSCALE = "Viridis"


def _finite(values: Sequence, log: bool = False) -> list[float | None]:
    """Floats with non-finite (and, on a log axis, non-positive) entries replaced by None."""
    out: list[float | None] = []
    for v in values:
        x = _as_float(v)
        ok = x is not None and math.isfinite(x) and (x > 0 or not log)
        out.append((math.log10(x) if log else x) if ok else None)
    return out


def _as_float(v) -> float | None:
    if isinstance(v, str):  # JSON round trip writes inf as "inf"
        v = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(v)
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _gaps(values: Sequence, log: bool = False) -> int:
    return sum(v is None for v in _finite(values, log))


def _note(fig: go.Figure, n_gaps: int, total: int, log: bool = False) -> None:
    """Say how many points are gaps: inside the plot's top-left corner (below the plot it sat on
    the x-axis title); when every point is a gap, in the middle of the empty plot."""
    if not n_gaps:
        return
    what = "not finite or ≤ 0 (log scale)" if log else "not finite (loss overflowed)"
    if n_gaps == total:
        fig.add_annotation(
            text=f"Every loss here is {what.split(' (')[0]}: nothing to draw",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            font={"size": 13, "color": "#555555"},
        )
        return
    fig.add_annotation(
        text=f"{n_gaps} of {total} points {what}: shown as gaps",
        xref="paper",
        yref="paper",
        x=0.01,
        y=0.99,
        xanchor="left",
        yanchor="top",
        showarrow=False,
        bgcolor="rgba(255,255,255,0.8)",
        font={"size": 11, "color": "#555555"},
    )


def log_ticks(values: Sequence) -> tuple[list[float], list[str]] | None:
    """1-2-5 tick values spanning the finite positive ``values``, each labelled in full
    ('0.2', '5', '20', '1e+04'): plotly's own minor log labels read '2 ... 9' for 0.2 ... 0.9.
    None when no value is finite and positive."""
    vals = [
        x for x in (_as_float(v) for v in values) if x is not None and math.isfinite(x) and x > 0
    ]
    if not vals:
        return None
    lo, hi = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
    ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in (1, 2, 5)]
    lo_v, hi_v = min(vals), max(vals)
    inside = [t for t in ticks if lo_v / 1.0001 <= t <= hi_v * 1.0001]
    if len(inside) < 2:  # a narrow range: the 1-2-5 ticks around it
        below = [t for t in ticks if t < lo_v][-1:]
        above = [t for t in ticks if t > hi_v][:1]
        inside = below + inside + above
    return inside, [f"{t:.3g}" for t in inside]


def _log_axis(fig: go.Figure, values: Sequence) -> None:
    """A log y axis with full tick labels (log_ticks)."""
    fig.update_yaxes(type="log")
    ticks = log_ticks(values)
    if ticks is not None:
        fig.update_yaxes(tickvals=ticks[0], ticktext=ticks[1])


def _name(entry: dict, i: int) -> str:
    label, method = entry.get("label"), entry.get("method")
    name = method_label(method) if method else f"model {i + 1}"
    return f"{name} — {label}" if label and label not in (name, method) else name
