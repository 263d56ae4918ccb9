"""Training figures: per-epoch curves per run, and clean / faulty accuracy against SAR's rho."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sar_core.plots.style import method_color, method_label, rgba


def run_color(run: Mapping, index: int = 0) -> str:
    """Colour of a run: its own ``color`` when given, else its method's colour."""
    return run.get("color") or method_color(run.get("method", ""), index)


# mantissas per decade, coarse to fine: the first giving 3 ticks in the data's range is used
_MANTISSAS = (
    (1,),
    (1, 2, 5),
    (1, 2, 3, 5, 7),
    tuple(range(1, 10)),
    tuple(m / 10 for m in range(10, 100)),
    tuple(m / 100 for m in range(100, 1000)),
)


def log_ticks(values: Sequence[float], *, most: int = 6) -> list[float]:
    """At most ``most`` round tick values within the range of the positive finite ``values``
    (for a log axis; [] when there is no range to label)."""
    v = [x for x in values if x is not None and math.isfinite(x) and x > 0]
    if not v or min(v) == max(v):
        return []
    lo, hi = min(v), max(v)
    decades = range(math.floor(math.log10(lo)), math.floor(math.log10(hi)) + 1)
    for mantissas in _MANTISSAS:
        ticks = [
            float(f"{m * 10.0**d:.3g}")
            for d in decades
            for m in mantissas
            if lo <= m * 10.0**d <= hi
        ]
        if len(ticks) >= 3:
            return ticks[:: math.ceil(len(ticks) / most)]
    return []


def training_curves_figure(runs: Sequence[Mapping], *, title: str | None = None) -> go.Figure:
    """Test accuracy (%) and training loss per epoch, one line per run.

    ``runs``: dicts with ``label``, ``method``, ``history`` (records with epoch, test_acc,
    train_loss) and optionally ``color`` and ``dash``.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Test accuracy", "Training loss"),
        horizontal_spacing=0.1,
    )
    for i, run in enumerate(runs):
        hist = list(run.get("history", []))
        epochs = [h["epoch"] for h in hist]
        color = run_color(run, i)
        label = run.get("label") or method_label(run.get("method", ""))
        line = dict(color=color, width=2, dash=run.get("dash", "solid"))
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=[100 * h["test_acc"] for h in hist],
                mode="lines+markers" if len(hist) < 30 else "lines",
                name=label,
                legendgroup=label,
                line=line,
                marker=dict(size=5),
                hovertemplate="epoch %{x}<br>test accuracy %{y:.1f}%<extra>" + label + "</extra>",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=[h["train_loss"] for h in hist],
                mode="lines+markers" if len(hist) < 30 else "lines",  # markers pad the x range
                marker=dict(size=5),
                name=label,
                legendgroup=label,
                showlegend=False,
                line=line,
                hovertemplate="epoch %{x}<br>training loss %{y:.3g}<extra>" + label + "</extra>",
            ),
            row=1,
            col=2,
        )
    # epochs are whole numbers: one tick per epoch on a short run (not 1.2, 1.4, ...)
    last = max((h["epoch"] for r in runs for h in r.get("history", [])), default=0)
    ticks = {"dtick": 1} if last <= 12 else {}
    fig.update_xaxes(title_text="epoch", row=1, col=1, **ticks)
    fig.update_xaxes(title_text="epoch", row=1, col=2, **ticks)
    fig.update_yaxes(title_text="test accuracy (%)", row=1, col=1)
    ticks = log_ticks([h["train_loss"] for run in runs for h in run.get("history", [])])
    fig.update_yaxes(  # plotly's own ticks label a narrow log range densely (overlapping)
        title_text="cross-entropy loss (log scale)",
        type="log",
        tickformat=".2g",
        tickvals=ticks or None,
        ticktext=[f"{t:g}" for t in ticks] or None,
        row=1,
        col=2,
    )
    fig.update_layout(
        title=dict(text=title or "Training curves (same data, seed and initial weights)"),
        legend=dict(title=dict(text="run"), orientation="h", yanchor="top", y=-0.2, x=0),
        height=420,
        margin=dict(t=80, b=40, l=60, r=30),  # r > 0: the last epoch's tick is not clipped
    )
    return fig


def rho_sweep_figure(
    rows: Sequence[Mapping],
    *,
    fault_label: str,
    baseline: Mapping | None = None,
    title: str | None = None,
) -> go.Figure:
    """Clean and faulty accuracy (%) of SAR against rho (log x), faulty with a 95% CI band.

    ``rows``: dicts with ``rho``, ``clean_accuracy``, ``mean_accuracy``, ``ci95`` ([low, high]);
    ``baseline``: the same keys for a reference model (drawn as horizontal dotted lines).
    """
    rows = sorted(rows, key=lambda r: r["rho"])
    rhos = [r["rho"] for r in rows]
    sar = method_color("sar")
    fig = go.Figure()
    if rows:
        lo = [100 * r["ci95"][0] for r in rows]
        hi = [100 * r["ci95"][1] for r in rows]
        fig.add_trace(
            go.Scatter(
                x=rhos + rhos[::-1],
                y=hi + lo[::-1],
                fill="toself",
                mode="lines",  # the band is a polygon: no markers on its corners
                fillcolor=rgba(sar, 0.18),
                line=dict(width=0),
                hoverinfo="skip",
                name="SAR under faults: 95% CI",
                showlegend=True,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=rhos,
            y=[100 * r["mean_accuracy"] for r in rows],
            mode="lines+markers",
            name=f"SAR under faults ({fault_label})",
            line=dict(color=sar, width=3),
            marker=dict(size=8),
            hovertemplate="ρ=%{x:.3g}<br>accuracy under faults %{y:.1f}%<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=rhos,
            y=[100 * r["clean_accuracy"] for r in rows],
            mode="lines+markers",
            name="SAR clean",
            line=dict(color=sar, width=2, dash="dash"),
            marker=dict(size=7, symbol="square"),
            hovertemplate="ρ=%{x:.3g}<br>clean accuracy %{y:.1f}%<extra></extra>",
        )
    )
    if baseline is not None and rows:
        b_color = method_color(baseline.get("method", "sgd"))
        b_name = method_label(baseline.get("method", "sgd"))
        for key, dash, what in (
            ("mean_accuracy", "dot", "under faults"),
            ("clean_accuracy", "dashdot", "clean"),
        ):
            fig.add_trace(
                go.Scatter(
                    x=[min(rhos), max(rhos)],
                    y=[100 * baseline[key]] * 2,
                    mode="lines",
                    name=f"{b_name} {what} (reference)",
                    line=dict(color=b_color, width=2, dash=dash),
                    hovertemplate=f"{b_name} {what}: %{{y:.1f}}%<extra></extra>",
                )
            )
    fig.update_layout(
        title=dict(text=title or "SAR: accuracy against the neighbourhood radius ρ"),
        xaxis=dict(
            title=dict(text="ρ (neighbourhood radius, log scale)"),
            type="log",
            tickvals=rhos if 0 < len(rhos) <= 10 else None,
            ticktext=[f"{r:g}" for r in rhos] if 0 < len(rhos) <= 10 else None,
        ),
        yaxis=dict(title=dict(text="test accuracy (%)")),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
        height=440,
        margin=dict(t=60, b=40),
    )
    return fig
