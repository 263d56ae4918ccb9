"""Loss-landscape figures (plotly): 1D overlays, contours on one colour scale, surfaces,
interpolation and fault-direction slices. Non-finite losses are drawn as gaps, with a note."""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sar_core.plots.style import curve_colors, method_label

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


def slice_1d_figure(
    curves: Sequence[dict],
    *,
    log_y: bool = False,
    fault_alpha: float | None = None,
    title: str = "1D loss slice along a filter-normalized random direction",
) -> go.Figure:
    """Several models' L(w + α d) overlaid; curves: dicts with label, method, alphas, loss."""
    fig = go.Figure()
    gaps = total = 0
    colors = curve_colors([c.get("method", "") for c in curves])
    for i, c in enumerate(curves):
        y = _finite(c["loss"])
        gaps += _gaps(c["loss"], log_y)
        total += len(y)
        fig.add_trace(
            go.Scatter(
                x=list(c["alphas"]),
                y=y,
                mode="lines",
                name=_name(c, i),
                line={"color": colors[i], "width": 2.5},
                connectgaps=False,
            )
        )
    if fault_alpha is not None:
        fig.add_vline(x=fault_alpha, line_dash="dot", annotation_text="sampled fault")
    fig.update_layout(
        title=title, xaxis_title=ALPHA_AXIS, yaxis_title=LOSS_AXIS, legend_title="method"
    )
    if log_y:
        _log_axis(fig, [v for c in curves for v in c["loss"]])
    _note(fig, gaps, total, log_y)
    return fig


def _z(grid: dict, log_z: bool) -> list[list[float | None]]:
    return [_finite(row, log_z) for row in grid["loss"]]


