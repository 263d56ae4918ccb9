"""Issue 19, "the lesson can use them": an uploaded ONNX model on the lesson (AppTest).

The ONNX export of the lesson's own SAR checkpoint is uploaded through the Your model page's
uploaders; the lesson's expert view offers it, and because it is the same network (same
weights, same fault sites) under the same paired faults, its row must equal the demo SAR row
and an independent campaign on the checkpoint. A network of another architecture and an int8
QDQ model (whose codes the lesson's float faults cannot hit) are not offered.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import ROOT
from streamlit.testing.v1 import AppTest
from test_lesson import pct, strip_rows, under_faults
from test_onnx import export, quantize

TIMEOUT = 240


@pytest.fixture(scope="module")
def sar_checkpoint():
    from sar_core.analysis.lesson_summary import lesson_paths
    from sar_core.data.io import load_checkpoint

    return load_checkpoint(lesson_paths(ROOT / "assets")[1])


@pytest.fixture(scope="module")
def data_npz(digits):
    buf = io.BytesIO()
    np.savez(buf, X=digits.X_test[:100], y=digits.y_test[:100])
    return buf.getvalue()


def _lesson_after_upload(raw: bytes, data: bytes, name: str = "net.onnx") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/your_model.py").run()
    at.file_uploader(key="byom_model").set_value((name, raw, "application/octet-stream"))
    at.file_uploader(key="byom_data").set_value(("d.npz", data, "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.switch_page("app_pages/lesson.py").run()
    at.toggle(key="expert").set_value(True).run()
    assert not at.exception
    return at


def test_an_uploaded_onnx_export_of_the_lesson_mlp_runs_on_the_lesson(
    sar_checkpoint, data_npz, digits
):
    from sar_core.analysis.campaign import run_campaign
    from sar_core.analysis.lesson_summary import FAULTS
    from sar_core.faults.model import FaultModel
    from ui.lesson import QUICK_TRIALS

    assert sar_checkpoint.method == "sar"
    at = _lesson_after_upload(export(sar_checkpoint.model, (64,)), data_npz)
    assert "your model · net" in at.selectbox(key="lesson_own").options
    at.selectbox(key="lesson_own").set_value("your model · net").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rows = strip_rows(at)
    assert len(rows) == 6 and rows[5][0].endswith("net (yours)")
    assert any("lesson's digits test rows" in c.value for c in at.caption)
    shown = under_faults(at)
    assert shown[5] == shown[1]  # the demo SAR: the same network under the same faults
    f = FAULTS["int8"]
    ref = run_campaign(
        sar_checkpoint.model,
        digits.X_test,
        digits.y_test,
        FaultModel(format=f.format, bits=f.bits, ber=0.03),
        trials=QUICK_TRIALS,
        seed=0,
    )
    assert shown[5] == pct(np.mean(ref.accuracy))


def test_other_architectures_and_quantized_uploads_are_not_offered(
    sar_checkpoint, data_npz, digits, tmp_path
):
    torch.manual_seed(0)
    other = export(torch.nn.Sequential(torch.nn.Linear(64, 10)), (64,))
    at = _lesson_after_upload(other, data_npz, "other.onnx")
    assert "lesson_own" not in [s.key for s in at.selectbox]  # nothing the lesson can measure
    raw = export(sar_checkpoint.model, (64,))
    q = quantize(raw, digits.X_train[:200], (64,), tmp_path, per_channel=False)
    at = _lesson_after_upload(q, data_npz, "q.onnx")
    assert "lesson_own" not in [s.key for s in at.selectbox]
