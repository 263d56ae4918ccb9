"""UI review, an uploaded ONNX model through Your model and Train (defects 6, 7, 10, 12): the
download's name, the clean accuracy in every model table, the rate slider's reach and format, and
fine-tuning in words (method names, not keys)."""

from __future__ import annotations

from conftest import ONNX_ROWS, upload_on_your_model
from streamlit.testing.v1 import AppTest

TIMEOUT = 240
ROWS = ONNX_ROWS


def _texts(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def test_uploaded_model_walk_your_model_then_train(uploads, digits):
    from sar_core.analysis.campaign import run_campaign
    from sar_core.data.onnx_import import load_onnx
    from sar_core.faults.model import FaultModel

    raw, data = uploads
    at = upload_on_your_model(raw, data, TIMEOUT)
    assert not at.exception and not at.error, [e.value for e in at.error]

    # defect 7: the model table shows the clean accuracy the Measure metric shows, no "None"
    ref = run_campaign(
        load_onnx(raw), digits.X_test[:ROWS], digits.y_test[:ROWS],
        FaultModel(format="int8", ber=0.01), trials=3, seed=0,
    ).summary()  # fmt: skip
    row = at.dataframe[0].value.iloc[0]
    assert row["clean accuracy"] == f"{ref['clean_accuracy']:.2%}"
    assert "None" not in [str(v) for v in row.values] and row["epochs"] == row["rho"] == ""
    # defect 10: the rate reaches the float scale, follows the format, is written 1e-2
    ber = at.select_slider(key="byom_ber")
    assert ber.value == 1e-2 and (ber.options[0], ber.options[-1]) == ("1e-7", "1e-1")
    at.selectbox(key="byom_format").set_value("float16").run()
    assert at.select_slider(key="byom_ber").value == 1e-5
    at.select_slider(key="byom_ber").set_value(2e-5).run()
    at.slider(key="trials").set_value(3).run()
    assert at.select_slider(key="byom_ber").value == 2e-5  # a picked rate stays
    at.button(key="byom_measure").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Under BER 2e-5" in [m.label for m in at.metric]

    # defect 12: fine-tuning in words: "SAR", not "sar"; no Python value in the result line
    at.selectbox(key="byom_method").set_value("sar")
    at.slider(key="byom_epochs").set_value(1)
    at.button(key="byom_finetune").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    names = list(at.session_state["sar_registry"])
    assert names == ["your model · net", "your model · net · SAR 1 ep"]
    texts = _texts(at)
    assert "**your model · net · SAR 1 ep**: SAR, 1 epochs" in texts
    assert "same graph: True" not in texts and "the same graph as the upload" in texts
    assert "accuracy under float16 BER 2e-5" in at.dataframe[-1].value.columns
    after = at.session_state["sar_finetune_results"]["your model · net"][0]["after"]

    # Train -> Your models: both rows with a clean accuracy, the ONNX download named .onnx
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
    table = next(d.value for d in at.dataframe if "source" in d.value.columns)
    assert list(table["clean accuracy"]) == [
        f"{ref['clean_accuracy']:.2%}",
        f"{after['clean_accuracy']:.2%}",  # the fine-tuned one: on its held-out rows
    ]
    labels = [b.proto.label for b in at.get("download_button") if b.proto.label.startswith("Down")]
    assert labels[:2] == ["Download .onnx", "Download .onnx"]
    assert at.selectbox(key="train_ft_method").format_func("sar") == "SAR"


def test_download_names_follow_the_model_kind():
    from ui.panels import file_name

    class E:
        imported = True

    assert file_name("your model · digits_sgd", E()) == "your_model_digits_sgd.onnx"
    E.imported = False
    assert file_name("my digits MLP · SAR", E()) == "my_digits_MLP_SAR.safetensors"
