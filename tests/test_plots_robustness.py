"""Sweep figures: every curve its own colour (a demo SGD and your own SGD used to share one)."""

from __future__ import annotations

from sar_core.plots.robustness import sweep_figure
from sar_core.plots.style import METHOD_COLORS


def _curve(method: str, label: str) -> dict:
    return {"label": label, "method": method, "x": [1e-3, 1e-2], "mean": [0.9, 0.8],
            "lo": [0.85, 0.75], "hi": [0.95, 0.85]}  # fmt: skip


def test_two_curves_of_one_method_get_two_colours_and_methods_keep_theirs():
    fig = sweep_figure([_curve("sgd", "demo SGD"), _curve("sgd", "my SGD"), _curve("sar", "SAR")])
    lines = {t.name: t.line.color for t in fig.data if t.name in ("demo SGD", "my SGD", "SAR")}
    assert lines["demo SGD"] == METHOD_COLORS["sgd"] and lines["SAR"] == METHOD_COLORS["sar"]
    assert len(set(lines.values())) == 3


def test_suite_view_names_every_entry_of_the_bundled_suite():
    """Every method of the bundled suite gets a readable legend entry (no raw 'asam_tuned'), and
    SAR aimed at float16 is SAR's marker with its target, on the float16 setting."""
    from sar_core.experiments.suite_results import RESULTS_PATH, load_results, result_rows
    from sar_core.plots.robustness import suite_delta_figure

    res = load_results(RESULTS_PATH)
    for setting in ("int8", "float16"):
        names = {
            t.name for t in suite_delta_figure(result_rows(res, setting), setting=setting).data
        }
        assert "ASAM (tuned rho)" in names and not any("_" in n for n in names), names
    assert "SAR@float16" in names
