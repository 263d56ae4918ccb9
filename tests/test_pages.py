"""Page tests with streamlit.testing.v1.AppTest: every page renders, its key widgets exist, a tiny
run produces its chart and table, and bad input gives an st.error without breaking the page."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the page scripts import ui and sar_core from the repo root
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

PAGES = ["home", "lesson", "train", "landscape", "bit_flips", "bit_anatomy", "robustness"]
TIMEOUT = 120


def page(name: str) -> AppTest:
    """A fresh session on one page script (run it with .run())."""
    return AppTest.from_file(str(ROOT / "app_pages" / f"{name}.py"), default_timeout=TIMEOUT)


# (AppTest exposes keys of widgets only: tables are found by position)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def table_with(at: AppTest, column: str):
    """The first table (as a DataFrame) that has ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at), errors(at)


def test_pages_never_import_torch():
    """Pages and app.py draw; the maths (and torch) lives in sar_core."""
    for path in [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py"))]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "torch" or n.startswith("torch.") for n in names), path.name


def test_app_navigation_and_home():
    """app.py routes to Home: results are there without training; every page is linked."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert_ok(at)
    table = next(m.value for m in at.markdown if m.value.startswith("| model | clean"))
    header, rows = table.splitlines()[0], table.splitlines()[2:]
    assert len(rows) == 6 and all(c in header for c in ("clean", "under faults", "vs SGD"))
    assert charts(at) == 1
    links = [p.proto.page for p in at.get("page_link")]
    assert set(links) == set(PAGES[1:]) and links[0] == "lesson"  # the lesson comes first
    at.switch_page("app_pages/bit_anatomy.py").run()
    assert_ok(at)
    assert at.title[0].value == "Bit anatomy"


@pytest.mark.parametrize("name", PAGES[1:])
def test_page_renders_with_intro(name):
    at = page(name).run()
    assert_ok(at)
    assert at.title[0].value and len(at.markdown[0].value) > 100  # the teaching intro


def test_train_tiny_run_registers_models():
    at = page("train").run()
    at.text_input(key="epochs").set_value("2")
    at.slider(key="trials").set_value(3)
    at.multiselect(key="methods").set_value(["sgd", "sar"])
    at.button(key="train_go").click().run()
    assert_ok(at)
    table = at.dataframe[0].value
    assert list(table["run"]) == ["SGD", "SAR"] and list(table["epochs"]) == [2, 2]
    assert table.filter(like="under faults").notna().all().all()
    assert charts(at) == 1
    assert sorted(at.session_state["sar_registry"]) == [
        "my digits MLP · SAR",
        "my digits MLP · SGD",
    ]
    assert len(at.get("download_button")) == 2
    from sar_core.plots.style import method_label
    from sar_core.training.optim import SAR_DEFAULT_RHO

    mine_table = table_with(at, "parameters")
    rho = dict(zip(mine_table["method"], mine_table["rho"]))  # the radius each was trained with
    assert rho[method_label("sgd")] == "" and rho[method_label("sar")] == f"{SAR_DEFAULT_RHO:g}"
    at.run()  # an unrelated rerun shows the stored results, no retraining
    assert_ok(at)
    assert len(at.dataframe[0].value) == 2
    # what the download button serves uploads back into another session, bit-identical
    mine = at.session_state["sar_registry"]["my digits MLP · SAR"]
    other = page("train").run()
    other.file_uploader[0].set_value(("sar.safetensors", mine.loaded.data, "application/x"))
    other.run()
    assert_ok(other)
    back = other.session_state["sar_registry"]["upload · sar"]
    assert back.key == mine.key and back.method == "sar"
    assert all(
        (p == q).all()
        for p, q in zip(back.model.state_dict().values(), mine.model.state_dict().values())
    )


def test_train_rho_sweep_plots_against_rho():
    at = page("train").run()
    at.selectbox(key="mode").set_value("rho sweep").run()
    at.text_input(key="rhos").set_value("0.1, 1").run()
    at.checkbox(key="ref").uncheck()
    at.text_input(key="epochs").set_value("2")
    at.slider(key="trials").set_value(3)
    at.button(key="train_go").click().run()
    assert_ok(at)
    assert list(at.dataframe[0].value["run"]) == ["SAR ρ=0.1", "SAR ρ=1"]
    assert charts(at) == 2  # curves + accuracy vs rho


def test_train_bad_input_shows_error_and_recovers():
    """A bad setting is flagged as soon as it is typed; Train waits; clearing it trains."""
    at = page("train").run()
    at.text_input(key="epochs").set_value("1")
    at.slider(key="trials").set_value(2)
    at.multiselect(key="methods").set_value(["sgd"])
    at.text_input(key="tbits").set_value("40").run()
    assert not at.exception
    assert len(errors(at)) == 1 and errors(at)[0].startswith("Bits for int8 are numbered 0 to 7")
    assert "'40' is not one of them" in errors(at)[0]
    assert at.button(key="train_go").disabled
    at.text_input(key="tbits").set_value("all")
    at.text_input(key="tber_exact").set_value("1.5").run()
    assert not at.exception and "is a probability" in errors(at)[0]
    assert at.button(key="train_go").disabled
    at.text_input(key="tber_exact").set_value("").run()
    at.button(key="train_go").click().run()
    assert_ok(at)
    assert len(at.dataframe[0].value) == 1


def test_upload_invalid_then_valid_checkpoint():
    at = page("train").run()
    at.file_uploader[0].set_value(("bad.safetensors", b"not a checkpoint", "application/x"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "Invalid checkpoint" in at.error[0].value
    assert at.session_state["sar_registry"] == {}
    good = (ROOT / "assets" / "digits_mlp_sar.safetensors").read_bytes()
    at.file_uploader[0].set_value(("mine.safetensors", good, "application/octet-stream"))
    at.run()
    assert_ok(at)
    assert list(at.session_state["sar_registry"]) == ["upload · mine"]
    at.run()  # handled once: a rerun does not add it again
    assert list(at.session_state["sar_registry"]) == ["upload · mine"]


def test_upload_handler_reports_library_message():
    from ui.panels import handle_upload

    kind, text = handle_upload(b"\x00" * 16, "x.safetensors")
    assert kind == "error" and text.startswith("Invalid checkpoint")


def test_bit_flips_play_chart_table_csv():
    at = page("bit_flips").run()
    assert [b.label for b in at.button][:5] == ["all", "none", "sign", "MSB", "LSB"]
    assert at.pills(key="bits_int8").value == list(range(7, -1, -1)) or sorted(
        at.pills(key="bits_int8").value
    ) == list(range(8))
    at.slider(key="trials").set_value(3)
    at.slider(key="points").set_value(2)
    at.button(key="play").click().run()
    assert_ok(at)
    table = at.dataframe[0].value
    assert len(table) == 6  # 2 levels x 3 demo models
    assert charts(at) == 1 and len(at.get("download_button")) == 1


def test_bit_flips_bad_input_shows_error_and_recovers():
    at = page("bit_flips").run()
    at.slider(key="trials").set_value(2)
    at.slider(key="points").set_value(1)
    at.button(key="bits_int8_grp_none").click().run()
    assert at.pills(key="bits_int8").value == []
    assert not at.exception
    assert errors(at) == ["Choose at least one bit (0 to 7) that may flip."]
    assert at.button(key="play").disabled
    at.button(key="bits_int8_grp_msb").click().run()
    assert at.pills(key="bits_int8").value == [7]
    for bad in ("2", "0", "-1e-3"):
        at.text_input(key="ber_exact").set_value(bad).run()
        assert not at.exception
        assert errors(at) and "is a probability: above 0 and at most 1" in errors(at)[0], bad
        assert at.button(key="play").disabled
    at.text_input(key="ber_exact").set_value("0.02").run()
    at.button(key="play").click().run()
    assert_ok(at)
    assert len(at.dataframe[0].value) == 3


def test_bit_flips_settings_come_from_the_url():
    at = page("bit_flips")
    at.query_params.update({"seed": "7", "format": "float32", "bits": "23-30", "trials": "4"})
    at.run()
    assert_ok(at)
    assert at.number_input(key="seed").value == 7
    assert at.selectbox(key="format").value == "float32"
    assert sorted(at.pills(key="bits_float32").value) == list(range(23, 31))
    assert at.slider(key="trials").value == 4


def test_bit_anatomy_flip_formats_and_bad_value():
    at = page("bit_anatomy").run()
    assert_ok(at)
    assert [m.value for m in at.metric][:2] == ["0.1", "3.402824e+37"]  # bit 30 of 0.1
    assert charts(at) == 4
    at.selectbox(key="aformat").set_value("int8").run()
    assert_ok(at)
    at.pills(key="flip_int8").set_value([0]).run()
    assert_ok(at)
    assert at.metric[1].value == "0.0992126"  # q = 127 -> 126: 0.1 * 126 / 127
    at.text_input(key="value").set_value("abc").run()
    assert not at.exception and errors(at)[0].startswith("'abc' is not a number")
    at.text_input(key="value").set_value("-2.5").run()
    assert_ok(at)
    at.radio(key="src").set_value("weight").run()
    assert_ok(at)
    assert charts(at) == 4


def test_robustness_tiny_report():
    at = page("robustness").run()
    at.multiselect(key="models").set_value(["demo · digits MLP · SGD", "demo · digits MLP · SAR"])
    at.slider(key="trials").set_value(3)
    at.slider(key="heat_trials").set_value(1)
    at.select_slider(key="range").set_value((1e-2, 2e-2))
    at.button(key="run_report").click().run()
    assert_ok(at)
    win = table_with(at, "parameters")
    assert len(win) == 2 and (win["parameters"] == 17226).all()
    assert (win["latency (ms, test set)"] > 0).all()
    assert len(table_with(at, "λ_max")) == 2  # sharpness table
    rec = at.session_state["job_report"]
    d = rec["table"][1]["paired_difference"]  # SAR vs SGD: the one verdict rule, as a glyph
    lo, hi = d["ci95"]
    want = "▲" if lo > 0 else "▼" if hi < 0 else "·"
    assert list(win["verdict"]) == ["", want]
    assert charts(at) == 4  # sweep, double win, heatmap, scatter (the suite view is closed)
    at.selectbox(key="measure").set_value("lambda_max").run()  # display only: no recompute
    assert_ok(at)


def test_robustness_attack_column_equals_the_library_attack(demo, digits):
    """The report's attack flips are sar_core.analysis.attack's own result on the same model and seed."""
    from sar_core.analysis.attack import progressive_bit_search

    at = page("robustness").run()
    at.multiselect(key="models").set_value(["demo · digits MLP · SGD", "demo · digits MLP · SAR"])
    at.slider(key="trials").set_value(3)
    at.slider(key="heat_trials").set_value(1)
    at.select_slider(key="range").set_value((1e-2, 2e-2))
    at.checkbox(key="sharp").uncheck()
    at.checkbox(key="attack").check()
    at.button(key="run_report").click().run()
    assert_ok(at)
    win = table_with(at, "attack flips (int8)")
    data = digits  # the demo checkpoints' split
    for name, flips in zip(("sgd", "sar"), win["attack flips (int8)"]):
        r = progressive_bit_search(
            demo[f"digits_mlp_{name}"].model,
            data.X_train,
            data.y_train,
            data.X_test,
            data.y_test,
            max_flips=1000,
            seed=0,
        )
        assert r.reached and flips == r.flips
    assert win["training time vs SGD"].iloc[0] == 1.0  # SGD against itself
    assert (win["deployed"] > 0.9).all()


def test_robustness_offers_a_self_contained_html_report():
    """The report's sweep downloads as one offline HTML file holding the page's own numbers."""
    from sar_core.experiments.study.summary import rows_from_sweep
    from ui.defenses import report_html

    at = page("robustness").run()
    at.multiselect(key="models").set_value(["demo · digits MLP · SGD", "demo · digits MLP · SAR"])
    at.slider(key="trials").set_value(3)
    at.slider(key="heat_trials").set_value(1)
    at.select_slider(key="range").set_value((1e-2, 2e-2))
    at.checkbox(key="sharp").uncheck()
    at.button(key="run_report").click().run()
    assert_ok(at)
    assert [b.proto.label for b in at.get("download_button")] == ["Download HTML report"]
    rec = at.session_state["job_report"]
    html = report_html(rec)
    assert html.startswith("<!DOCTYPE html>") or "<html" in html[:200]
    import re

    assert not re.search(r"<script[^>]*\bsrc=", html)  # plotly.js inlined: opens offline
    assert "Plotly" in html
    rows = rows_from_sweep(
        rec["levels"], models=["a", "b"], methods=rec["methods"], fault=rec["scope"]
    )
    means = [lv["summaries"][i]["mean_accuracy"] for lv in rec["levels"] for i in range(2)]
    assert [r["mean_accuracy"] for r in rows] == means  # the page's numbers, unchanged
    assert "digits MLP · SAR" in html


def test_robustness_mixed_architectures_is_an_error():
    at = page("robustness").run()
    at.multiselect(key="models").set_value(["demo · digits MLP · SGD", "demo · digits CNN · SGD"])
    at.button(key="run_report").click().run()
    assert not at.exception
    assert "differ in architecture" in errors(at)[0]


def test_landscape_tiny_run():
    at = page("landscape").run()
    at.multiselect(key="models").set_value(["demo · digits MLP · SGD", "demo · digits MLP · SAR"])
    at.slider(key="steps1").set_value(5)
    at.slider(key="steps2").set_value(5)
    at.button(key="compute").click().run()
    assert_ok(at)
    assert charts(at) == 4  # 1D, contours, interpolation, fault slice
    assert len(at.dataframe[0].value) == 2  # sharpness table
    at.segmented_control(key="view").set_value("surface").run()
    assert_ok(at)
    assert charts(at) == 4  # the surfaces share one figure (and one colour bar)
    at.text_input(key="fbits").set_value("9").run()
    assert not at.exception and len(errors(at)) == 1
    assert errors(at)[0].startswith("Bits for int8 are numbered 0 to 7")
    assert at.button(key="compute").disabled
    assert charts(at) == 4  # the previous results stay


# --- regressions: bad text inputs, per-tensor int8 scale, one-trial CIs ---------------------


@pytest.mark.parametrize(
    ("name", "key", "go"),
    [
        ("robustness", "ber", "run_report"),
        ("landscape", "ber", "compute"),
        ("train", "tber", "train_go"),
    ],
)
def test_exact_ber_that_is_not_one_number_is_an_error(name, key, go):
    """'abc' / '0.1, 0.2' / '2' / '0' / '-1' in the exact-BER box: flagged at once in plain words,
    no exception, the run button waits, and clearing the box brings the page back."""
    at = page(name).run()
    for bad, msg in [
        ("abc", "'abc' is not a number"),
        ("0.1, 0.2", "The bit error rate needs one number"),
        ("2", "The bit error rate is a probability"),
        ("0", "The bit error rate is a probability"),
        ("-1", "The bit error rate is a probability"),
    ]:
        at.text_input(key=f"{key}_exact").set_value(bad).run()
        assert not at.exception, [e.value for e in at.exception]
        assert len(errors(at)) == 1 and errors(at)[0].startswith(msg), errors(at)
        assert at.button(key=go).disabled
        assert f"job_{name}" not in at.session_state
        at.run()  # and again on an unrelated rerun
        assert not at.exception and len(errors(at)) == 1
    at.text_input(key=f"{key}_exact").set_value("").run()
    assert_ok(at)
    assert not at.button(key=go).disabled


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("inf", "'inf' is not a whole number"),
        ("2.7", "'2.7' is not a whole number"),
        ("64, abc", "'abc' is not a whole number"),
        ("0", "from 1 to 1024; 0 is not"),
    ],
)
def test_train_widths_must_be_integers(text, shown):
    at = page("train").run()
    at.text_input(key="epochs").set_value("1")
    at.slider(key="trials").set_value(2)
    at.multiselect(key="methods").set_value(["sgd"])
    at.text_input(key="widths").set_value(text).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(errors(at)) == 1 and shown in errors(at)[0], errors(at)
    assert at.button(key="train_go").disabled
    assert at.session_state["sar_registry"] == {}  # nothing trained
    at.text_input(key="widths").set_value("16").run()
    at.button(key="train_go").click().run()
    assert_ok(at)
    mine = at.session_state["sar_registry"]["my digits MLP · SGD"]
    assert mine.checkpoint.spec.widths == (16,)


def test_bit_anatomy_int8_scale_needs_one_number():
    at = page("bit_anatomy").run()
    at.selectbox(key="aformat").set_value("int8").run()
    for bad, msg in (
        (",", "The int8 scale: type at least one number"),
        ("1e-3, 2e-3", "The int8 scale needs one positive number"),
        (" ; ", "The int8 scale: type at least one number"),
        ("-1", "The int8 scale must be a number from 1e-30"),
    ):
        at.text_input(key="scale").set_value(bad).run()
        assert not at.exception, [e.value for e in at.exception]
        assert len(errors(at)) == 1 and errors(at)[0].startswith(msg), errors(at)
        at.run()
        assert not at.exception
    at.text_input(key="scale").set_value("0.01").run()
    assert_ok(at)
    assert float(at.metric[0].value) == pytest.approx(0.1, rel=1e-6)  # q = 10 at s = 0.01


def test_delta_per_bit_uses_one_int8_scale_per_tensor():
    """Flipping bit b < 7 of an int8 code moves q by exactly 2^b, so |dw| = 2^b * s of that
    tensor: the pooled median is a median of per-tensor scales, not of one shared scale."""
    import numpy as np

    from sar_core.formats.bits import delta_per_bit

    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, size=(5, 7)).astype(np.float32)  # 35 weights, small scale
    a[0, 0] = 1.27
    b = rng.uniform(-10, 10, size=(3, 4)).astype(np.float32)  # 12 weights, 10x the scale
    b[0, 0] = -12.7
    sa, sb = np.float32(1.27) / np.float32(127), np.float32(12.7) / np.float32(127)
    got = list(delta_per_bit([a, b], "int8"))
    for bit in range(7):
        ref = np.median(np.r_[np.full(a.size, 2**bit * sa), np.full(b.size, 2**bit * sb)])
        assert got[bit] == pytest.approx(float(ref), rel=1e-6), bit
    # float formats do not depend on a scale: pooled = concatenated
    both = np.concatenate([a.ravel(), b.ravel()])
    assert got != list(delta_per_bit(both, "int8"))  # the old shared-scale answer differs
    assert list(delta_per_bit([a, b], "float16")) == pytest.approx(
        list(delta_per_bit(both, "float16"))
    )


def test_weight_delta_per_bit_of_a_demo_model_matches_per_tensor_scales():
    import numpy as np

    from ui.compute_weights import weight_delta_per_bit, weight_names
    from ui.registry import demo_entries

    entry = demo_entries()[0]
    names = weight_names(entry)
    named = dict(entry.model.named_parameters())
    scales = [
        np.full(named[n].numel(), np.abs(named[n].detach().numpy()).max() / np.float32(127))
        for n in names
    ]
    ref = float(np.median(np.concatenate(scales)))  # bit 0: |dq| = 1, so |dw| = s
    got = weight_delta_per_bit(entry, "int8", names)[0]
    assert got == pytest.approx(ref, rel=1e-5)  # float32 rounding of q * s
    shared = max(float(s.max()) for s in scales)  # the old answer: one scale for every tensor
    assert got < 0.9 * shared


def test_ci_helpers_show_na_for_undefined_intervals():
    from ui.layout import fmt_ci
    from ui.training import results_rows
    from ui.widgets import finite_or_none

    nan = float("nan")
    assert fmt_ci([0.912, 0.94]) == "91.2–94.0%" and fmt_ci([0.912, 0.94], 0) == "91–94%"
    assert fmt_ci([nan, nan]) == fmt_ci(None) == fmt_ci([0.5, float("inf")]) == "n/a"
    assert finite_or_none(nan) is None and finite_or_none(0.25) == 0.25
    rec = {
        "mode": "compare",
        "fault_label": "int8, BER 1e-2",
        "runs": [{"label": "SGD", "model": "m", "history": [{"test_acc": 0.9, "seconds": 1.0}]}],
        "faulty": [{"mean_accuracy": 0.5, "ci95": [nan, nan], "paired_difference": {"mean": 0}}],
    }
    assert results_rows(rec)[0]["95% CI"] == "n/a"


def test_one_trial_shows_na_not_nan():
    """One trial: summarize gives a NaN interval; tables say n/a / leave the CI empty."""
    at = page("train").run()
    at.text_input(key="epochs").set_value("1")
    at.slider(key="trials").set_value(1)
    at.multiselect(key="methods").set_value(["sgd"])
    at.button(key="train_go").click().run()
    assert_ok(at)
    assert list(at.dataframe[0].value["95% CI"]) == ["n/a"]
    at.run()
    assert_ok(at)

    flips = page("bit_flips").run()
    flips.slider(key="trials").set_value(1)
    flips.slider(key="points").set_value(2)
    flips.button(key="play").click().run()
    assert_ok(flips)
    table = flips.dataframe[0].value
    # undefined with one trial: empty text cells (a null cell shows "None" in the grid)
    assert (table[["ci95_low_pct", "ci95_high_pct", "std_pt"]] == "").all().all()
    assert table["mean_accuracy_pct"].notna().all() and charts(flips) == 1

    rob = page("robustness").run()
    rob.multiselect(key="models").set_value(["demo · digits MLP · SGD", "demo · digits MLP · SAR"])
    rob.slider(key="trials").set_value(1)
    rob.slider(key="heat_trials").set_value(1)
    rob.checkbox(key="sharp").uncheck()
    rob.select_slider(key="range").set_value((1e-2, 2e-2))
    rob.button(key="run_report").click().run()
    assert_ok(rob)
    assert list(table_with(rob, "95% CI")["95% CI"]) == ["n/a", "n/a"]


# --- fault kinds, stuck bits, what SAR derives, computed captions ---------------------------


def test_bit_flips_stuck_at_faults_on_activations():
    at = page("bit_flips").run()
    at.slider(key="trials").set_value(2)
    at.slider(key="points").set_value(1)
    at.selectbox(key="kind").set_value("stuck-at-1")
    at.selectbox(key="target").set_value("activations")
    at.button(key="play").click().run()
    assert_ok(at)
    assert len(at.dataframe[0].value) == 3
    assert "stuck-at-1" in at.session_state["job_flips"]["fault_label"]
    assert at.session_state["job_flips"]["fault"]["target"] == "activations"


def test_bit_flips_stuck_at_table_counts_changed_bits_and_points_vs_first(demo, digits):
    """Stuck-at-0 hits on bits already 0 change nothing: the table shows changed bits (a
    direct paired campaign's mean), and the difference from the first model in points."""
    import numpy as np

    from sar_core.analysis.campaign import compare
    from sar_core.faults.model import FaultModel

    at = page("bit_flips").run()
    at.slider(key="trials").set_value(3)
    at.selectbox(key="kind").set_value("stuck-at-0")
    at.text_input(key="ber_exact").set_value("0.02").run()
    at.button(key="play").click().run()
    assert_ok(at)
    table = at.dataframe[0].value
    rec = at.session_state["job_flips"]
    fm = FaultModel.from_dict(rec["fault"]).with_rate(ber=0.02)
    models = [demo[f"digits_mlp_{m}"].model for m in rec["methods"]]
    res = compare(models, digits.X_test, digits.y_test, fm, trials=3, seed=0)["results"]
    assert "mean_hits" not in table.columns and len(table) == len(res)
    for (_, row), r in zip(table.iterrows(), res):
        assert row["mean_changed_bits"] == np.mean(r.changed) < np.mean(r.flips)
        diff = 100 * (np.mean(r.accuracy) - np.mean(res[0].accuracy))
        assert row["vs_first_pt"] == pytest.approx(diff, abs=1e-9)


def test_bit_flips_asymmetric_rates_sweep():
    """1→0 at each level, 0→1 at ratio × level: the table rows follow the levels, and the
    fault model of the last level is what a direct paired campaign would use."""
    at = page("bit_flips").run()
    at.slider(key="trials").set_value(2)
    at.radio(key="rate").set_value("asym").run()
    at.text_input(key="ber_exact").set_value("0.01, 0.05").run()
    at.number_input(key="ratio").set_value(0.2).run()
    at.button(key="play").click().run()
    assert_ok(at)
    table = at.dataframe[0].value
    assert sorted(set(table["level"])) == ["1e-2", "5e-2"] and len(table) == 6  # as written
    assert at.session_state["job_flips"]["ratio"] == 0.2
    at.number_input(key="ratio").set_value(500.0).run()  # 0→1 = 25: not a probability
    assert not at.exception and at.button(key="play").disabled
    assert "The 0→1 / 1→0 ratio must be a number from 0 to 20" in errors(at)[0]


def test_bit_anatomy_stuck_bits_change_only_bits_that_differ():
    """0.1 in float32 is 0x3DCCCCCD: bit 30 holds 0, bit 29 holds 1 (numpy bit view)."""
    import numpy as np

    code = int(np.float32(0.1).view(np.uint32))
    assert (code >> 30) & 1 == 0 and (code >> 29) & 1 == 1
    at = page("bit_anatomy").run()
    at.pills(key="flip_float32").set_value([30])
    at.radio(key="akind").set_value("stuck-at-0").run()
    assert_ok(at)
    assert at.metric[1].value == "0.1"  # bit 30 already holds 0: nothing changes
    at.radio(key="akind").set_value("stuck-at-1").run()
    want = np.array([code | (1 << 30)], dtype=np.uint32).view(np.float32)[0]
    assert at.metric[1].value == f"{float(want):.7g}"
    at.pills(key="flip_float32").set_value([29]).run()
    assert at.metric[1].value == "0.1"  # bit 29 already holds 1
    at.radio(key="akind").set_value("stuck-at-0").run()
    want = np.array([code & ~(1 << 29)], dtype=np.uint32).view(np.float32)[0]
    assert at.metric[1].value == f"{float(want):.7g}"


def test_train_shows_what_sar_derives_before_training():
    at = page("train").run()
    assert_ok(at)
    texts = " ".join(m.value for m in at.markdown)
    assert "bits flip" in texts and "ρ × √E[n]" in texts
    from sar_core.data.datasets import load_dataset
    from sar_core.faults.model import FaultModel
    from sar_core.training.fault_geometry import describe_sar
    from sar_core.training.loop import spec_for

    desc = describe_sar(
        spec_for(load_dataset("digits", seed=0), "mlp"),
        FaultModel(format="int8", ber=0.01),
        rho=at.number_input(key="rho").value,
        seed=0,
    )
    from ui.training import fmt_count

    assert f"{fmt_count(desc['expected_flips'])} bits flip" in texts
    table = table_with(at, "parameter")
    assert list(table["parameter"]) == [r["name"] for r in desc["layers"] if r["eligible"]]


def test_train_bit_error_rate_follows_the_target_format():
    """Choosing float16 moves the BER from int8's 1e-2 (every float16 model at chance) to 1e-5;
    a rate the user then picks stays; back to int8, 1e-2 again."""
    at = page("train").run()
    assert at.select_slider(key="tber").value == 0.01
    at.selectbox(key="tformat").set_value("float16").run()
    assert_ok(at)
    assert at.select_slider(key="tber").value == 1e-5
    at.select_slider(key="tber").set_value(1e-4).run()
    at.text_input(key="epochs").set_value("3").run()  # another setting: the rate stays
    assert at.select_slider(key="tber").value == 1e-4
    at.selectbox(key="tformat").set_value("int8").run()
    assert at.select_slider(key="tber").value == 0.01
    texts = " ".join(m.value for m in at.markdown)
    assert "bits flip" in texts


def test_sar_description_names_the_uncovered_float_sites():
    """A float target with weights of |w| >= 2: the text gives describe_sar's count of sites left
    out of T; an int8 target has none and says nothing about them."""
    import torch
    from torch import nn

    from sar_core.faults.model import FaultModel
    from sar_core.training.fault_geometry import describe_sar
    from ui.training import describe_text

    model = nn.Sequential(nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[2.5, 0.1, -0.3], [0.2, -0.05, 0.01]]))
    d16 = describe_sar(model, FaultModel(format="float16", ber=1e-4))
    assert d16["uncovered_sites"] > 0
    assert f"{d16['uncovered_sites']:,} of the {d16['covered_sites']:,} covered sites" in (
        describe_text(d16)
    )
    d8 = describe_sar(model, FaultModel(format="int8", ber=1e-2))
    assert d8["uncovered_sites"] == 0 and "covered sites" not in describe_text(d8)


