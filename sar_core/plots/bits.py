"""Bit-level figures: a value's bits as cells coloured by field, and the effect of each bit flip.

Bit 0 is the least significant bit everywhere. Bit strings are MSB first (as written), so the
cells are drawn MSB on the left and every cell is labelled with its position.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from sar_core.formats.bits import bit_fields
from sar_core.plots.style import FIELD_COLORS, method_color, rgba

FIELD_NAMES = {
    "sign": "sign",
    "exponent": "exponent",
    "mantissa": "mantissa",
    "integer": "magnitude",
}


def bit_cells_figure(
    rows: Sequence[tuple[str, str, str]],
    *,
    flipped: Collection[int] = (),
    title: str | None = None,
) -> go.Figure:
    """Bits as a row of cells per (label, bitstring MSB-first, format), coloured by field.

    A 1 is a filled cell, a 0 a pale one; bits in ``flipped`` get a thick black outline. Every
    cell shows its bit value; the position (bit 0 = LSB) is written under the first row.
    """
    fig = go.Figure()
    shapes, xs, ys, texts, hovers = [], [], [], [], []
    max_width = max((len(b) for _, b, _ in rows), default=8)
    flipped = set(flipped)
    for r, (label, bitstring, fmt) in enumerate(rows):
        fields = bit_fields(fmt)  # index = position (0 = LSB)
        width = len(bitstring)
        y0 = -r * 1.6
        for col, ch in enumerate(bitstring):
            pos = width - 1 - col  # MSB first
            field = fields[pos]
            color = FIELD_COLORS[field]
            x0 = col + (max_width - width)  # right-align so bit 0 columns line up
            is_flipped = pos in flipped
            shapes.append(
                dict(
                    type="rect",
                    x0=x0 + 0.05,
                    x1=x0 + 0.95,
                    y0=y0,
                    y1=y0 + 1,
                    fillcolor=color if ch == "1" else rgba(color, 0.15),
                    line=dict(color="black" if is_flipped else color, width=4 if is_flipped else 1),
                    layer="below",  # under the bit values
                )
            )
            xs.append(x0 + 0.5)
            ys.append(y0 + 0.5)
            texts.append(ch)
            hovers.append(f"{label}: bit {pos} ({FIELD_NAMES[field]}) = {ch}")
        fig.add_annotation(
            x=max_width - width - 0.2,
            y=y0 + 0.5,
            text=label,
            showarrow=False,
            xanchor="right",
            font=dict(size=13),
        )
    # bit position labels under the last row (one per column, right-aligned to bit 0)
    y_lab = -(len(rows) - 1) * 1.6 - 0.45
    for col in range(max_width):
        pos = max_width - 1 - col
        fig.add_annotation(
            x=col + 0.5, y=y_lab, text=str(pos), showarrow=False, font=dict(size=10, color="#444")
        )
    for bit, color in (("1", "white"), ("0", "#222222")):  # one trace per text colour
        idx = [i for i, t in enumerate(texts) if t == bit]
        fig.add_trace(
            go.Scatter(
                x=[xs[i] for i in idx],
                y=[ys[i] for i in idx],
                mode="text",
                text=[f"<b>{bit}</b>"] * len(idx),
                textfont=dict(size=14, color=color),
                hovertext=[hovers[i] for i in idx],
                hoverinfo="text",
                showlegend=False,
            )
        )
    seen = []
    for _, _, fmt in rows:
        for f in bit_fields(fmt)[::-1]:
            if f not in seen:
                seen.append(f)
    for f in seen:  # legend entries for the fields
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker=dict(symbol="square", size=14, color=FIELD_COLORS[f]),
                name=FIELD_NAMES[f],
            )
        )
    if flipped:
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker=dict(symbol="square-open", size=14, color="black", line=dict(width=3)),
                name="flipped",
            )
        )
    n = len(rows)
    label_room = 3.5 if n > 1 else 1.0
    fig.update_layout(
        title=dict(text=title or "Stored bits (filled = 1, bit 0 = least significant)"),
        shapes=shapes,
        xaxis=dict(
            visible=False,
            range=[-label_room * (1 if n == 1 else 1.4) - 0.5, max_width + 0.2],
            fixedrange=True,
        ),
        yaxis=dict(visible=False, range=[-(n - 1) * 1.6 - 1.0, 1.2], fixedrange=True),
        height=120 + 55 * n,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"),
        plot_bgcolor="rgba(0,0,0,0)",
    )
    return fig


def add_field_strip(fig: go.Figure, fmt: str, *, y0: float = 1.01, y1: float = 1.05) -> None:
    """Colour strip above the plot area marking each bit position's field (x = bit position)."""
    fields = bit_fields(fmt)
    for pos, f in enumerate(fields):
        fig.add_shape(
            type="rect",
            xref="x",
            yref="paper",
            x0=pos - 0.5,
            x1=pos + 0.5,
            y0=y0,
            y1=y1,
            fillcolor=FIELD_COLORS[f],
            line=dict(width=0),
        )


