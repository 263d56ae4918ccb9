"""Training curves: whole epochs on the x axis."""

from __future__ import annotations

from sar_core.plots.training import training_curves_figure


def _runs(epochs: int) -> list[dict]:
    hist = [{"epoch": e, "test_acc": 0.8, "train_loss": 1.0 / e} for e in range(1, epochs + 1)]
    return [{"label": "SGD", "method": "sgd", "history": hist}]


def test_a_short_run_gets_one_tick_per_epoch_and_a_long_one_automatic_ticks():
    short = training_curves_figure(_runs(2)).layout
    assert short.xaxis.dtick == 1 and short.xaxis2.dtick == 1  # not 1, 1.2, 1.4, ... 2
    long = training_curves_figure(_runs(40)).layout
    assert long.xaxis.dtick is None and long.xaxis2.dtick is None
