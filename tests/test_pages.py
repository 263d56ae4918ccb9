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

PAGES = ["home", "train", "landscape", "bit_flips", "bit_anatomy", "robustness"]
TIMEOUT = 120


def page(name: str) -> AppTest:
    """A fresh session on one page script (run it with .run())."""
    return AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)


# (AppTest exposes keys of widgets only: tables are found by position)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at), errors(at)


def test_pages_never_import_torch():
    """Pages and app.py draw; the maths (and torch) lives in sar_core."""
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
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
    table = at.dataframe[0].value
    assert len(table) == 6 and {"clean", "under faults", "vs SGD"} <= set(table.columns)
    assert charts(at) == 1
    assert len(at.get("page_link")) == 5
    at.switch_page("pages/bit_anatomy.py").run()
    assert_ok(at)
    assert at.title[0].value == "Bit anatomy"


@pytest.mark.parametrize("name", PAGES[1:])
def test_page_renders_with_intro(name):
    at = page(name).run()
    assert_ok(at)
    assert at.title[0].value and len(at.markdown[0].value) > 100  # the teaching intro


def test_train_tiny_run_registers_models():
    at = page("train").run()
    at.number_input(key="epochs").set_value(2)
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
    at.segmented_control(key="mode").set_value("rho sweep").run()
    at.text_input(key="rhos").set_value("0.1, 1").run()
    at.checkbox(key="ref").uncheck()
    at.number_input(key="epochs").set_value(2)
    at.slider(key="trials").set_value(3)
    at.button(key="train_go").click().run()
    assert_ok(at)
    assert list(at.dataframe[0].value["run"]) == ["SAR ρ=0.1", "SAR ρ=1"]
    assert charts(at) == 2  # curves + accuracy vs rho


def test_train_bad_input_shows_error_and_recovers():
    at = page("train").run()
    at.number_input(key="epochs").set_value(1)
    at.slider(key="trials").set_value(2)
    at.multiselect(key="methods").set_value(["sgd"])
    at.text_input(key="tbits").set_value("40").run()
    at.button(key="train_go").click().run()
    assert not at.exception
    assert errors(at) == ["Invalid bits=[40]: position 40 is outside 0..7 for int8"]
    at.text_input(key="tbits").set_value("all")
    at.text_input(key="tber_exact").set_value("1.5").run()
    at.button(key="train_go").click().run()
    assert not at.exception and "Invalid ber=1.5" in errors(at)[0]
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
    at.button(key="play").click().run()
    assert not at.exception
    assert errors(at) == ["Invalid bits=[]: select at least one bit position in 0..7"]
    at.button(key="bits_int8_grp_msb").click().run()
    assert at.pills(key="bits_int8").value == [7]
    for bad in ("2", "0", "-1e-3"):
        at.text_input(key="ber_exact").set_value(bad).run()
        at.button(key="play").click().run()
        assert not at.exception
        assert errors(at) and errors(at)[0].startswith("Invalid ber="), bad
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
    assert at.segmented_control(key="format").value == "float32"
    assert sorted(at.pills(key="bits_float32").value) == list(range(23, 31))
    assert at.slider(key="trials").value == 4


def test_bit_anatomy_flip_formats_and_bad_value():
    at = page("bit_anatomy").run()
    assert_ok(at)
    assert [m.value for m in at.metric][:2] == ["0.1", "3.402824e+37"]  # bit 30 of 0.1
    assert charts(at) == 4
    at.segmented_control(key="format").set_value("int8").run()
    assert_ok(at)
    at.pills(key="flip_int8").set_value([0]).run()
    assert_ok(at)
    assert at.metric[1].value == "0.0992126"  # q = 127 -> 126: 0.1 * 126 / 127
    at.text_input(key="value").set_value("abc").run()
    assert not at.exception and errors(at)[0].startswith("Invalid value='abc'")
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
    win = at.dataframe[0].value
    assert len(win) == 2 and (win["parameters"] == 17226).all()
    assert (win["latency (ms, test set)"] > 0).all()
    assert len(at.dataframe[1].value) == 2  # sharpness table
    assert charts(at) == 4  # sweep, double win, heatmap, scatter
    at.selectbox(key="measure").set_value("lambda_max").run()  # display only: no recompute
    assert_ok(at)


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
    assert charts(at) == 5  # two surfaces instead of one contour figure
    at.text_input(key="fbits").set_value("9").run()
    at.button(key="compute").click().run()
    assert not at.exception and errors(at) == [
        "Invalid bits=[9]: position 9 is outside 0..7 for int8"
    ]