def _finite_or_cap(values: Sequence[float], cap: float) -> tuple[list[float], list[bool]]:
    out, inf = [], []
    for v in values:
        v = float(v)
        bad = not np.isfinite(v)
        inf.append(bad)
        out.append(cap if bad else v)
    return out, inf


def flip_effect_figure(
    relative_change: Sequence[float], fmt: str, *, value: float, title: str | None = None
) -> go.Figure:
    """|after - before| / |before| of flipping each bit of one value (bars by field, log y).

    Non-finite results (Inf / NaN after the flip) are drawn as a capped bar marked "inf/NaN".
    """
    fields = bit_fields(fmt)
    finite = [float(v) for v in relative_change if np.isfinite(v) and v > 0]
    cap = max(finite) * 100 if finite else 1.0
    y, bad = _finite_or_cap(relative_change, cap)
    y = [v if v > 0 else None for v in y]
    fig = go.Figure()
    for f in dict.fromkeys(fields[::-1]):
        idx = [i for i, ff in enumerate(fields) if ff == f]
        fig.add_trace(
            go.Bar(
                x=idx,
                y=[y[i] for i in idx],
                name=FIELD_NAMES[f],
                marker=dict(
                    color=FIELD_COLORS[f],
                    pattern=dict(shape=["x" if bad[i] else "" for i in idx]),
                ),
                text=["inf/NaN" if bad[i] else "" for i in idx],
                textposition="outside",
                hovertemplate="bit %{x}<br>relative change %{y:.3g}<extra>" + f + "</extra>",
            )
        )
    fig.update_layout(
        title=dict(text=title or f"Relative change of {value:.6g} when one bit flips ({fmt})"),
        xaxis=dict(
            title=dict(text="bit position (0 = least significant)"),
            dtick=1 if len(fields) <= 16 else 2,
        ),
        yaxis=dict(title=dict(text="|Δw| / |w| (log scale)"), type="log", exponentformat="power"),
        barmode="overlay",
        bargap=0.15,
        height=400,
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0),
        margin=dict(t=60),
    )
    return fig


def delta_per_bit_figure(
    curves: Mapping[str, Sequence[float]],
    fmt: str,
    *,
    methods: Mapping[str, str] | None = None,
    dashes: Mapping[str, str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Median |Δw| per flipped bit position for one or more models (log y), fields shaded.

    ``curves``: label -> values indexed by bit position; ``methods``: label -> method (colour);
    ``dashes``: label -> line dash (e.g. demo models solid, the user's own dashed).
    Positions whose flip gives Inf/NaN are drawn at a capped height with an "×" marker.
    """
    fields = bit_fields(fmt)
    all_finite = [
        float(v) for vals in curves.values() for v in vals if np.isfinite(v) and float(v) > 0
    ]
    cap = max(all_finite) * 100 if all_finite else 1.0
    fig = go.Figure()
    for f in dict.fromkeys(fields[::-1]):
        idx = [i for i, ff in enumerate(fields) if ff == f]
        fig.add_vrect(
            x0=min(idx) - 0.5,
            x1=max(idx) + 0.5,
            fillcolor=FIELD_COLORS[f],
            opacity=0.08,
            line_width=0,
            annotation_text=FIELD_NAMES[f],
            annotation_position="top left",
        )
    for i, (label, vals) in enumerate(curves.items()):
        y, bad = _finite_or_cap(vals, cap)
        method = (methods or {}).get(label, "")
        color = method_color(method, i)
        fig.add_trace(
            go.Scatter(
                x=list(range(len(y))),
                y=[v if v > 0 else None for v in y],
                mode="lines+markers",
                name=label,
                line=dict(color=color, width=2, dash=(dashes or {}).get(label, "solid")),
                marker=dict(
                    size=[11 if b else 6 for b in bad],
                    symbol=["x" if b else "circle" for b in bad],
                ),
                hovertemplate="bit %{x}<br>median |Δw| %{y:.3g}<extra>" + label + "</extra>",
            )
        )
    fig.update_layout(
        title=dict(text=title or f"Typical weight change per flipped bit ({fmt})"),
        xaxis=dict(
            title=dict(text="bit position (0 = least significant)"),
            dtick=1 if len(fields) <= 16 else 2,
        ),
        yaxis=dict(
            title=dict(text="median |Δw| over the weights (log scale)"),
            type="log",
            exponentformat="power",
        ),
        height=400,
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
        margin=dict(t=60),
    )
    return fig