def test_interpolation_caption_follows_the_curve():
    """The caption under the interpolation says 'barrier' only when the curve has one."""
    from ui.results import barrier_caption

    flat = {"t": [0, 0.5, 1], "loss": [0.2, 0.15, 0.1], "loss_a": 0.2, "loss_b": 0.1}
    bump = {"t": [-0.5, 0, 0.5, 1], "loss": [9.0, 0.2, 0.4, 0.1], "loss_a": 0.2, "loss_b": 0.1}
    assert barrier_caption(flat).startswith("No barrier")
    assert barrier_caption(bump).startswith(
        "A barrier: between the two models the loss rises to 0.4 (t = 0.50)"
    )


def _suite_file(tmp_path) -> Path:
    """A small results file in the suite's format, built with sar_core.experiments.suite's own helpers."""
    import json

    import numpy as np

    from sar_core.experiments.suite_stats import _delta, summarize_suite

    rng = np.random.default_rng(0)
    tasks = []
    for task, shift in (("digits_mlp", 0.04), ("wine_mlp", -0.03)):
        base = [rng.uniform(0.6, 0.9, 40) for _ in range(2)]  # 2 seeds x 40 trials
        # the two seeds' deltas differ a little (4.0 and 4.1 points): a 2-seed interval narrow
        # enough to decide (identical seed deltas give none: intervals.t_interval, kind "seed")
        accs = {"sgd": base, "sar": [b + shift * (1 + 0.025 * i) for i, b in enumerate(base)]}
        methods = {}
        for m in accs:
            row = {"clean": 96.0, "clean_delta": 0.0 if m == "sgd" else -0.2}
            for s in ("int8", "float16"):
                row[s] = {"robust": float(100 * np.mean(accs[m])), **_delta(accs, "sgd", m)}
            methods[m] = row
        tgt = {"ber": 0.01, "sgd_loss_pt": 6.0}
        tasks.append(
            {
                "task": task,
                "n_test": 100,
                "targets": {"int8": tgt, "float16": tgt},
                "selected": {"sar": {"rho": 0.015}},
                "methods": methods,
            }
        )
    path = tmp_path / "suite.json"
    path.write_text(json.dumps({"tasks": tasks, "summary": summarize_suite(tasks)}))
    return path


