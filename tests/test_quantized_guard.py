"""An imported int8 (QDQ) model on the Bit flips and Robustness pages: a float format would flip
float bits of its stored int8 codes (a fault that cannot happen in its memory), so it is refused
with a message naming the model, before any campaign; int8 runs on its stored codes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from test_onnx import export, quantize

TIMEOUT = 240
NAME = "your model · q"


@pytest.fixture(scope="module")
def session(trained, digits, tmp_path_factory):
    """One session with a quantized ONNX model and its data uploaded on the Your model page."""
    raw = export(trained["sgd"].model, (64,))
    qraw = quantize(raw, digits.X_train, (64,), tmp_path_factory.mktemp("q"), per_channel=True)
    buf = io.BytesIO()
    np.savez(buf, X=digits.X_test[:120], y=digits.y_test[:120])
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/your_model.py").run()
    at.file_uploader(key="byom_model").set_value(("q.onnx", qraw, "x"))
    at.file_uploader(key="byom_data").set_value(("d.npz", buf.getvalue(), "x"))
    at.run()
    assert not at.exception and any(NAME in s.value for s in at.success)
    return at


@pytest.mark.parametrize("name, run", [("bit_flips", "play"), ("robustness", "run_report")])
def test_a_float_format_on_a_quantized_model_is_refused_on_the_page(session, name, run):
    at = session
    at.switch_page(f"app_pages/{name}.py").run()
    at.multiselect(key="models").set_value([NAME])
    at.selectbox(key="format").set_value("float16").run()
    assert not at.exception
    refusals = [e.value for e in at.error if "for a quantized model" in e.value]
    assert len(refusals) == 1 and refusals[0].startswith(f"{NAME}: Invalid format='float16'")
    assert at.button(key=run).proto.disabled is True  # no campaign can start
    at.selectbox(key="format").set_value("int8").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.button(key=run).proto.disabled is False
    if name == "bit_flips":  # and int8 runs on its stored codes
        at.slider(key="trials").set_value(2)
        at.slider(key="points").set_value(1)
        at.button(key="play").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert any(NAME in str(d.value.to_dict()) for d in at.dataframe)


def test_every_campaign_entry_point_refuses_it(session):
    """The guard is in ui.compute itself (check_faults), so no page can bypass it."""
    from sar_core.faults.model import FaultModel
    from ui import compute, compute_landscape

    entry = session.session_state["sar_registry"][NAME]
    assert getattr(entry.model, "quantized", None)  # really the QDQ import
    fm = FaultModel(format="float32", ber=0.01)
    calls = [
        lambda: compute.sweep_iter([entry], fm, bers=[0.01], trials=2, seed=0),
        lambda: compute.asym_sweep_iter([entry], fm, [0.01], ratio=0.1, trials=2, seed=0),
        lambda: compute.paired_campaign([entry], fm, trials=2, seed=0),
        lambda: compute.double_win_table([entry], fm, trials=2, seed=0),
        lambda: compute.bit_layer_grid(entry, fm, layers=["x"], trials=1, seed=0),
        lambda: compute_landscape.sharpness_of(entry, fm),
        lambda: compute_landscape.fault_slice(entry, fm, seed=0, steps=3, span=1.0),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=f"^{NAME}: Invalid format='float32' for a quantized"):
            call()
