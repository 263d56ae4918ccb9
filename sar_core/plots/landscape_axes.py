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


MAX_TICKS = 10  # at most this many tick labels on a log axis (110 piled into a black block)


def log_ticks(values: Sequence) -> tuple[list[float], list[str]] | None:
    """Tick values spanning the finite positive ``values`` on a log axis, each labelled in full
    ('0.2', '5', '20', '1e+04'; plotly's own minor log labels read '2 ... 9' for 0.2 ... 0.9),
    never more than ``MAX_TICKS``. None when no value is finite and positive.

    The spacing follows the range: up to three decades, 1-2-5 in each decade; beyond, powers of
    ten, every 1, 2, 5, 10, ... decades; and under a decade, when 1-2-5 would leave fewer than
    three labels inside the range, evenly spaced round values (1.4, 1.6, 1.8, 2.0 over
    1.32-2.06, where 1-2-5 leaves the single label '2'). The axis stays logarithmic.
    """
    vals = [
        x for x in (_as_float(v) for v in values) if x is not None and math.isfinite(x) and x > 0
    ]
    if not vals:
        return None
    lo_v, hi_v = min(vals), max(vals)
    lo, hi = math.floor(math.log10(lo_v)), math.ceil(math.log10(hi_v))
    if math.log10(hi_v / lo_v) <= 3:
        ticks = [m * 10.0**e for e in range(lo, hi + 1) for m in (1, 2, 5)]
    else:
        every = next(k for k in (1, 2, 5, 10, 20, 50, 100, 200) if (hi - lo) / k < MAX_TICKS - 1)
        ticks = [10.0**e for e in range(lo - lo % every, hi + every, every)]
    inside = [t for t in ticks if lo_v / 1.0001 <= t <= hi_v * 1.0001]
    if len(inside) < 3 and hi_v / lo_v < 10:  # a narrow range: round, evenly spaced values
        return _linear_ticks(lo_v, hi_v)
    if len(inside) < 2:  # the ticks just around the range
        inside = [t for t in ticks if t < lo_v][-1:] + inside + [t for t in ticks if t > hi_v][:1]
    return inside, [f"{t:.3g}" for t in inside]


def _linear_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Round, evenly spaced ticks over [lo, hi] (lo > 0): about four to eight of them, one step
    beyond each end so a range narrower than a step still gets two."""
    span = hi - lo if hi > lo else 0.2 * lo
    e = math.floor(math.log10(span / 5))
    step, digits = next(
        (m * 10.0**e, max(0, -e + (m == 2.5)))
        for m in (1, 2, 2.5, 5, 10)
        if span / (m * 10.0**e) <= 7
    )
    k0, k1 = math.floor(lo / step), math.ceil(hi / step)
    k0, k1 = (k0 - 1, k1 + 1) if k0 == k1 else (k0, k1)  # one value: a tick either side
    ticks = [round(k * step, digits + 2) for k in range(k0, k1 + 1)]
    ticks = [t for t in ticks if t > 0]
    return ticks, [f"{t:.{digits}f}" if digits <= 4 else f"{t:.3g}" for t in ticks]


def decades(values: Sequence) -> float:
    """How many decades the finite positive ``values`` span (0 when fewer than two)."""
    vals = [x for x in (_as_float(v) for v in values) if x is not None and 0 < x < math.inf]
    return math.log10(max(vals) / min(vals)) if len(vals) > 1 else 0.0


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
