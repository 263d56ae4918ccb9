"""Review of the lesson (headless browser walk): the verdict names the model that truly keeps
the most, the noise caution agrees with it, no '−0.0', readable log ticks up to 1e38, and a
32-bit flip figure that fits a narrow column."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sar_core.plots.bits import LAYOUT, NARROW, bit_cells_figure, numbered_positions
from sar_core.plots.landscape import fault_slice_figure
from sar_core.plots.landscape_axes import MAX_TICKS, log_ticks
from ui.lesson_text import noise_warning, pts, verdict_cell, verdict_sentence

NAMES = ["SGD", "SAR", "Weight clipping", "RandBET", "ASAM"]


def _model(lost: float, state: str | None, lo: float = 0.0, hi: float = 0.0) -> dict:
    """One model of a summarize_level result: mean accuracy lost (points, ≤ 0) and its paired
    comparison with the reference."""
    vs = None if state is None else {"state": state, "diff": {"mean": 0.0, "lo": lo, "hi": hi}}
    return {"trials": 20, "mean_changed": 0.85, "lost": {"mean": lost}, "vs_first": vs}


def _here(*models) -> dict:
    return {"no_flips": False, "models": list(models)}


# the reviewer's float32 bit 30 state: ASAM measurably better by a hair, RandBET's mean higher
REVIEWED = _here(
    _model(-27.6, None),
    _model(-27.4, "no measurable difference", -0.2, 0.6),
    _model(-27.6, "no measurable difference", -0.3, 0.3),
    _model(-26.0, "no measurable difference", -0.8, 3.9),
    _model(-27.0, "loses less", 0.0, 1.0),
)


def test_keeps_the_most_names_the_smallest_mean_loss_not_the_measured_one():
    text = verdict_sentence(NAMES, REVIEWED, fault_label="float32: bit 30 only", ber=5e-5)
    assert "**ASAM** loses measurably less" in text
    assert "ASAM** keeps the most" not in text
    assert "smallest mean loss is **RandBET**'s, 26.0" in text
    assert "includes 0: that lead is not measured" in text


def test_keeps_the_most_when_the_best_is_also_measurably_better():
    here = _here(
        _model(-27.6, None),
        _model(-20.0, "loses less", 5.0, 10.0),
        _model(-25.0, "loses less", 1.0, 4.0),
        _model(-27.0, "no measurable difference", -1.0, 2.0),
        _model(-27.5, "no measurable difference", -1.0, 1.0),
    )
    text = verdict_sentence(NAMES, here, fault_label="int8", ber=0.03)
    assert "**SAR** keeps the most, losing 20.0." in text
    assert "smallest mean loss" not in text


def test_the_noise_caution_leaves_room_for_the_paired_verdicts():
    nz = {"warn": True, "wiggle": 0.0, "halfwidth": 14.1, "spread": 1.6}
    warn = noise_warning(nz, 20)
    assert "read no order into these curves" in warn
    assert "Only the paired ▲ / ▼ verdicts" in warn  # the verdict's ▲ is not contradicted
    assert "own 95% interval here (±14.1 points)" in warn


@pytest.mark.parametrize(("x", "text"), [(-0.04, "0.0"), (0.04, "0.0"), (-0.0, "0.0"),
                                         (-0.06, "−0.1"), (2.5, "+2.5")])  # fmt: skip
def test_points_never_print_a_negative_zero(x, text):
    assert pts(x) == text


def test_a_verdict_cell_has_no_negative_zero():
    cell = verdict_cell("no measurable difference", {"mean": -0.01, "lo": -0.04, "hi": 2.5})
    assert cell == "· 0.0 [0.0, +2.5]"
    assert "−0.0" not in cell


def _fault(loss, fault_loss, method):
    n = len(loss)
    return {"alphas": [3 * i / (n - 1) - 1.5 for i in range(n)], "loss": loss,
            "fault_loss": fault_loss, "method": method, "n_flips": 1,
            "nonfinite": not math.isfinite(fault_loss)}  # fmt: skip


def test_a_loss_up_to_1e38_gets_a_bounded_number_of_ticks():
    """Bit 30 at the lowest rate: the loss climbs from 0.1 to ~3e37 (110 labels were piled)."""
    loss = [0.1 * 10 ** (38 * i / 40) for i in range(41)] + [math.inf] * 10
    fig = fault_slice_figure([_fault(loss, 3e37, "sgd"), _fault(loss[::-1], 2e37, "sar")])
    ticks = fig.layout.yaxis.tickvals
    assert fig.layout.yaxis.type == "log"
    assert 3 <= len(ticks) <= MAX_TICKS
    assert list(fig.layout.yaxis.ticktext) == [f"{v:.3g}" for v in ticks]


@pytest.mark.parametrize("hi", [10.0, 1e5, 1e20, 1e38, 1e300])
def test_log_ticks_are_bounded_at_any_range(hi):
    vals, _ = log_ticks([0.013, hi])
    assert 2 <= len(vals) <= MAX_TICKS


def _f32(x: float) -> str:
    return format(int(np.float32(x).view(np.uint32)), "032b")


def test_the_narrow_bit_figure_puts_labels_above_and_numbers_few_positions():
    rows = [("SGD before", _f32(-0.0435), "float32"), ("SGD after", _f32(-1.48e37), "float32"),
            ("Weight clipping before", _f32(-0.0425), "float32"),
            ("Weight clipping after", _f32(-1.45e37), "float32")]  # fmt: skip
    fig = bit_cells_figure(rows, flipped=[30], layout=NARROW)
    labels = [a for a in fig.layout.annotations if a.text in {r[0] for r in rows}]
    assert len(labels) == 4 and all(a.xanchor == "left" and a.x == 0 for a in labels)
    for r, a in enumerate(labels):  # above its row's cells, below the previous row
        assert -r * NARROW.row_pitch + 1 < a.y < -(r - 1) * NARROW.row_pitch
    assert fig.layout.xaxis.range[0] > -1  # no room left of the cells: they get the width
    assert fig.layout.legend.y <= 0 and fig.layout.legend.yanchor == "top"  # not on the title
    numbers = sorted(int(a.text) for a in fig.layout.annotations if a.text.isdigit())
    assert 30 in numbers and 0 in numbers and len(numbers) <= 8
    assert all(b - a >= NARROW.position_spacing for a, b in zip(numbers, numbers[1:]))
    x_of = {int(a.text): a.x for a in fig.layout.annotations if a.text.isdigit()}
    assert x_of[30] == pytest.approx(32 - 30 - 0.5)  # under its own cell (bit 0 on the right)


def test_the_default_bit_figure_still_numbers_every_position():
    fig = bit_cells_figure([("0.1", _f32(0.1), "float32")], layout=LAYOUT)
    assert sorted(int(a.text) for a in fig.layout.annotations if a.text.isdigit()) == list(
        range(32)
    )


def test_numbered_positions_prefer_the_flipped_bit_and_the_field_edges():
    assert numbered_positions("float32", 32, [30], 3) == [30, 23, 16, 8, 0]
    assert numbered_positions("int8", 8, [7], 1) == list(range(8))
