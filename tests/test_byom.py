"""Bring your own model (issue 19): the CLI contract, user data, and bad input end to end.

Bad input exits 2 with one line on stderr naming the problem, and the user's files are never
modified (their bytes are compared before and after).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from test_onnx import Encoder, export

from sar_core import limits
from sar_core.data.userdata import check_arrays, load_user_data, split_user_data


@pytest.fixture(scope="module")
def files(tmp_path_factory, trained, digits):
    """An exported MLP and encoder, and .npz / CSV data files."""
    d = tmp_path_factory.mktemp("byom")
    (d / "net.onnx").write_bytes(export(trained["sgd"].model, (64,)))
    torch.manual_seed(0)
    (d / "enc.onnx").write_bytes(export(Encoder(), (8, 8)))
    np.savez(d / "test.npz", X=digits.X_test, y=digits.y_test)
    np.savez(d / "images.npz", X=digits.X_test.reshape(-1, 8, 8), y=digits.y_test)
    np.savez(d / "train.npz", X=digits.X_train[:400], y=digits.y_train[:400])
    cols = [f"f{i}" for i in range(64)] + ["label"]
    rows = np.column_stack([digits.X_test, digits.y_test])
    np.savetxt(d / "test.csv", rows, delimiter=",", header=",".join(cols), comments="")
    return d


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_inject_contract_on_an_onnx_model(cli, files):
    rc, out, err = cli(
        "inject", "--model", files / "net.onnx", "--data", files / "test.npz", "--format",
        "int8", "--ber", "0.01", "--trials", "50", "--seed", "0", "--json", "--quiet",
    )  # fmt: skip
    assert rc == 0, err
    res = json.loads(out)
    assert {"clean_accuracy", "deployed_accuracy", "mean_accuracy", "ci95", "trials"} <= set(res)
    assert res["trials"] == 50 and res["mean_accuracy"] <= res["clean_accuracy"] + 0.05


def test_inject_on_onnx_equals_inject_on_the_checkpoint_it_was_exported_from(
    cli, files, tmp_path, trained, digits
):
    from sar_core.data.io import save_checkpoint

    r = trained["sgd"]
    ck = save_checkpoint(tmp_path / "m.safetensors", r.model, r.spec, r.metadata(digits))
    args = ("--format", "int8", "--ber", "0.02", "--trials", "20", "--json", "--quiet")
    a = json.loads(cli("inject", "--model", ck, *args)[1])
    b = json.loads(cli("inject", "--model", files / "net.onnx", "--data", files / "test.npz", *args)[1])  # fmt: skip
    c = json.loads(cli("inject", "--model", files / "net.onnx", "--data", files / "test.csv", *args)[1])  # fmt: skip
    assert a == b  # the checkpoint's own test split is exactly test.npz
    # activation faults (float16: no calibration data involved) need an nn.Sequential: the
    # imported MLP runs as one, with the checkpoint's layer names
    act = ("--target", "activations", "--format", "float16", "--ber", "0.0005", "--trials", "5", "--json", "--quiet")  # fmt: skip
    rc, out_a, err = cli("inject", "--model", ck, *act)
    rc_b, out_b, err_b = cli("inject", "--model", files / "net.onnx", "--data", files / "test.npz", *act)  # fmt: skip
    assert rc == rc_b == 0, err + err_b
    assert json.loads(out_a) == json.loads(out_b)
    assert {k: b[k] for k in ("clean_accuracy", "mean_accuracy")} == {
        k: c[k] for k in ("clean_accuracy", "mean_accuracy")
    }


def test_data_rows_may_come_in_the_models_own_shape(files):
    from sar_core.data.io import load_model

    enc = load_model(files / "enc.onnx")
    assert enc.input_shape == (8, 8)
    flat = load_user_data(files / "test.npz", input_shape=(8, 8), n_classes=10)
    shaped = load_user_data(files / "images.npz", input_shape=(8, 8), n_classes=10)
    assert np.array_equal(flat.X_test, shaped.X_test) and flat.X_test.shape[1] == 64


def test_compare_sweep_landscape_sharpness_accept_onnx_and_data(cli, files):
    m, data = files / "net.onnx", files / "test.npz"
    common = ("--data", data, "--json", "--quiet")
    rc, out, err = cli("compare", "--models", m, m, "--format", "int8", "--ber", "0.01", "--trials", "5", *common)  # fmt: skip
    assert rc == 0, err
    runs = json.loads(out)["results"]
    assert runs[0]["mean_accuracy"] == runs[1]["mean_accuracy"]  # same model, same patterns
    rc, out, err = cli("sweep", "--models", m, "--format", "int8", "--ber", "0.001,0.01", "--trials", "3", *common)  # fmt: skip
    assert rc == 0, err
    rc, out, err = cli("landscape", "--model", m, "--steps", "5", *common)
    assert rc == 0, err
    rc, out, err = cli("sharpness", "--model", m, "--trials", "3", *common)
    assert rc == 0, err


def _bad_graph(tmp_path):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 64])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 10])
    w = numpy_helper.from_array(np.ones((64, 10), np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
        helper.make_node("Hardmax", ["h"], ["y"], name="hm"),
    ]
    g = helper.make_graph(nodes, "g", [x], [y], [w])
    p = tmp_path / "odd.onnx"
    p.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())  # fmt: skip
    return p


def _external(files, tmp_path):
    proto = onnx.load_model_from_string((files / "net.onnx").read_bytes())
    t = proto.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../../etc/passwd")
    p = tmp_path / "ext.onnx"
    p.write_bytes(proto.SerializeToString())
    return p


def _write(tmp_path, name, data: bytes):
    p = tmp_path / name
    p.write_bytes(data)
    return p


BAD = {
    "random_bytes": (
        lambda f, t: _write(t, "r.onnx", np.random.default_rng(0).bytes(4096)),
        None,
        "not an ONNX protobuf",
    ),  # fmt: skip
    "truncated": (
        lambda f, t: _write(t, "t.onnx", (f / "net.onnx").read_bytes()[:3000]),
        None,
        "Invalid model",
    ),  # fmt: skip
    "unknown_operator": (lambda f, t: _bad_graph(t), None, "Hardmax"),
    "external_data": (_external, None, "external data"),
    "pt2_without_trust": (
        lambda f, t: _write(t, "m.pt2", b"PK\x03\x04 anything"),
        None,
        "--trust-pt2",
    ),  # fmt: skip
    "shape_mismatch": (
        lambda f, t: f / "enc.onnx",
        lambda f, t: _npz(t, np.zeros((20, 63)), np.zeros(20, int)),
        "rows of shape (8, 8)",
    ),  # fmt: skip
    "labels_out_of_range": (
        lambda f, t: f / "net.onnx",
        lambda f, t: _npz(t, np.zeros((20, 64)), np.arange(20)),
        "label 19 is out of range",
    ),  # fmt: skip
    "nan_in_X": (
        lambda f, t: f / "net.onnx",
        lambda f, t: _npz(t, np.full((20, 64), np.nan), np.zeros(20, int)),
        "inputs must be finite",
    ),  # fmt: skip
    "no_data": (lambda f, t: f / "net.onnx", lambda f, t: None, "needs --data"),
    "data_not_npz": (
        lambda f, t: f / "net.onnx",
        lambda f, t: _write(t, "d.npz", b"garbage"),
        "not a readable .npz",
    ),  # fmt: skip
    "object_array_npz": (
        lambda f, t: f / "net.onnx",
        lambda f, t: _object_npz(t),
        "without unpickling",
    ),
}


def _object_npz(tmp_path):
    """An .npz whose X is an object array: loading it would unpickle."""
    p = tmp_path / "obj.npz"
    X = np.empty((20, 64), dtype=object)
    X[:] = 0.0
    np.savez(p, X=X, y=np.zeros(20, int))
    return p


def _npz(tmp_path, X, y):
    p = tmp_path / "d.npz"
    np.savez(p, X=X.astype(np.float32), y=y)
    return p


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_with_one_line_and_leaves_the_files_alone(cli, files, tmp_path, case):
    make_model, make_data, needle = BAD[case]
    model = make_model(files, tmp_path)
    data = make_data(files, tmp_path) if make_data else files / "test.npz"
    paths = [p for p in (model, data) if p is not None]
    before = [_digest(p) for p in paths]
    argv = ["inject", "--model", model, "--format", "int8", "--ber", "0.01", "--trials", "2"]
    if data is not None:
        argv += ["--data", data]
    rc, out, err = cli(*argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: Invalid") and needle in err, err
    assert [_digest(p) for p in paths] == before


def test_oversized_model_and_data_files_are_refused_by_the_caps(cli, files, monkeypatch):
    monkeypatch.setattr(limits, "MAX_MODEL_BYTES", 1000)
    rc, _, err = cli("inject", "--model", files / "net.onnx", "--data", files / "test.npz", "--ber", "0.01")  # fmt: skip
    assert rc == 2 and "the cap is 1000 bytes" in err
    monkeypatch.setattr(limits, "MAX_MODEL_BYTES", 64 * 1024 * 1024)
    monkeypatch.setattr(limits, "MAX_DATA_BYTES", 1000)
    rc, _, err = cli("inject", "--model", files / "net.onnx", "--data", files / "test.npz", "--ber", "0.01")  # fmt: skip
    assert rc == 2 and "Invalid data size=" in err and "the cap is 1000 bytes" in err


def test_unsupported_operator_exits_2_naming_it(cli, tmp_path, files):
    rc, out, err = cli("finetune", "--model", _bad_graph(tmp_path), "--data", files / "train.npz", "--out", tmp_path / "o.onnx")  # fmt: skip
    assert rc == 2 and "'Hardmax'" in err and not (tmp_path / "o.onnx").exists()


def test_user_data_checks_name_the_problem():
    X = np.zeros((10, 64), np.float32)
    with pytest.raises(ValueError, match=r"labels must be integer"):
        check_arrays(X, np.full(10, 0.5), input_shape=(64,), n_classes=3)
    with pytest.raises(ValueError, match=r"label -1 is out of range.*0\.\.2"):
        check_arrays(X, np.full(10, -1), input_shape=(64,), n_classes=3)
    with pytest.raises(ValueError, match=r"expected \(10,\)"):
        check_arrays(X, np.zeros(9, int), input_shape=(64,), n_classes=3)
    with pytest.raises(ValueError, match=r"rows=1: need 2 to"):
        check_arrays(X[:1], np.zeros(1, int), input_shape=(64,), n_classes=3)
    Xc, yc = check_arrays(X.astype(np.float64), np.arange(10) % 3, input_shape=(64,), n_classes=3)
    assert Xc.dtype == np.float32 and yc.dtype == np.int64


def test_split_holds_out_a_seeded_part_or_takes_val(files):
    a = split_user_data(files / "train.npz", input_shape=(64,), n_classes=10, seed=1)
    b = split_user_data(files / "train.npz", input_shape=(64,), n_classes=10, seed=1)
    assert len(a.y_test) == 80 and len(a.y_train) == 320
    assert np.array_equal(a.X_test, b.X_test)
    rows = {r.tobytes() for r in a.X_train}
    assert not any(r.tobytes() in rows for r in a.X_test)  # held out: disjoint from training
    c = split_user_data(files / "train.npz", input_shape=(64,), n_classes=10, val=files / "test.npz")  # fmt: skip
    assert len(c.y_train) == 400 and len(c.y_test) == 360


CAPS = {
    "onnx_nodes": ("MAX_ONNX_NODES", 2, "nodes=5: the cap is 2 nodes"),
    "model_input": ("MAX_MODEL_INPUT", 63, "64 values per row; the cap is 63"),
    "data_rows": ("MAX_DATA_ROWS", 100, "rows=360: need 2 to 100 rows"),
}


@pytest.mark.parametrize("case", sorted(CAPS))
def test_caps_of_imported_models_and_data(cli, files, monkeypatch, case):
    name, value, needle = CAPS[case]
    monkeypatch.setattr(limits, name, value)
    rc, _, err = cli("inject", "--model", files / "net.onnx", "--data", files / "test.npz", "--ber", "0.01")  # fmt: skip
    assert rc == 2 and needle in err, err


def test_readme_example_numbers_come_from_its_result_files():
    """The README's worked example quotes docs/byom/*.json; finetune's "after" is the written
    file's inject result (the same rows, seed and fault model)."""
    import re

    from conftest import ROOT

    res = {p.stem: json.loads(p.read_text()) for p in (ROOT / "docs" / "byom").glob("*.json")}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Bring your own model", 1)[1].split("\n## ", 1)[0]
    for name in ("inject_net", "inject_robust", "inject_net_int8", "inject_robust_int8"):
        r = res[name]
        lo, hi = r["ci95"]
        row = f"{100 * r['deployed_accuracy']:.1f}% | {100 * r['mean_accuracy']:.1f}% "
        assert row + f"({100 * lo:.1f}–{100 * hi:.1f}%)" in section, name
    quoted = set(re.findall(r"\d+\.\d%", section))  # every percentage in the section ...
    allowed = {
        f"{100 * v:.1f}%"
        for r in res.values()
        if "ci95" in r
        for v in (r["deployed_accuracy"], r["mean_accuracy"], *r["ci95"])
    }
    assert quoted and quoted <= allowed  # ... is one of the result files' numbers
    for ft, after in (
        ("finetune_sar", "inject_robust"),
        ("finetune_sar_int8", "inject_robust_int8"),
    ):
        assert res[ft]["same_graph"] is True
        for k in ("clean_accuracy", "deployed_accuracy", "mean_accuracy", "ci95"):
            assert res[ft]["after"][k] == res[after][k], (ft, k)


