"""Bit-level figures: a value's bits as cells coloured by field, and the effect of each bit flip.

Bit 0 is the least significant bit everywhere. Bit strings are MSB first (as written), so the
cells are drawn MSB on the left and every cell is labelled with its position.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class CellLayout:
    """Geometry of ``bit_cells_figure`` in data units (one cell = 1 x 1) and pixels."""

    row_pitch: float = 1.6  # vertical distance between the rows of two values
    cell_gap: float = 0.05  # blank margin left and right of each cell
    outline: int = 1  # cell outline width (px)
    flipped_outline: int = 4  # outline of a flipped bit (px)
    pale: float = 0.15  # opacity of a 0 cell's fill
    label_gap: float = 0.2  # between a row's label (right-aligned) and its first cell
    position_drop: float = 0.45  # bit positions: this far below the last row's bottom edge
    label_room: float = 3.5  # x room for the labels of several rows (cells)
    label_room_one: float = 1.0  # ... and of a single row
    label_stretch: float = 1.4  # extra label room factor with several rows
    top: float = 1.2  # y axis above the first row's bottom edge
    bottom: float = 1.0  # y axis below the last row's bottom edge
    height_base: int = 120  # figure height (px): base + per row
    height_row: int = 55
    font_bit: int = 14  # bit value text (px)
    font_label: int = 13
    font_position: int = 10
    legend_marker: int = 14
    labels_above: bool = False  # each row's label on its own line above its cells
    position_spacing: int = 1  # number positions at least this many cells apart (1: all)
    legend_below: bool = False  # the legend under the cells (beside the title it covers it)


LAYOUT = CellLayout()
# For a narrow column (the lesson's): labels above the rows, so 32 cells get the full width and
# long labels ("Weight clipping before") are never cut; smaller bit values; positions numbered
# at the field edges, the flipped bits and every 8th bit, never two closer than 3 cells.
NARROW = CellLayout(
    row_pitch=2.1, top=2.0, font_bit=11, font_label=12, height_row=48,
    labels_above=True, position_spacing=3, legend_below=True,
)  # fmt: skip


def numbered_positions(fmt: str, width: int, flipped: Collection[int], spacing: int) -> list[int]:
    """Bit positions to number under the cells: all of them at spacing 1; otherwise the flipped
    bits first, then each field's edges, then every 8th bit, skipping any closer than
    ``spacing`` cells to one already numbered."""
    if spacing <= 1:
        return list(range(width))
    fields = bit_fields(fmt) if len(bit_fields(fmt)) == width else ["?"] * width
    starts = [p for p in range(1, width) if fields[p] != fields[p - 1]]  # lowest bit of a field
    edges = [width - 1, 0, *starts, *(p - 1 for p in starts)]
    chosen: list[int] = []
    for p in [*sorted(flipped), *edges, *range(0, width, 8)]:
        if 0 <= p < width and all(abs(p - q) >= spacing for q in chosen):
            chosen.append(p)
    return sorted(chosen, reverse=True)


def _row_cells(r: int, label: str, bitstring: str, fmt: str, max_width: int, flipped, L):
    """Shapes and text points of one row: (shapes, [(x, y, bit, hover)]), right-aligned."""
    fields = bit_fields(fmt)  # index = position (0 = LSB)
    width = len(bitstring)
    y0 = -r * L.row_pitch
    shapes, points = [], []
    for col, ch in enumerate(bitstring):
        pos = width - 1 - col  # MSB first
        color = FIELD_COLORS[fields[pos]]
        x0 = col + (max_width - width)  # right-align so bit 0 columns line up
        hit = pos in flipped
        shapes.append(
            dict(
                type="rect",
                x0=x0 + L.cell_gap,
                x1=x0 + 1 - L.cell_gap,
                y0=y0,
                y1=y0 + 1,
                fillcolor=color if ch == "1" else rgba(color, L.pale),
                line=dict(
                    color="black" if hit else color, width=L.flipped_outline if hit else L.outline
                ),
                layer="below",  # under the bit values
            )
        )
        hover = f"{label}: bit {pos} ({FIELD_NAMES[fields[pos]]}) = {ch}"
        points.append((x0 + 0.5, y0 + 0.5, ch, hover))
    return shapes, points


def _bit_text_traces(points, L) -> list[go.Scatter]:
    """The bit values as text, one trace per text colour (white on a filled cell)."""
    traces = []
    for bit, color in (("1", "white"), ("0", "#222222")):
        mine = [p for p in points if p[2] == bit]
        traces.append(
            go.Scatter(
                x=[p[0] for p in mine],
                y=[p[1] for p in mine],
                mode="text",
                text=[f"<b>{bit}</b>"] * len(mine),
                textfont=dict(size=L.font_bit, color=color),
                hovertext=[p[3] for p in mine],
                hoverinfo="text",
                showlegend=False,
            )
        )
    return traces


def _legend_traces(formats: Sequence[str], flipped: bool, L) -> list[go.Scatter]:
    """Legend entries: each field present (MSB side first), and 'flipped' when any is."""
    seen: list[str] = []
    for fmt in formats:
        for f in bit_fields(fmt)[::-1]:
            if f not in seen:
                seen.append(f)
    marker = dict(symbol="square", size=L.legend_marker)
    traces = [
        go.Scatter(
            x=[None], y=[None], mode="markers", marker={**marker, "color": FIELD_COLORS[f]},
            name=FIELD_NAMES[f],
        )
        for f in seen
    ]  # fmt: skip
    if flipped:
        traces.append(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker=dict(
                    symbol="square-open", size=L.legend_marker, color="black", line=dict(width=3)
                ),
                name="flipped",
            )
        )
    return traces


def bit_cells_figure(
    rows: Sequence[tuple[str, str, str]],
    *,
    flipped: Collection[int] = (),
    title: str | None = None,
    layout: CellLayout = LAYOUT,
) -> go.Figure:
    """Bits as a row of cells per (label, bitstring MSB-first, format), coloured by field.

    A 1 is a filled cell, a 0 a pale one; bits in ``flipped`` get a thick black outline. Every
    cell shows its bit value; the position (bit 0 = LSB) is written under the last row.
    """
    L, n = layout, len(rows)
    fig = go.Figure()
    max_width = max((len(b) for _, b, _ in rows), default=8)
    flipped = set(flipped)
    shapes, points = [], []
    for r, (label, bitstring, fmt) in enumerate(rows):
        s, p = _row_cells(r, label, bitstring, fmt, max_width, flipped, L)
        shapes += s
        points += p
        x0 = max_width - len(bitstring)  # the row's first cell
        where = (
            dict(x=x0, y=-r * L.row_pitch + 1.45, xanchor="left")
            if L.labels_above
            else dict(x=x0 - L.label_gap, y=-r * L.row_pitch + 0.5, xanchor="right")
        )
        fig.add_annotation(
            **where, text=label, showarrow=False, font=dict(size=L.font_label)
        )  # fmt: skip
    y_pos = -(n - 1) * L.row_pitch - L.position_drop  # positions, right-aligned to bit 0
    widest = max(rows, key=lambda row: len(row[1]))[2] if rows else "int8"
    spacing = L.position_spacing if max_width > 16 else 1  # 16 numbers fit any column
    for pos in numbered_positions(widest, max_width, flipped, spacing):
        fig.add_annotation(
            x=max_width - pos - 0.5, y=y_pos, text=str(pos), showarrow=False,
            font=dict(size=L.font_position, color="#444"),
        )  # fmt: skip
    for trace in _bit_text_traces(points, L) + _legend_traces(
        [f for *_, f in rows], bool(flipped), L
    ):
        fig.add_trace(trace)
    room = 0.0 if L.labels_above else L.label_room * L.label_stretch if n > 1 else L.label_room_one
    fig.update_layout(
        title=dict(text=title or "Stored bits (filled = 1, bit 0 = least significant)"),
        shapes=shapes,
        xaxis=dict(visible=False, range=[-room - 0.5, max_width + 0.2], fixedrange=True),
        yaxis=dict(
            visible=False, range=[-(n - 1) * L.row_pitch - L.bottom, L.top], fixedrange=True
        ),
        height=L.height_base + L.height_row * n,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", yanchor="top", y=0.0, x=0, xanchor="left")
        if L.legend_below
        else dict(orientation="h", yanchor="bottom", y=1.0, x=1, xanchor="right"),
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
