"""A user's walk with the MNIST-1D 1-D CNN, offered on the Train page: train SGD and SAR aimed
at float16 (the target whose geometry collapsed this model before the 2 max|W| rule), then take
both models through Bit flips, the Robustness report and the Loss landscape in one session."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

TIMEOUT = 240
NAMES = ["my mnist1d 1-D CNN · SGD", "my mnist1d 1-D CNN · SAR"]


def ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_train_a_1d_cnn_on_mnist1d_and_analyse_it_on_every_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/train.py").run()
    at.selectbox(key="dataset").set_value("mnist1d").run()
    assert at.selectbox(key="arch").options == ["MLP", "1-D CNN"]
    at.selectbox(key="arch").set_value("cnn1d").run()
    at.text_input(key="epochs").set_value("2")
    at.slider(key="trials").set_value(3)
    at.multiselect(key="methods").set_value(["sgd", "sar"])
    at.selectbox(key="tformat").set_value("float16").run()
    ok(at)
    at.button(key="train_go").click().run()
    ok(at)
    registry = at.session_state["sar_registry"]
    assert sorted(registry) == sorted(NAMES)
    assert {registry[n].loaded.checkpoint.spec.widths for n in NAMES} == {(16, 32)}
    sar = registry[NAMES[1]].loaded.checkpoint.meta["config"]["fault_model"]
    assert sar["format"] == "float16"

    at.switch_page("app_pages/bit_flips.py").run()
    at.multiselect(key="models").set_value(NAMES)
    at.slider(key="trials").set_value(3)
    at.slider(key="points").set_value(2)
    at.button(key="play").click().run()
    ok(at)
    table = next(d.value for d in at.dataframe if "mean_accuracy_pct" in d.value.columns)
    assert len(table) == 4 and set(table["model"]) == set(NAMES)  # 2 levels x 2 models
    assert table["mean_accuracy_pct"].notna().all()

    at.switch_page("app_pages/robustness.py").run()
    at.multiselect(key="models").set_value(NAMES)
    at.slider(key="trials").set_value(2)
    at.button(key="run_report").click().run()
    ok(at)
    assert any(set(NAMES) <= set(d.value.get("model", [])) for d in at.dataframe)

    at.switch_page("app_pages/landscape.py").run()
    at.multiselect(key="models").set_value(NAMES)
    at.button(key="compute").click().run()
    ok(at)
    assert any(set(NAMES) <= set(d.value.get("model", [])) for d in at.dataframe)
