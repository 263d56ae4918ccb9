"""Robustness figures: accuracy under faults against BER / flip count, bit x layer sensitivity,
sharpness against robustness, and the clean-vs-faulty "double win" bars."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from sar_core.plots.bits import add_field_strip
from sar_core.plots.style import curve_colors, curve_percents, method_color, method_label, rgba


def level_text(v: float) -> str:
    """Compact tick text for a fault level: 0.003, 0.05, 4.7e-4, 20."""
    v = float(v)
    if v >= 1 and v == int(v):
        return str(int(v))
    if v >= 1e-3:
        return f"{v:.2g}"
    m, e = f"{v:.1e}".split("e")
    return f"{m.rstrip('0').rstrip('.')}e{int(e)}"


def curve_label(curve: Mapping) -> str:
    """Legend name of a curve: its ``label`` or the method's display name."""
    return curve.get("label") or method_label(curve.get("method", ""))


def _curve_traces(c: Mapping, color: str, clean_line: bool) -> list[go.Scatter]:
    """One model's traces: the 95% CI band (or error bars for one level), the mean line, and a
    dotted line at the accuracy without faults."""
    label = curve_label(c)
    x = list(c["x"])
    out = []
    if len(x) > 1:
        out.append(
            go.Scatter(
                x=x + x[::-1],
                y=[100 * v for v in c["hi"]] + [100 * v for v in c["lo"]][::-1],
                fill="toself",
                mode="lines",  # the band is a polygon: no markers on its corners
                fillcolor=rgba(color, 0.18),
                line=dict(width=0),
                hoverinfo="skip",
                legendgroup=label,
                showlegend=False,
                name=f"{label} 95% CI",
            )
        )
    bars = dict(
        type="data",
        symmetric=False,
        array=[100 * (h - m) for h, m in zip(c["hi"], c["mean"])],
        arrayminus=[100 * (m - lo) for lo, m in zip(c["lo"], c["mean"])],
        color=color,
    )
    out.append(
        go.Scatter(
            x=x,
            y=[100 * v for v in c["mean"]],
            error_y=bars if len(x) == 1 else None,
            mode="lines+markers",
            name=label,
            legendgroup=label,
            line=dict(color=color, width=3, dash=c.get("dash", "solid")),
            marker=dict(size=7),
            hovertemplate="%{x:.3g}<br>mean accuracy %{y:.1f}%<extra>" + label + "</extra>",
        )
    )
    if clean_line and c.get("clean") is not None and x:
        out.append(
            go.Scatter(
                x=[min(x), max(x)],
                y=[100 * c["clean"]] * 2,
                mode="lines",
                line=dict(color=color, width=1, dash="dot"),
                name=f"{label} without faults",
                legendgroup=label,
                showlegend=False,
                hovertemplate=f"{label} without faults: %{{y:.1f}}%<extra></extra>",
            )
        )
    return out


def sweep_figure(
    curves: Sequence[Mapping],
    *,
    x_title: str = "bit error rate (log scale)",
    log_x: bool = True,
    title: str | None = None,
    clean_lines: bool = True,
    zoom: bool = False,
    mark_x: float | None = None,
) -> go.Figure:
    """Mean accuracy (%) with a 95% CI band per model against the fault level.

    ``curves``: dicts with ``label``, ``method``, ``x`` (levels), ``mean``, ``lo``, ``hi``
    (accuracies in [0, 1]) and optionally ``clean`` (accuracy without faults, a dotted line)
    and ``dash`` (line style). ``zoom``: the y axis spans the data (CI bounds and clean lines)
    with a small margin instead of starting at 0; ``mark_x``: a dotted vertical line there.
    """
    fig = go.Figure()
    # two curves of one method (your own SGD next to the demo SGD) never share a colour
    colors = curve_colors([c.get("method", "") for c in curves])
    for c, color in zip(curves, colors):
        for trace in _curve_traces(c, color, clean_lines):
            fig.add_trace(trace)
    levels = sorted({float(v) for c in curves for v in c["x"]})
    xaxis = dict(title=dict(text=x_title), type="log" if log_x else "linear")
    if 0 < len(levels) <= 10:  # label exactly the measured levels
        xaxis.update(tickvals=levels, ticktext=[level_text(v) for v in levels])
    fig.update_layout(
        title=dict(text=title or "Accuracy under bit flips (mean and 95% CI, paired trials)"),
        xaxis=xaxis,
        yaxis=dict(
            title=dict(text="test accuracy (%)"),
            rangemode="normal" if zoom else "tozero",
            range=_zoom(curves) if zoom else None,
        ),
        legend=dict(title=dict(text="model"), orientation="h", yanchor="top", y=-0.18, x=0),
        height=440,
        margin=dict(t=60, b=40),
    )
    if mark_x is not None:
        fig.add_vline(x=mark_x, line=dict(color="#555555", width=1, dash="dot"))
    return fig


