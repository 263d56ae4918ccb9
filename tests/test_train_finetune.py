"""Issue 19, "also on the Train page": an uploaded ONNX model fine-tuned from the Train page.

The model and data are uploaded through the Your model page's uploaders (as a user does), then
fine-tuned from the Train page. The before / after numbers the page shows are checked against
``python -m sar_core finetune --json`` run on the same rows (the page's documented split: a
seed-0 permutation, the first 20% held out) with the same method, epochs, fault model, trials
and seed.
"""

from __future__ import annotations

import json

import numpy as np
from conftest import ONNX_ROWS, ROOT, upload_on_your_model
from streamlit.testing.v1 import AppTest
from test_onnx import quantize

TIMEOUT = 240
ROWS = ONNX_ROWS


def _app_with_upload(raw: bytes, data: bytes) -> AppTest:
    at = upload_on_your_model(raw, data, TIMEOUT)
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    return at


def test_train_page_points_to_your_model_page_without_an_upload():
    at = AppTest.from_file(str(ROOT / "app_pages" / "train.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "Fine-tune your uploaded model" in [h.value for h in at.subheader]
    assert any("Your model" in c.value for c in at.caption)
    assert "train_ft_go" not in [b.key for b in at.button]


def test_train_page_finetunes_an_uploaded_model_like_the_cli(uploads, digits, tmp_path, capsys):
    from sar_core.cli import main

    raw, data = uploads
    at = _app_with_upload(raw, data)
    assert at.selectbox(key="train_ft_model").value == "your model · net"
    at.selectbox(key="train_ft_method").set_value("clip")
    at.slider(key="train_ft_epochs").set_value(1)
    at.slider(key="train_ft_trials").set_value(4)
    at.selectbox(key="train_ft_format").set_value("int8")
    at.select_slider(key="train_ft_ber").set_value(2e-2)
    at.button(key="train_ft_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value
    assert list(table[""]) == ["before", "after"]
    under = "accuracy under int8 BER 2e-2"
    assert under in table.columns
    assert "your model · net · Weight clipping 1 ep" in at.session_state["sar_registry"]

    # the library on the same rows and settings (CLI: --data = the page's training part)
    X, y = digits.X_test[:ROWS], digits.y_test[:ROWS]
    perm = np.random.default_rng(0).permutation(ROWS)
    val, tr = perm[: ROWS // 5], perm[ROWS // 5 :]
    (tmp_path / "net.onnx").write_bytes(raw)
    np.savez(tmp_path / "tr.npz", X=X[tr], y=y[tr])
    np.savez(tmp_path / "val.npz", X=X[val], y=y[val])
    capsys.readouterr()
    args = ["finetune", "--model", str(tmp_path / "net.onnx"), "--data", str(tmp_path / "tr.npz")]
    args += ["--val", str(tmp_path / "val.npz"), "--method", "clip", "--epochs", "1"]
    args += ["--format", "int8", "--ber", "0.02", "--trials", "4", "--seed", "0"]
    args += ["--out", str(tmp_path / "out.onnx"), "--json"]
    assert main(args) == 0
    ref = json.loads(capsys.readouterr().out)
    assert ref["val_rows"] == len(val) and ref["train_rows"] == len(tr)
    for i, when in enumerate(("before", "after")):
        assert table["clean accuracy"][i] == ref[when]["clean_accuracy"], when
        assert table[under][i] == ref[when]["mean_accuracy"], when
    assert (tmp_path / "out.onnx").read_bytes() == (
        at.session_state["sar_finetune_results"]["your model · net"][0]["raw"]
    )


def test_a_quantized_upload_with_a_float_fault_is_an_error_on_the_train_page(
    uploads, digits, tmp_path
):
    raw, data = uploads
    q = quantize(raw, digits.X_train[:200], (64,), tmp_path, per_channel=False)
    at = _app_with_upload(q, data)
    at.slider(key="train_ft_epochs").set_value(1)
    at.selectbox(key="train_ft_format").set_value("float32")
    at.button(key="train_ft_go").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "for a quantized model" in at.error[0].value
    assert list(at.session_state["sar_registry"]) == ["your model · net"]  # nothing trained
