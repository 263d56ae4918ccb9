"""Figures of the lesson's loss curves: log ticks read as the values they mark (plotly's minor
log labels read '2 ... 9' for 0.2 ... 0.9), and notes about gaps never sit on the axis title."""

from __future__ import annotations

import math

import pytest

from sar_core.plots.landscape import fault_slice_figure, slice_1d_figure
from sar_core.plots.landscape_axes import log_ticks


@pytest.mark.parametrize("values", [[0.03, 7.0], [0.5, 4.0], [5.0, 4000.0]])
def test_log_ticks_label_the_values_they_mark(values):
    vals, texts = log_ticks(values)
    assert len(vals) >= 2 and vals == sorted(vals)
    for v, t in zip(vals, texts):
        assert float(t) == pytest.approx(v, rel=1e-9)  # '0.2' marks 0.2, not '2'
        m = v / 10 ** math.floor(math.log10(v) + 1e-9)
        assert round(m, 6) in (1.0, 2.0, 5.0)
    # the ticks cover the data: one at or below the smallest value's 1-2-5 step, one above
    assert vals[0] <= min(values) * 2.5 and vals[-1] >= max(values) / 2.5


@pytest.mark.parametrize("values", [[0.21, 0.9], [1.2, 1.3], [1.32, 2.06]])
def test_log_ticks_of_a_narrow_range_are_evenly_spaced_round_values(values):
    """Under a decade, 1-2-5 leaves one label inside the range (only '2' over 1.32-2.06)."""
    vals, texts = log_ticks(values)
    inside = [v for v in vals if min(values) <= v <= max(values)]
    assert len(inside) >= 3 and len(vals) <= 10
    steps = {round(b - a, 9) for a, b in zip(vals, vals[1:])}
    assert len(steps) == 1  # one step
    for v, t in zip(vals, texts):
        assert float(t) == pytest.approx(v, rel=1e-9)
    assert vals[0] <= min(values) and vals[-1] >= max(values)


def test_log_ticks_of_nothing_finite_is_none():
    assert log_ticks([math.inf, float("nan"), 0.0, -1.0]) is None


def fault_result(loss, fault_loss, method="sgd"):
    n = len(loss)
    return {
        "alphas": [i / (n - 1) for i in range(n)],
        "loss": loss,
        "fault_loss": fault_loss,
        "method": method,
        "n_flips": 3,
        "nonfinite": not math.isfinite(fault_loss),
    }


def test_fault_chart_of_infinite_losses_says_so_inside_the_plot():
    fig = fault_slice_figure(
        [
            fault_result([0.3] + [math.inf] * 4, math.inf),
            fault_result([0.3] + [math.inf] * 4, math.inf, "sar"),
        ]
    )
    fig.update_layout(xaxis_title="α")
    notes = [a for a in fig.layout.annotations if a.xref == "paper" and a.yref == "paper"]
    assert notes and all(0.0 <= a.y <= 1.0 for a in notes)  # not below the plot, on the title
    text = " ".join(a.text for a in notes)
    assert "not finite" in text and "SGD" in text and "SAR" in text
    assert fig.layout.yaxis.type == "log"


def test_every_point_a_gap_is_named_in_the_middle():
    fig = slice_1d_figure([{"alphas": [0, 1], "loss": [math.inf, math.inf], "method": "sgd"}])
    mid = [a for a in fig.layout.annotations if a.x == 0.5 and a.y == 0.5]
    assert mid and "nothing to draw" in mid[0].text


def test_fault_chart_log_axis_uses_readable_ticks():
    fig = fault_slice_figure([fault_result([0.25, 0.4, 0.6, 0.9], 0.9)])
    assert list(fig.layout.yaxis.ticktext) == [f"{v:.3g}" for v in fig.layout.yaxis.tickvals]
    assert "0.5" in fig.layout.yaxis.ticktext


def test_two_models_of_one_method_get_two_colours():
    """Demo SGD and your own SGD drew in one colour; each method keeps its colour on its first
    curve, and a repeat gets a colour no method in the figure uses."""
    from sar_core.plots.style import METHOD_COLORS, curve_colors

    cols = curve_colors(["sgd", "sar", "sgd", "sgd"])
    assert cols[:2] == [METHOD_COLORS["sgd"], METHOD_COLORS["sar"]]
    assert len(set(cols)) == 4 and not set(cols[2:]) & set(METHOD_COLORS.values())
    curves = [
        {"alphas": [0, 1], "loss": [0.2, 0.3], "method": "sgd", "label": "demo"},
        {"alphas": [0, 1], "loss": [0.2, 0.4], "method": "sgd", "label": "mine"},
    ]
    fig = slice_1d_figure(curves)
    assert fig.data[0].line.color != fig.data[1].line.color
    fig = fault_slice_figure([fault_result([0.3, 0.5], 0.5), fault_result([0.3, 0.6], 0.6)])
    lines = [t.line.color for t in fig.data if t.mode == "lines"]
    assert len(set(lines)) == 2


def test_interpolation_between_two_sgd_models_marks_two_colours():
    from sar_core.plots.landscape import interpolation_figure

    res = {"t": [0.0, 0.5, 1.0], "loss": [0.2, 0.9, 0.3], "accuracy": [0.9, 0.5, 0.9]}
    res.update(loss_a=0.2, loss_b=0.3)
    fig = interpolation_figure(res, "demo SGD", "my SGD", method_a="sgd", method_b="sgd")
    marks = [t.marker.color for t in fig.data if t.mode == "markers"]
    assert len(marks) == 2 and marks[0] != marks[1]