def _zoom(curves: Sequence[Mapping]) -> list[float] | None:
    """A y range (%) that spans every finite mean, CI bound and clean line, plus 8% margin."""
    vals = curve_percents(curves)
    vals += [100 * float(c["clean"]) for c in curves if c.get("clean") is not None]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    pad = max(0.08 * (hi - lo), 0.5)
    return [max(lo - pad, 0.0), min(hi + pad, 100.0)]


def sensitivity_heatmap(
    accuracy: Sequence[Sequence[float]],
    *,
    bits: Sequence[int],
    layers: Sequence[str],
    fmt: str,
    reference: float | None = None,
    title: str | None = None,
) -> go.Figure:
    """Per-layer x per-bit heatmap of the accuracy drop (points) when only that site class flips.

    ``accuracy[l][b]``: mean accuracy in [0, 1] for layer ``layers[l]`` and bit ``bits[b]``;
    ``reference``: accuracy without faults (the drop is reference - accuracy; default: max).
    """
    acc = np.asarray(accuracy, dtype=np.float64) * 100
    ref = 100 * reference if reference is not None else float(np.nanmax(acc))
    drop = ref - acc
    fig = go.Figure(
        go.Heatmap(
            z=drop,
            x=list(bits),
            y=list(layers),
            colorscale="Reds",
            zmin=0,
            colorbar=dict(title=dict(text="accuracy<br>drop (pt)")),
            text=np.round(acc, 1),
            hovertemplate=(
                "layer %{y}, bit %{x}<br>accuracy %{text}%<br>drop %{z:.1f} pt<extra></extra>"
            ),
            xgap=1,
            ygap=1,
        )
    )
    add_field_strip(fig, fmt)
    fig.update_layout(
        title=dict(text=title or f"Which bit of which layer hurts? ({fmt})", y=0.97),
        xaxis=dict(
            title=dict(text="bit position (0 = least significant; strip: field)"),
            dtick=1 if len(bits) <= 16 else 2,
            range=[-0.5, max(bits) + 0.5] if bits else None,
        ),
        yaxis=dict(title=dict(text="layer"), autorange="reversed"),  # model order, top down
        height=180 + 45 * len(layers),
        margin=dict(t=80),
    )
    return fig


def sharpness_scatter(
    points: Sequence[Mapping],
    *,
    x_title: str,
    y_title: str = "accuracy under faults (%)",
    log_x: bool = False,
    title: str | None = None,
) -> go.Figure:
    """One marker per model: sharpness (x) against accuracy under faults (y, with 95% CI bars).

    ``points``: dicts with ``label``, ``method``, ``x``, ``y`` and optionally ``lo``, ``hi``
    (accuracies in [0, 1]). A point whose x or y is missing or not finite (an infinite fault
    loss) cannot be placed: it is named in a note on the figure instead of vanishing.
    """
    fig = go.Figure()
    skipped = [p for p in points if not (_finite(p.get("x")) and _finite(p.get("y")))]
    points = [p for p in points if p not in skipped]
    # no text next to the markers (labels of close points overlap): one legend entry per point,
    # the method's colour, and a marker shape per point within a method
    symbols = ["circle", "square", "diamond", "triangle-up", "cross", "star"]
    seen: dict[str, int] = {}
    for i, p in enumerate(points):
        method = p.get("method", "")
        label = p.get("label") or method_label(method)
        k = seen[method] = seen.get(method, -1) + 1
        err = None
        if p.get("lo") is not None and p.get("hi") is not None:
            err = dict(
                type="data",
                symmetric=False,
                array=[100 * (p["hi"] - p["y"])],
                arrayminus=[100 * (p["y"] - p["lo"])],
            )
        fig.add_trace(
            go.Scatter(
                x=[p["x"]],
                y=[100 * p["y"]],
                error_y=err,
                mode="markers",
                marker=dict(
                    size=13,
                    color=method_color(method, i),
                    symbol=symbols[k % len(symbols)],
                    line=dict(width=1, color="white"),
                ),
                name=label,
                hovertemplate=(
                    f"{label}<br>{x_title}: %{{x:.3g}}<br>accuracy %{{y:.1f}}%<extra></extra>"
                ),
            )
        )
    if skipped:
        names = ", ".join(p.get("label") or method_label(p.get("method", "")) for p in skipped)
        fig.add_annotation(
            text=f"not finite, not drawn: {names}",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5 if not points else 1.0,
            yanchor="middle" if not points else "bottom",
            showarrow=False,
            font=dict(size=13),
        )
    fig.update_layout(
        title=dict(text=title or "Flatter minimum, more robust? (one point per model)"),
        xaxis=dict(title=dict(text=x_title), type="log" if log_x else "linear"),
        yaxis=dict(title=dict(text=y_title)),
        legend=dict(title=dict(text="model"), orientation="h", yanchor="top", y=-0.2, x=0),
        height=460,
    )
    return fig


