"""finetune (issue 19): written back in the model's own format, same graph, honest before/after.

References: the input file's own graph (operators, initializer names, shapes, types), onnxruntime
on the written file, the exported torch module's state, and the quantizer's formula
s = max|w| / 127 for the re-quantized weights.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from test_onnx import ResNetish, export, quantize, quantize_dynamic_bytes, randomize_bn, run_ort

from sar_core.cli.finetune import finetune_model, same_graph
from sar_core.data.onnx_export import export_onnx
from sar_core.data.onnx_fault_check import check_fault_model
from sar_core.data.onnx_import import load_onnx
from sar_core.data.userdata import split_user_data
from sar_core.faults.model import FaultModel
from sar_core.training.config import TrainConfig


@pytest.fixture(scope="module")
def setup(tmp_path_factory, digits, trained):
    d = tmp_path_factory.mktemp("ft")
    torch.manual_seed(0)
    res = randomize_bn(ResNetish(), 2)
    (d / "res.onnx").write_bytes(export(res, (1, 8, 8), do_constant_folding=False))
    mlp = export(trained["sgd"].model, (64,))
    (d / "mlp.onnx").write_bytes(mlp)
    (d / "mlp_q.onnx").write_bytes(quantize(mlp, digits.X_train, (64,), d, per_channel=False))
    (d / "mlp_qc.onnx").write_bytes(quantize(mlp, digits.X_train, (64,), d, per_channel=True))
    (d / "mlp_dyn.onnx").write_bytes(quantize_dynamic_bytes(mlp, d))
    np.savez(d / "train.npz", X=digits.X_train[:300], y=digits.y_train[:300])
    return d


def _inits(raw: bytes) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load_model_from_string(raw).graph.initializer}  # fmt: skip


def test_export_without_training_gives_back_the_same_initializers(setup):
    raw = (setup / "res.onnx").read_bytes()
    out, _ = export_onnx(load_onnx(raw), raw)
    a, b = _inits(raw), _inits(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def _data(setup, shape=(64,)):
    return split_user_data(setup / "train.npz", input_shape=shape, n_classes=10, seed=0)


def test_finetuned_onnx_keeps_its_graph_and_frozen_batchnorm_and_runs_in_onnxruntime(setup, digits):
    raw = (setup / "res.onnx").read_bytes()
    m = load_onnx(raw)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    tuned, hist = finetune_model(m, _data(setup, (1, 8, 8)), TrainConfig(method="sam", epochs=2, lr=0.01))  # fmt: skip
    assert len(hist) == 2
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # input untouched
    out, report = export_onnx(tuned, raw)
    assert same_graph(raw, out)
    a, b = _inits(raw), _inits(out)
    running = [m.param_of and k for k, p in m.param_of.items() if "running" in p]
    assert running and all(np.array_equal(a[k], b[k]) for k in running)  # frozen statistics
    assert any(not np.array_equal(a[k], b[k]) for k in report["written"])  # weights trained
    X = digits.X_test[:50]
    with torch.no_grad():
        ours = load_onnx(out)(torch.from_numpy(X)).numpy()
        trained_logits = tuned(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(ours, run_ort(out, X, (1, 8, 8)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours, trained_logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["mlp_q.onnx", "mlp_qc.onnx", "mlp_dyn.onnx"])
def test_quantized_model_is_requantized_with_new_scales_in_the_same_graph(setup, digits, name):
    raw = (setup / name).read_bytes()
    m = load_onnx(raw)
    tuned, _ = finetune_model(m, _data(setup), TrainConfig(method="clip", epochs=1, lr=0.01))
    out, report = export_onnx(tuned, raw)
    assert same_graph(raw, out) and report["requantized"]
    new = _inits(out)
    floats = dict(tuned.named_parameters())
    back = load_onnx(out)
    for pname, q in m.quantized.items():
        codes = new[q.initializer]
        if q.elem_type != 3:
            continue
        w = floats[pname].detach().numpy()
        s = new[q.scale]
        axis_max = np.abs(w).max() if s.size == 1 else np.abs(w).max(axis=1)
        np.testing.assert_allclose(s, (axis_max / 127).astype(np.float32), rtol=1e-6)
        s_b = s if s.size == 1 else s[:, None]
        assert np.array_equal(codes, np.clip(np.rint(w / s_b), -127, 127).astype(np.int8))
    check_fault_model(back, FaultModel(format="int8", ber=0.01))  # still exact after writing
    X = digits.X_test[:60]
    with torch.no_grad():
        ours = back(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(ours, run_ort(out, X, (64,)), rtol=1e-4, atol=1e-4)
    # an int32 bias stays consistent with its fused kernel: scale = input scale x weight scale
    links = {n.inputs[2]: n for n in back.nodes if n.op == "Gemm"}
    dq = {n.outputs[0]: n for n in back.nodes if n.op == "DequantizeLinear"}
    for n in links.values():
        x_s, w_s, b_s = (new[dq[i].inputs[1]] for i in n.inputs[:3])
        np.testing.assert_allclose(b_s, (x_s * w_s).astype(np.float32), rtol=1e-6)


def test_cli_contract_writes_the_model_and_reports_before_and_after(cli, setup, tmp_path):
    src = setup / "mlp.onnx"
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    out = tmp_path / "robust.onnx"
    rc, text, err = cli(
        "finetune", "--model", src, "--data", setup / "train.npz", "--method", "sar",
        "--epochs", "2", "--trials", "5", "--out", out, "--json", "--quiet",
    )  # fmt: skip
    assert rc == 0, err
    res = json.loads(text)
    assert res["same_graph"] is True and res["epochs"] == 2 and res["method"] == "sar"
    assert res["train_rows"] == 240 and res["val_rows"] == 60
    for when in ("before", "after"):
        assert {"clean_accuracy", "mean_accuracy", "ci95"} <= set(res[when])
    assert hashlib.sha256(src.read_bytes()).hexdigest() == digest  # the input is never written
    # the "after" numbers are the written file's: re-measure it with inject on the same rows
    data = split_user_data(setup / "train.npz", input_shape=(64,), n_classes=10, seed=0)
    np.savez(tmp_path / "val.npz", X=data.X_test, y=data.y_test)
    rc, text, err = cli("inject", "--model", out, "--data", tmp_path / "val.npz", "--format", "int8", "--ber", "0.01", "--trials", "5", "--json", "--quiet")  # fmt: skip
    again = json.loads(text)
    assert again["clean_accuracy"] == res["after"]["clean_accuracy"]
    assert again["mean_accuracy"] == res["after"]["mean_accuracy"]


def test_cli_refuses_to_overwrite_the_input_or_change_the_format(cli, setup):
    src = setup / "mlp.onnx"
    rc, _, err = cli("finetune", "--model", src, "--data", setup / "train.npz", "--out", src)
    assert rc == 2 and "never modified" in err
    rc, _, err = cli("finetune", "--model", src, "--data", setup / "train.npz", "--out", setup / "x.safetensors")  # fmt: skip
    assert rc == 2 and "same format" in err


def test_finetuned_checkpoint_keeps_its_tensors(cli, setup, tmp_path, trained, digits):
    from safetensors import safe_open

    from sar_core.data.io import save_checkpoint

    r = trained["sgd"]
    src = save_checkpoint(tmp_path / "m.safetensors", r.model, r.spec, r.metadata(digits))
    out = tmp_path / "ft.safetensors"
    rc, text, err = cli("finetune", "--model", src, "--data", setup / "train.npz", "--method", "clip", "--epochs", "1", "--trials", "3", "--out", out, "--json", "--quiet")  # fmt: skip
    assert rc == 0, err

    def shapes(p):
        with safe_open(str(p), "pt") as f:
            names = f.keys()
            return {k: tuple(f.get_slice(k).get_shape()) for k in names}

    assert shapes(src) == shapes(out)
    assert json.loads(text)["after"]["clean_accuracy"] > 0.5
