"""The Your model page (issue 19) and the upload defect of issue 17, with AppTest.

Uploads go through the page's own uploaders; the numbers the page shows are checked against the
library run directly on the same model and data.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from test_onnx import export

TIMEOUT = 240


def page() -> AppTest:
    return AppTest.from_file(str(ROOT / "app_pages" / "your_model.py"), default_timeout=TIMEOUT)


@pytest.fixture(scope="module")
def uploads(trained, digits):
    buf = io.BytesIO()
    np.savez(buf, X=digits.X_test[:200], y=digits.y_test[:200])
    return export(trained["sgd"].model, (64,)), buf.getvalue()


def _upload(at: AppTest, model: tuple, data: tuple) -> AppTest:
    at.run()
    at.file_uploader(key="byom_model").set_value(model)
    at.file_uploader(key="byom_data").set_value(data)
    return at.run()


def test_page_asks_for_uploads_first():
    at = page().run()
    assert not at.exception
    assert at.title[0].value == "Your model" and len(at.markdown[0].value) > 100
    assert any("Upload a model and a data file" in i.value for i in at.info)


def test_upload_measure_finetune_download(uploads, digits):
    from sar_core.analysis.campaign import run_campaign
    from sar_core.data.onnx_import import load_onnx
    from sar_core.faults.model import FaultModel

    raw, data = uploads
    at = _upload(page(), ("net.onnx", raw, "application/octet-stream"), ("d.npz", data, "x"))
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("your model · net" in s.value for s in at.success)
    at.slider(key="trials").set_value(5)
    at.button(key="byom_measure").click().run()
    assert not at.exception and not at.error
    ref = run_campaign(
        load_onnx(raw), digits.X_test[:200], digits.y_test[:200],
        FaultModel(format="int8", ber=0.01), trials=5, seed=0,
    ).summary()  # fmt: skip
    shown = {m.label: m.value for m in at.metric}
    assert shown["Clean accuracy"] == f"{ref['clean_accuracy']:.1%}"
    assert shown["Under BER 1e-2"] == f"{ref['mean_accuracy']:.1%}"
    at.slider(key="byom_epochs").set_value(1)
    at.selectbox(key="byom_method").set_value("clip")
    at.button(key="byom_finetune").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value
    assert list(table[""]) == ["before", "after"]
    names = list(at.session_state["sar_registry"])
    assert names == ["your model · net", "your model · net · Weight clipping 1 ep"]
    result = at.session_state["sar_finetune_results"]["your model · net"][0]
    out = onnx.load_model_from_string(result["raw"])  # the download's bytes
    assert [n.op_type for n in out.graph.node] == [
        n.op_type for n in onnx.load_model_from_string(raw).graph.node
    ]
    assert result["same_graph"] is True


@pytest.mark.parametrize(
    "model_name, model_bytes, data_kind, needle",
    [
        ("junk.onnx", b"\x07" * 3000, "good", "not an ONNX protobuf"),
        ("net.onnx", None, "nan", "inputs must be finite"),
        ("net.onnx", None, "labels", "out of range"),
    ],
)
def test_bad_uploads_show_an_error_and_no_traceback(uploads, model_name, model_bytes, data_kind, needle):  # fmt: skip
    raw, data = uploads
    if data_kind != "good":
        X = np.zeros((20, 64), np.float32)
        y = np.zeros(20, int)
        if data_kind == "nan":
            X[3, 5] = np.nan
        else:
            y[:] = 12
        buf = io.BytesIO()
        np.savez(buf, X=X, y=y)
        data = buf.getvalue()
    at = _upload(page(), (model_name, model_bytes or raw, "x"), ("d.npz", data, "x"))
    assert not at.exception
    assert len(at.error) == 1 and needle in at.error[0].value and model_name in at.error[0].value
    assert "Traceback" not in at.error[0].value
    assert not at.session_state["sar_registry"] if "sar_registry" in at.session_state else True


def test_the_dashboard_never_loads_a_pt2(uploads):
    """A .pt2 is refused before a byte of it is read (torch.export.load can unpickle)."""
    from ui.registry import add_imported

    with pytest.raises(ValueError, match="imports .onnx models only"):
        add_imported(b"PK\x03\x04 anything", "m.pt2", uploads[1], "d.npz")


def test_uploaded_model_is_analysed_on_the_other_pages(uploads):
    raw, data = uploads
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/your_model.py")
    at = _upload(at, ("net.onnx", raw, "x"), ("d.npz", data, "x"))
    assert any("your model · net" in s.value for s in at.success)
    at.switch_page("app_pages/bit_flips.py").run()
    assert not at.exception
    assert "your model · net" in at.multiselect(key="models").options
    at.multiselect(key="models").set_value(["your model · net"])
    at.slider(key="trials").set_value(3)
    at.slider(key="points").set_value(2)
    at.button(key="play").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = next(d.value for d in at.dataframe if len(d.value) == 2)  # 2 levels x 1 model
    assert table.iloc[:, 0].notna().all()
    at.switch_page("app_pages/robustness.py").run()
    at.multiselect(key="models").set_value(["your model · net"])
    at.slider(key="trials").set_value(2)
    at.button(key="bits_int8_grp_all").click().run()  # (the picker came back empty here)
    at.button(key="run_report").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("your model · net" in list(d.value.get("model", [])) for d in at.dataframe)
    at.switch_page("app_pages/landscape.py").run()
    at.multiselect(key="models").set_value(["your model · net"])
    at.button(key="compute").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("your model · net" in list(d.value.get("model", [])) for d in at.dataframe)


class _Up:
    def __init__(self, file_id: str, name: str, raw: bytes) -> None:
        self.file_id, self.name, self._raw = file_id, name, raw

    def getvalue(self) -> bytes:
        return self._raw


def test_a_rejected_upload_is_named_in_its_own_error(uploads):
    """Issue 17: after a rejected upload the error named the previous file. An outcome is stored
    under the upload id, name and content together with its file's name, so the same upload id
    reused for another file (as a browser's uploader may do) gets its own outcome and name."""
    from streamlit.testing.v1 import AppTest as _  # noqa: F401 — streamlit's session in bare mode

    from ui.panels import _outcome

    calls = []

    def handle(raw: bytes):
        calls.append(raw)
        return ("error", f"bad {len(raw)}") if raw != b"good" else ("ok", "fine")

    assert _outcome(_Up("id1", "first.safetensors", b"good"), handle) == ("ok", "fine", "first.safetensors")  # fmt: skip
    kind, text, name = _outcome(_Up("id1", "second.safetensors", b"junk!"), handle)
    assert (kind, name) == ("error", "second.safetensors") and text == "bad 5"
    assert _outcome(_Up("id1", "second.safetensors", b"junk!"), handle)[2] == "second.safetensors"
    assert len(calls) == 2  # handled once per file


def test_train_page_names_the_rejected_file_after_a_good_one():
    at = AppTest.from_file(str(ROOT / "app_pages" / "train.py"), default_timeout=TIMEOUT).run()
    good = (ROOT / "assets" / "digits_mlp_sar.safetensors").read_bytes()
    at.file_uploader[0].set_value(("mine.safetensors", good, "application/octet-stream")).run()
    at.file_uploader[0].set_value(("broken.safetensors", b"nope", "application/x")).run()
    assert not at.exception
    assert len(at.error) == 1 and "broken.safetensors" in at.error[0].value
    assert "mine.safetensors" not in at.error[0].value


def test_quantized_upload_is_measured_on_its_stored_codes_and_float_formats_are_refused(
    uploads, digits, tmp_path
):
    from test_onnx import quantize

    from sar_core.analysis.campaign import run_campaign
    from sar_core.data.onnx_import import load_onnx
    from sar_core.faults.model import FaultModel

    raw, data = uploads
    qraw = quantize(raw, digits.X_train, (64,), tmp_path, per_channel=True)
    at = _upload(page(), ("q.onnx", qraw, "x"), ("d.npz", data, "x"))
    assert not at.error and "int8 QDQ" in at.dataframe[0].value["method"][0]
    at.slider(key="trials").set_value(4)
    at.button(key="byom_measure").click().run()
    assert not at.exception and not at.error
    ref = run_campaign(
        load_onnx(qraw), digits.X_test[:200], digits.y_test[:200],
        FaultModel(format="int8", ber=0.01), trials=4, seed=0,
    ).summary()  # fmt: skip
    assert {m.label: m.value for m in at.metric}["Under BER 1e-2"] == f"{ref['mean_accuracy']:.1%}"
    at.selectbox(key="byom_format").set_value("float32").run()
    at.button(key="byom_measure").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "for a quantized model" in at.error[0].value


def test_an_onnx_file_on_the_checkpoint_uploader_is_named_and_sent_to_your_model(uploads):
    at = AppTest.from_file(str(ROOT / "app_pages" / "train.py"), default_timeout=TIMEOUT).run()
    at.file_uploader[0].set_value(("mine.onnx", uploads[0], "application/octet-stream")).run()
    assert not at.exception
    assert len(at.error) == 1 and "mine.onnx" in at.error[0].value
    assert "Your model page" in at.error[0].value
    assert at.session_state["sar_registry"] == {}
