"""Regressions from the reviewer's headless-browser walk (defects 4-13 of the UI review), each
tested as a user moves: one session, page to page, settings carried along."""

from __future__ import annotations

import json

from test_pages import ROOT, TIMEOUT, AppTest


def _app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()


def _go(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"app_pages/{name}.py").run()
    assert not at.exception, (name, [e.value for e in at.exception])
    return at


def test_bit_flips_rate_range_follows_the_format_and_a_picked_range_stays():
    """Defect 4: float32 kept int8's 1e-3..1e-1 (every model at 0-8 %, below chance)."""
    at = _go(_app(), "bit_flips")
    assert at.select_slider(key="ber_range").value == (1e-3, 1e-1)
    at.selectbox(key="format").set_value("float32").run()
    assert at.select_slider(key="ber_range").value == (1e-6, 1e-4)
    at.select_slider(key="ber_range").set_value((1e-5, 1e-3)).run()
    at.slider(key="points").set_value(3).run()  # another setting: the picked range stays
    assert at.select_slider(key="ber_range").value == (1e-5, 1e-3)
    _go(at, "robustness")  # the shared format carried its rates along
    assert at.selectbox(key="format").value == "float32"
    assert at.select_slider(key="ber").value == 1e-5
    assert at.select_slider(key="range").value == (1e-6, 5e-5)
    _go(at, "bit_flips")
    assert at.select_slider(key="ber_range").value == (1e-5, 1e-3)
    at.selectbox(key="format").set_value("int8").run()
    assert at.select_slider(key="ber_range").value == (1e-3, 1e-1)
    _go(at, "robustness")
    assert at.select_slider(key="ber").value == 1e-2
    at.selectbox(key="format").set_value("float16").run()  # Robustness' own picker too
    assert at.select_slider(key="ber").value == 1e-5
    assert not at.error, [e.value for e in at.error]


def test_a_format_chosen_on_robustness_moves_the_bit_flips_range():
    at = _go(_app(), "robustness")
    at.selectbox(key="format").set_value("bfloat16").run()
    assert at.select_slider(key="range").value == (1e-6, 5e-5)
    _go(at, "bit_flips")
    assert at.selectbox(key="format").value == "bfloat16"
    assert at.select_slider(key="ber_range").value == (1e-6, 1e-4)


def test_bit_flips_table_and_csv_use_one_unit_and_name_the_fault():
    """Defect 11: std 0.011 next to 45.15 %; the CSV mixed fractions with points and did not
    say which fault produced it."""
    from sar_core.data.io import rows_to_csv
    from ui.results import sweep_rows

    at = _go(_app(), "bit_flips")
    at.selectbox(key="format").set_value("float32").run()
    at.pills(key="bits_float32").set_value([23, 24, 25, 26]).run()
    at.slider(key="trials").set_value(3)
    at.slider(key="points").set_value(2).run()
    at.button(key="play").click().run()
    assert not at.exception and not at.error
    rec = at.session_state["job_flips"]
    rows = sweep_rows(rec)
    s = rec["levels"][0]["summaries"][1]
    r = rows[1]
    assert r["mean_accuracy_pct"] == 100 * s["mean_accuracy"] and r["std_pt"] == 100 * s["std"]
    assert r["vs_first_pt"] == 100 * s["paired_difference"]["mean"]
    assert (r["format"], r["bits"]) == ("float32", "23-26")
    assert r["fault"] == "float32 bits 23-26"
    header = rows_to_csv(rows).splitlines()[0].split(",")
    assert not {"mean_accuracy", "std", "deployed_accuracy"} & set(header)
    assert {"format", "bits", "mean_accuracy_pct", "std_pt", "vs_first_pt"} <= set(header)
    cfg = at.dataframe[0].proto.columns
    assert '"std (pt)"' in cfg and '"mean accuracy (%)"' in cfg


def test_a_shared_link_with_a_float_format_starts_at_its_scale():
    flips = AppTest.from_file(str(ROOT / "app_pages" / "bit_flips.py"), default_timeout=TIMEOUT)
    flips.query_params.update({"format": "float32", "bits": "23-30"})
    flips.run()
    assert flips.select_slider(key="ber_range").value == (1e-6, 1e-4)
    rob = AppTest.from_file(str(ROOT / "app_pages" / "robustness.py"), default_timeout=TIMEOUT)
    rob.query_params.update({"format": "float16"})
    rob.run()
    assert rob.select_slider(key="ber").value == 1e-5
    assert rob.select_slider(key="range").value == (1e-6, 5e-5)


def test_sharpness_scatter_names_points_it_cannot_place():
    """Defect 5: an infinite fault loss gave an empty chart with no word about why."""
    import math

    from sar_core.plots.robustness import sharpness_scatter

    pts = [
        {"label": "SGD", "method": "sgd", "x": math.inf, "y": 0.0},
        {"label": "SAR", "method": "sar", "x": 0.5, "y": 0.4, "lo": 0.3, "hi": 0.5},
    ]
    fig = sharpness_scatter(pts, x_title="fault")
    assert [t.name for t in fig.data] == ["SAR"]
    assert fig.layout.annotations[0].text == "not finite, not drawn: SGD"
    none = sharpness_scatter(pts[:1], x_title="fault")
    assert not none.data and "SGD" in none.layout.annotations[0].text


