"""2D loss-landscape figures (plotly): contours and 3D surfaces, every model on one colour scale.

``color_range`` fixes one (zmin, zmax) over all grids, so the same colour means the same loss in
every panel. Non-finite losses are drawn as gaps, with a note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sar_core.plots.landscape_axes import (
    ALPHA_AXIS,
    BETA_AXIS,
    COLORSCALE,
    _finite,
    _gaps,
    _name,
    _note,
)


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


def _surface(grid: dict, name: str, zmin: float, zmax: float, log_z: bool, **bar) -> go.Surface:
    """One grid's loss surface on the shared colour range [zmin, zmax]."""
    z = _z(grid, log_z)
    return go.Surface(
        x=list(grid["alphas"]), y=list(grid["betas"]), z=z, cmin=zmin, cmax=zmax,
        colorscale=COLORSCALE, name=name, **bar,
    )  # fmt: skip


SCENE_ASPECT = {"x": 1.0, "y": 1.0, "z": 0.8}  # one box for every panel


def _scene(label: str, zmin: float, zmax: float) -> dict:
    """The axes of a surface's 3D scene: z on the shared range, and one fixed box shape.

    Plotly's default aspectmode ("auto") sizes each scene's box from its own data, so one model
    of three was drawn with x = y = 1.51, z = 0.44 and looked flatter than it was; a manual
    aspect ratio draws the same loss difference at the same height in every panel."""
    return {"xaxis_title": "α", "yaxis_title": "β", "zaxis_title": label,
            "zaxis": {"range": [zmin, zmax], "nticks": 6},  # same ticks in every panel
            "aspectmode": "manual", "aspectratio": SCENE_ASPECT}  # fmt: skip


def surface_figure(grid: dict, zmin: float, zmax: float, log_z: bool = False) -> go.Figure:
    """3D surface of one grid on a given colour range (share it across models)."""
    label = "log10 loss" if log_z else "loss"
    fig = go.Figure(_surface(grid, _name(grid, 0), zmin, zmax, log_z, colorbar={"title": label}))
    fig.update_layout(title=f"{_name(grid, 0)}: loss surface", scene=_scene(label, zmin, zmax))
    n = sum(len(r) for r in grid["loss"])
    _note(fig, sum(_gaps(r, log_z) for r in grid["loss"]), n, log_z)
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
        bar = {"showscale": i == 0, "colorbar": {"title": label, "len": 0.8}}
        fig.add_trace(
            _surface(g, names[i], zmin, zmax, log_z, **bar), row=i // cols + 1, col=i % cols + 1
        )
        gaps += sum(_gaps(r, log_z) for r in g["loss"])
        total += sum(len(r) for r in g["loss"])
    fig.update_scenes(**_scene(label, zmin, zmax))
    fig.update_layout(
        title=f"{'log10 ' if log_z else ''}test loss surfaces (one colour scale for all models)",
        height=430 * rows,
        margin={"l": 0, "r": 0, "t": 70, "b": 10},
    )
    _note(fig, gaps, total, log_z)
    return fig
