"""1D loss-landscape figures (plotly): slices along random directions, linear interpolation
between two models, and slices along a sampled fault. Non-finite losses are drawn as gaps, with
a note. 2D contours and surfaces: ``sar_core.plots.landscape_2d``; shared axes, log ticks and
gap notes: ``sar_core.plots.landscape_axes``."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sar_core.plots.landscape_axes import (
    ALPHA_AXIS,
    LOSS_AXIS,
    _finite,
    _gaps,
    _log_axis,
    _name,
    _note,
)
from sar_core.plots.style import curve_colors


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