def _finite(v) -> bool:
    """A number that is not None, NaN or ±inf."""
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def double_win_figure(rows: Sequence[Mapping], *, fault_label: str) -> go.Figure:
    """Clean accuracy and accuracy under faults per model, as grouped bars (%).

    ``rows``: dicts with ``label``, ``method``, ``clean_accuracy``, ``mean_accuracy``, ``ci95``.
    """
    labels = [r["label"] for r in rows]
    colors = [method_color(r.get("method", ""), i) for i, r in enumerate(rows)]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=labels,
            y=[100 * r["clean_accuracy"] for r in rows],
            name="clean",
            marker=dict(color=[rgba(c, 0.35) for c in colors], line=dict(color=colors, width=2)),
            hovertemplate="%{x}<br>clean %{y:.1f}%<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=labels,
            y=[100 * r["mean_accuracy"] for r in rows],
            error_y=dict(
                type="data",
                symmetric=False,
                array=[100 * (r["ci95"][1] - r["mean_accuracy"]) for r in rows],
                arrayminus=[100 * (r["mean_accuracy"] - r["ci95"][0]) for r in rows],
            ),
            name=f"under faults ({fault_label})",
            marker=dict(color=colors),
            hovertemplate="%{x}<br>under faults %{y:.1f}%<extra></extra>",
        )
    )
    # zoomed to the data: on a 0-100% axis, 95.5 and 96.7 look the same
    vals = [100 * r["clean_accuracy"] for r in rows] + [
        100 * v for r in rows for v in (r["mean_accuracy"], r["ci95"][0]) if np.isfinite(v)
    ]
    lo = max(0.0, min(vals) - max(2.0, 0.1 * (max(vals) - min(vals)))) if vals else 0.0
    fig.update_layout(
        title=dict(text="Clean accuracy and accuracy under faults"),
        barmode="group",
        xaxis=dict(title=dict(text="model")),
        yaxis=dict(
            title=dict(text="test accuracy (%, axis zoomed)" if lo > 0 else "test accuracy (%)"),
            range=[lo, 100.5],
        ),
        legend=dict(orientation="h", yanchor="top", y=-0.25, x=0),
        height=420,
    )
    return fig


def suite_delta_figure(rows: Sequence[Mapping], *, setting: str) -> go.Figure:
    """Accuracy under faults minus SGD's (points, 95% CI) per task and method: the suite view.

    ``rows``: sar_core.experiments.suite_results.result_rows dicts (task, method, delta, ci95_low,
    ci95_high, verdict, ber); SGD rows (delta 0 by definition) are left out.
    """
    fig = go.Figure()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "sgd"))
    n = max(len(methods), 1)
    for k, m in enumerate(methods):
        mine = [r for r in rows if r["method"] == m]
        base = m.split("@")[0]
        offset = (k - (n - 1) / 2) * 0.8 / n  # methods side by side within a task's row
        fig.add_trace(
            go.Scatter(
                x=[r["delta"] for r in mine],
                y=[tasks.index(r["task"]) + offset for r in mine],
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=[r["ci95_high"] - r["delta"] for r in mine],
                    arrayminus=[r["delta"] - r["ci95_low"] for r in mine],
                    color=method_color(base, k),
                ),
                mode="markers",
                marker=dict(
                    size=9,
                    color=method_color(base, k),
                    symbol="circle" if m == base else "diamond",  # SAR@float16: SAR's colour
                    line=dict(width=1, color="white"),
                ),
                name=method_label(base) + (m[len(base) :] if m != base else ""),
                customdata=[[r["task"], r["verdict"], r["ber"]] for r in mine],
                hovertemplate="%{customdata[0]} (BER %{customdata[2]:.3g})<br>Δ vs SGD "
                "%{x:+.1f} pt<br>%{customdata[1]}<extra>" + method_label(base) + "</extra>",
            )
        )
    fig.add_vline(x=0, line=dict(color="#555555", width=1, dash="dot"))
    fig.update_layout(
        title=dict(text=f"Accuracy under {setting} faults minus SGD's (held-out seeds, 95% CI)"),
        xaxis=dict(title=dict(text="difference from SGD (percentage points)"), zeroline=False),
        yaxis=dict(
            tickvals=list(range(len(tasks))),
            ticktext=tasks,
            autorange="reversed",
            title=dict(text="task"),
        ),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
        height=160 + 55 * len(tasks),
        margin=dict(t=60),
    )
    return fig