def test_trusted_pt2_runs_like_the_module_it_was_exported_from(cli, files, tmp_path, digits):
    """A torch.export program (static batch of 4: run in chunks) with --trust-pt2; the campaign
    equals the one on the original module (same parameter shapes: the same fault patterns)."""
    from collections import OrderedDict

    from torch import nn

    from sar_core.analysis.campaign import run_campaign
    from sar_core.faults.model import FaultModel

    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(fc=nn.Linear(64, 32), act=nn.ReLU(), out=nn.Linear(32, 10)))
    path = tmp_path / "m.pt2"
    torch.export.save(torch.export.export(net.eval(), (torch.zeros(4, 64),)), str(path))
    args = ("--data", files / "test.npz", "--format", "int8", "--ber", "0.02", "--trials", "6")
    rc, out, err = cli("inject", "--model", path, *args, "--trust-pt2", "--json", "--quiet")
    assert rc == 0, err
    got = json.loads(out)
    ref = run_campaign(net, digits.X_test, digits.y_test, FaultModel(format="int8", ber=0.02), trials=6, seed=0).summary()  # fmt: skip
    assert got["clean_accuracy"] == pytest.approx(ref["clean_accuracy"])
    assert got["mean_accuracy"] == pytest.approx(ref["mean_accuracy"])
    rc, _, err = cli("inject", "--model", path, *args)  # no trust flag: refused, nothing loaded
    assert rc == 2 and "--trust-pt2" in err