def test_robustness_report_shows_the_suite_across_tasks(tmp_path, monkeypatch):
    monkeypatch.setenv("SAR_SUITE_RESULTS", str(_suite_file(tmp_path)))
    at = page("robustness").run()
    assert_ok(at)
    assert not any("minus SGD" in c.proto.spec for c in at.get("plotly_chart"))  # closed: not drawn
    at.session_state["suite_open"] = True  # the user opens the cross-task view
    at.run()
    summary = table_with(at, "wins")
    (sar,) = summary.to_dict("records")  # SGD is the reference, not a row
    assert (sar["method"], sar["wins"], sar["losses"], sar["ties"]) == ("SAR", 1, 1, 0)
    fig = next(c for c in at.get("plotly_chart"))
    assert "minus SGD" in fig.proto.spec
    monkeypatch.setenv("SAR_SUITE_RESULTS", str(tmp_path / "missing.json"))
    at = page("robustness").run()
    at.session_state["suite_open"] = True
    at.run()
    assert_ok(at)
    assert any("python benchmarks/suite.py" in i.value for i in at.info)


def test_a_burst_that_cannot_fit_is_explained_at_once():
    at = page("bit_flips").run()
    at.button(key="bits_int8_grp_msb").click().run()  # only bit 7
    at.number_input(key="burst").set_value(2).run()
    assert not at.exception and at.button(key="play").disabled
    assert errors(at) == [
        "A burst of 2 bits must fit in the 8-bit word: starting at bit 7 it would run past "
        "bit 7. Choose lower bits or a shorter burst."
    ]
    at.button(key="bits_int8_grp_all").click().run()  # bursts may start at bits 0..6
    assert_ok(at)


def test_result_sentences_follow_the_numbers():
    """The landscape's fault sentence and the report's latency note state what was measured."""
    from ui.results import fault_rise_text, latency_text

    res = [
        {"method": "sgd", "label": "digits MLP", "fault_loss": 0.30, "deployed_loss": 0.12},
        {"method": "sar", "label": "digits MLP", "fault_loss": 0.20, "deployed_loss": 0.12},
    ]
    assert fault_rise_text(res) == (
        "Loss rise at α = 1 — SGD: +0.18, SAR: +0.08. Least for SAR: the flattest along this fault."
    )
    res[1]["fault_loss"] = 0.40
    assert fault_rise_text(res).endswith("Least for SGD: the flattest along this fault.")
    assert latency_text([0.16, 0.15, 0.17]).startswith("the models are within 13% of each other")
    assert latency_text([0.1, 0.2]).startswith("the slowest model took 100% longer")