def test_robustness_at_a_destroying_fault_model_says_so():
    """Defect 5 as the reviewer met it: float32 bits 23-30 at BER 1e-2 carried from Bit flips.
    Every model at 0 %: a warning names it destroyed (below chance), the sharpness chart is
    replaced by a note, the table says 'not finite', not 'Infinity'."""
    from ui.robustness import SHARPNESS_HELP, SHORT

    at = _go(_app(), "bit_flips")
    at.multiselect(key="models").set_value(["demo · digits MLP · SGD", "demo · digits MLP · SAR"])
    at.selectbox(key="format").set_value("float32").run()
    at.pills(key="bits_float32").set_value(list(range(23, 31))).run()
    _go(at, "robustness")
    at.select_slider(key="ber").set_value(1e-2)
    at.select_slider(key="range").set_value((1e-2, 2e-2))
    at.slider(key="trials").set_value(2)
    at.slider(key="heat_trials").set_value(1)
    at.run()
    at.button(key="run_report").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    warnings = " ".join(w.value for w in at.warning)
    assert "every model is destroyed" in warnings and "10.0% on 10 classes" in warnings
    assert "float32's own scale is about 1e-5" in warnings
    assert "Nothing to plot: the expected loss increase under the fault model is not finite" in (
        warnings
    )
    assert len(at.get("plotly_chart")) == 3  # sweep, double-win bars, heatmap: no empty scatter
    sharp = next(d.value for d in at.dataframe if "λ_max" in d.value.columns)
    assert list(sharp["fault"]) == ["not finite", "not finite"]
    win = next(d.value for d in at.dataframe if "under faults" in d.value.columns)
    assert list(win.columns)[:5] == [
        "model",
        "method",
        "clean accuracy",
        "deployed",
        "under faults",
    ]
    cfg = next(d.proto.columns for d in at.dataframe if "λ_max" in d.value.columns)
    assert SHORT["avg_sharpness"] == "average" and "random" in SHARPNESS_HELP["avg_sharpness"]
    assert "so tiny values are expected" in cfg  # the column help explains the tiny values
    assert json.loads(cfg)["fault"]["type_config"]["type"] == "text"  # not drawn as numbers


def test_training_curves_keep_the_last_epoch_and_label_the_log_axis_sparsely():
    """Defect 9: right margin 0 clipped the last epoch's tick; the log loss axis labelled
    '1.0 0.90 0.80 0.70 ...' on top of each other."""
    from sar_core.plots.training import log_ticks, training_curves_figure

    hist = [{"epoch": e, "test_acc": 0.5 + e / 20, "train_loss": 1.0 - e / 20} for e in (1, 2, 5)]
    fig = training_curves_figure([{"label": "SGD", "method": "sgd", "history": hist}])
    assert fig.layout.margin.r >= 20
    loss = fig.data[1]
    assert "markers" in loss.mode  # plotly pads the x range around markers: epoch 5 is inside
    ticks = list(fig.layout.yaxis2.tickvals)
    assert ticks == log_ticks([h["train_loss"] for h in hist]) and 3 <= len(ticks) <= 6
    assert all(0.75 <= t <= 0.95 for t in ticks) and list(fig.layout.yaxis2.ticktext) == [
        f"{t:g}" for t in ticks
    ]
    assert log_ticks([2.3, 0.05]) == [0.05, 0.1, 0.2, 0.5, 1.0, 2.0]
    assert log_ticks([1.97, 1.25]) == [1.3, 1.5, 1.7, 1.9]
    assert log_ticks([0.5, 0.5]) == []


def test_numbers_in_prose_and_intervals_read_as_numbers():
    """Defect 13: 'about 1.36e+03 bits flip'; Home's CI '96–96%'."""
    from ui.layout import fmt_ci
    from ui.training import fmt_count

    assert (
        fmt_count(1361.2) == "1,361"
        and fmt_count(12.54) == "12.5"
        and fmt_count(0.0341) == "0.0341"
    )
    assert fmt_ci([0.9612, 0.9648], 0) == "96.1–96.5%"
    assert fmt_ci([0.90, 0.95], 0) == "90–95%" and fmt_ci([0.5, 0.5], 0) == "50–50%"
    at = AppTest.from_file(str(ROOT / "app_pages" / "train.py"), default_timeout=TIMEOUT).run()
    texts = " ".join(m.value for m in at.markdown)
    assert "bits flip" in texts and "e+0" not in texts


def test_both_uploaders_take_the_same_largest_file():
    """Defect 13: Train's uploader said 20MB per file, Your model's 64MB (both take .onnx)."""
    from sar_core import limits

    at = _go(_app(), "train")
    up = next(u for u in at.get("file_uploader") if u.proto.label.startswith("Upload a SAR Lab"))
    assert up.proto.max_upload_size_mb == limits.MAX_MODEL_BYTES // (1024 * 1024)
    assert "Your model" in up.proto.help and "20 MB" in up.proto.help


def test_the_rate_grid_of_every_rate_slider_rises_strictly():
    """It ended 0.2, 0.5, 0.1: a select slider whose last step went back to 0.1."""
    from ui.widgets import BER_GRID

    assert all(a < b for a, b in zip(BER_GRID, BER_GRID[1:]))
    assert BER_GRID[0] == 1e-7 and BER_GRID[-1] == 0.5