class _Rows(torch.nn.Module):
    """The original torch module taking flattened rows, as SAR Lab's models do."""

    def __init__(self, net, shape):
        super().__init__()
        self.net, self.shape = net, shape

    def forward(self, x):
        return self.net(x.reshape(len(x), *self.shape))


def test_whole_flow_resnet_with_batchnorm(cli, tmp_path, digits):
    """Train a ResNet-style CNN in plain torch, export it with BatchNorm as nodes, import it: the
    campaign equals the one on the torch module (same parameters, same patterns); finetune it;
    the written file re-imports with the same graph and unchanged running statistics."""
    from test_onnx import ResNetish

    from sar_core.analysis.campaign import run_campaign
    from sar_core.cli.finetune import same_graph
    from sar_core.data.onnx_import import load_onnx
    from sar_core.faults.model import FaultModel

    torch.manual_seed(0)
    net = ResNetish()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    X, y = torch.from_numpy(digits.X_train).reshape(-1, 1, 8, 8), torch.from_numpy(digits.y_train)
    for _ in range(3):
        for idx in torch.randperm(len(X)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
    raw = export(net.eval(), (1, 8, 8), do_constant_folding=False)
    (tmp_path / "res.onnx").write_bytes(raw)
    m = load_onnx(raw)
    ref_module = _Rows(net, (1, 8, 8)).eval()
    fm = FaultModel(format="int8", ber=0.005)
    a = run_campaign(ref_module, digits.X_test, digits.y_test, fm, trials=8, seed=1)
    b = run_campaign(m, digits.X_test, digits.y_test, fm, trials=8, seed=1)
    assert a.clean_accuracy > 0.5  # trained: far above chance (0.1)
    assert a.accuracy == b.accuracy and a.flips == b.flips
    np.savez(tmp_path / "train.npz", X=digits.X_train, y=digits.y_train)
    out = tmp_path / "robust.onnx"
    rc, text, err = cli("finetune", "--model", tmp_path / "res.onnx", "--data", tmp_path / "train.npz", "--method", "sar", "--epochs", "1", "--trials", "4", "--out", out, "--json", "--quiet")  # fmt: skip
    assert rc == 0, err
    new = out.read_bytes()
    assert same_graph(raw, new) and json.loads(text)["same_graph"] is True
    back = load_onnx(new)
    for name, buf in m.named_buffers():
        if "running" in name:
            assert torch.equal(buf, dict(back.named_buffers())[name])  # frozen statistics
    changed = [n for n, p in back.named_parameters() if not torch.equal(p, m.get_parameter(n))]
    assert "stem.weight" in changed and "head.weight" in changed


def test_quantized_model_campaigns_refuse_float_formats(cli, files, tmp_path, digits):
    """A QDQ model's weights are int8 codes: a float format would flip float bits of the codes."""
    from test_onnx import quantize

    q = tmp_path / "q.onnx"
    q.write_bytes(quantize((files / "net.onnx").read_bytes(), digits.X_train, (64,), tmp_path, False))  # fmt: skip
    data = ("--data", files / "test.npz")
    rc, out, err = cli("inject", "--model", q, *data, "--format", "int8", "--ber", "0.01", "--trials", "3", "--json", "--quiet")  # fmt: skip
    assert rc == 0, err
    assert (
        json.loads(out)["deployed_accuracy"] == json.loads(out)["clean_accuracy"]
    )  # no requantizing
    for cmd in (
        ("inject", "--model", q, *data, "--format", "float16", "--ber", "0.01"),
        ("sharpness", "--model", q, *data, "--format", "float32", "--ber", "0.01"),
    ):
        rc, _, err = cli(*cmd)
        assert rc == 2 and "for a quantized model" in err and err.count("\n") == 1, err