def color_range(grids: Sequence[dict], *, log_z: bool = False) -> tuple[float, float]:
    """(zmin, zmax) over the finite values of all grids (log10 of the loss when log_z)."""
    vals = [v for g in grids for row in _z(g, log_z) for v in row if v is not None]
    if not vals:
        return (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    return (lo, hi if hi > lo else lo + 1.0)


def _contour(grid: dict, zmin: float, zmax: float, log_z: bool, **kw) -> go.Contour:
    size = (zmax - zmin) / 20
    return go.Contour(
        x=list(grid["alphas"]),
        y=list(grid["betas"]),
        z=_z(grid, log_z),
        zmin=zmin,
        zmax=zmax,
        autocontour=False,
        contours={"start": zmin, "end": zmax, "size": size},  # same levels in every panel
        colorscale=COLORSCALE,
        colorbar={"title": "log10 loss" if log_z else "loss"},
        connectgaps=False,
        **kw,
    )


def contour_figures(grids: Sequence[dict], *, log_z: bool = False) -> list[go.Figure]:
    """One contour per model, all on the same colour scale and contour levels (same zmin/zmax)."""
    zmin, zmax = color_range(grids, log_z=log_z)
    figs = []
    for i, g in enumerate(grids):
        fig = go.Figure(_contour(g, zmin, zmax, log_z, name=_name(g, i)))
        _center_marker(fig, g, i)
        fig.update_layout(
            title=f"{_name(g, i)}: loss on a random 2D plane",
            xaxis_title=ALPHA_AXIS,
            yaxis_title=BETA_AXIS,
        )
        n = sum(len(r) for r in g["loss"])
        _note(fig, sum(_gaps(r, log_z) for r in g["loss"]), n, log_z)
        figs.append(fig)
    return figs


def _center_marker(fig: go.Figure, g: dict, i: int, **where) -> None:
    marker = {"symbol": "x", "size": 10, "color": "white", "line": {"width": 1}}
    trace = go.Scatter(
        x=[0.0], y=[0.0], mode="markers", name=f"{_name(g, i)} (trained weights)", marker=marker
    )
    fig.add_trace(trace, **where)  # where: row / col of a subplot


def contours_side_by_side(
    grids: Sequence[dict], *, log_z: bool = False, title: str | None = None
) -> go.Figure:
    """All models' contours in one figure, side by side, sharing one colour bar."""
    zmin, zmax = color_range(grids, log_z=log_z)
    names = [_name(g, i) for i, g in enumerate(grids)]
    fig = make_subplots(rows=1, cols=len(grids), subplot_titles=names, shared_yaxes=True)
    gaps = total = 0
    for i, g in enumerate(grids):
        tr = _contour(g, zmin, zmax, log_z, name=names[i], showscale=(i == len(grids) - 1))
        fig.add_trace(tr, row=1, col=i + 1)
        _center_marker(fig, g, i, row=1, col=i + 1)
        fig.update_xaxes(title_text="α (filter-normalized)", row=1, col=i + 1)
        gaps += sum(_gaps(r, log_z) for r in g["loss"])
        total += sum(len(r) for r in g["loss"])
    fig.update_yaxes(title_text="β (filter-normalized)", row=1, col=1)
    scale = "log10 test loss" if log_z else "test loss"
    fig.update_layout(
        title=title or f"{scale} on a random 2D plane (one colour scale for all models)",
        showlegend=False,
    )
    _note(fig, gaps, total, log_z)
    return fig


def surface_figure(grid: dict, zmin: float, zmax: float, log_z: bool = False) -> go.Figure:
    """3D surface of one grid on a given colour range (share it across models)."""
    fig = go.Figure(
        go.Surface(
            x=list(grid["alphas"]),
            y=list(grid["betas"]),
            z=_z(grid, log_z),
            cmin=zmin,
            cmax=zmax,
            colorscale=COLORSCALE,
            colorbar={"title": "log10 loss" if log_z else "loss"},
            name=_name(grid, 0),
        )
    )
    fig.update_layout(
        title=f"{_name(grid, 0)}: loss surface",
        scene={
            "xaxis_title": "α",
            "yaxis_title": "β",
            "zaxis_title": "log10 loss" if log_z else "loss",
            "zaxis": {"range": [zmin, zmax]},
        },
    )
    n = sum(len(r) for r in grid["loss"])
    _note(fig, sum(_gaps(r, log_z) for r in grid["loss"]), n, log_z)
    return fig


def interpolation_figure(
    result: dict,
    label_a: str,
    label_b: str,
    *,
    method_a: str | None = None,
    method_b: str | None = None,
) -> go.Figure:
    """Loss and accuracy along (1 - t) w_a + t w_b, with both models marked."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(
            x=result["t"],
            y=_finite(result["loss"]),
            name="loss",
            mode="lines",
            line={"color": "#000000"},
        ),
        secondary_y=False,
    )
    acc = [None if a is None else 100 * a for a in _finite(result["accuracy"])]
    fig.add_trace(
        go.Scatter(
            x=result["t"],
            y=acc,
            name="accuracy",
            mode="lines",
            line={"dash": "dash", "color": "#999999"},
        ),
        secondary_y=True,
    )
    ends = curve_colors([method_a or "", method_b or ""])  # SGD to your own SGD: two colours
    for t, key, label, color in (
        (0.0, "loss_a", label_a, ends[0]),
        (1.0, "loss_b", label_b, ends[1]),
    ):
        y = _finite([result.get(key)])[0]
        fig.add_trace(
            go.Scatter(
                x=[t],
                y=[y],
                mode="markers",
                name=label,
                marker={"size": 12, "color": color},
            ),
            secondary_y=False,
        )
    fig.update_layout(title=f"Linear interpolation: {label_a} (t = 0) → {label_b} (t = 1)")
    fig.update_xaxes(title_text="t (interpolation coefficient)")
    fig.update_yaxes(title_text=LOSS_AXIS, secondary_y=False)
    fig.update_yaxes(title_text="test accuracy (%)", tickformat=".1f", secondary_y=True)
    _note(fig, _gaps(result["loss"]), len(result["loss"]))
    return fig


def fault_slice_figure(results: Sequence[dict], *, log_y: bool = True) -> go.Figure:
    """Loss along each model's sampled fault direction; a marker where the real fault lands."""
    fig = go.Figure()
    gaps = total = 0
    at_fault, direction = [], []  # names of models whose fault loss / direction is not finite
    colors = curve_colors([r.get("method", "") for r in results])
    for i, r in enumerate(results):
        name, color = _name(r, i), colors[i]
        gaps += _gaps(r["loss"], log_y)
        total += len(r["loss"])
        fig.add_trace(
            go.Scatter(
                x=list(r["alphas"]),
                y=_finite(r["loss"]),
                mode="lines",
                name=name,
                line={"color": color, "width": 2.5},
            )
        )
        fl = _finite([r.get("fault_loss")], log_y)[0]
        if fl is None:
            at_fault.append(name)
        else:
            fig.add_trace(
                go.Scatter(
                    x=[r.get("fault_alpha", 1.0)],
                    y=[r.get("fault_loss")],
                    mode="markers",
                    name=f"{name}: real fault ({r.get('n_flips', '?')} flips)",
                    marker={"symbol": "star", "size": 14, "color": color},
                )
            )
        if r.get("nonfinite"):
            direction.append(name)
    fig.update_layout(
        title="Loss along the sampled fault direction (α = 1 is the real fault)",
        xaxis_title="α (fraction of the fault perturbation w_faulty − w_deployed)",
        yaxis_title=LOSS_AXIS,
        legend_title="method",
    )
    if log_y:
        _log_axis(fig, [v for r in results for v in [*r["loss"], r.get("fault_loss")]])
    fig.add_vline(x=1.0, line_dash="dot")
    _note(fig, gaps, total, log_y)
    notes = []
    if at_fault:
        notes.append(f"Loss at the real fault is not finite: {', '.join(at_fault)}")
    if direction:
        notes.append(
            "The fault direction is not finite (catastrophic exponent flip): "
            + ", ".join(direction)
        )
    for k, text in enumerate(notes):
        fig.add_annotation(
            text=text,
            xref="paper",
            yref="paper",
            x=0.01,
            y=0.91 - 0.07 * k,
            xanchor="left",
            yanchor="top",
            showarrow=False,
            bgcolor="rgba(255,255,255,0.8)",
            font={"size": 11, "color": "#D55E00"},
        )
    return fig


def surfaces_figure(grids: Sequence[dict], *, log_z: bool = False, per_row: int = 2) -> go.Figure:
    """3D surfaces of several models in one figure: ``per_row`` per row, one shared colour bar.

    One figure (not one per column) keeps every surface readable on a narrow screen and shows
    a single colour bar for the single colour scale.
    """
    zmin, zmax = color_range(grids, log_z=log_z)
    n = max(len(grids), 1)
    cols = min(per_row, n)
    rows = math.ceil(n / cols)
    names = [_name(g, i) for i, g in enumerate(grids)]
    fig = make_subplots(
        rows=rows,
        cols=cols,
        specs=[[{"type": "scene"}] * cols for _ in range(rows)],
        subplot_titles=names,
        horizontal_spacing=0.02,
        vertical_spacing=0.06,
    )
    label = "log10 loss" if log_z else "loss"
    gaps = total = 0
    for i, g in enumerate(grids):
        fig.add_trace(
            go.Surface(
                x=list(g["alphas"]),
                y=list(g["betas"]),
                z=_z(g, log_z),
                cmin=zmin,
                cmax=zmax,
                colorscale=COLORSCALE,
                showscale=i == 0,
                colorbar={"title": label, "len": 0.8},
                name=names[i],
            ),
            row=i // cols + 1,
            col=i % cols + 1,
        )
        gaps += sum(_gaps(r, log_z) for r in g["loss"])
        total += sum(len(r) for r in g["loss"])
    scene = {
        "xaxis_title": "α",
        "yaxis_title": "β",
        "zaxis_title": label,
        "zaxis": {"range": [zmin, zmax]},
    }
    fig.update_scenes(**scene)
    fig.update_layout(
        title=f"{'log10 ' if log_z else ''}test loss surfaces (one colour scale for all models)",
        height=430 * rows,
        margin={"l": 0, "r": 0, "t": 70, "b": 10},
    )
    _note(fig, gaps, total, log_z)
    return fig
