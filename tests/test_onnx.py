"""ONNX import (issue 19): the converter against onnxruntime, parameters, campaigns, quantized QDQ.

The test models are built here (never downloaded): a ResNet-style CNN with BatchNorm and
residual adds (exported with BatchNorm folded into the convolutions, and kept as nodes), a small
transformer encoder (attention, LayerNorm, GELU) and the bundled MLP, exported with
``torch.onnx.export(..., dynamo=False)``; quantized with onnxruntime's ``quantize_static`` (QDQ).
onnxruntime is the independent reference.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper
from torch import nn
from torch.func import functional_call

from sar_core.data.onnx_fault_check import check_fault_model
from sar_core.data.onnx_import import load_onnx
from sar_core.engine.montecarlo import trial_rng
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel


class Block(nn.Module):
    """conv-BN-relu-conv-BN plus the identity, then relu (a ResNet basic block)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class ResNetish(nn.Module):
    """Stem conv + BN, one residual block, max pool, global average pool, linear head."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.stem, self.bn = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.block = Block(8)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8, n_classes)

    def forward(self, x):  # (N, 1, 8, 8) -> (N, classes)
        h = self.pool(self.block(torch.relu(self.bn(self.stem(x)))))
        return self.head(h.mean(dim=(2, 3)))


class Encoder(nn.Module):
    """Token embedding, one transformer encoder layer (attention, LayerNorm, GELU), mean pool."""

    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(8, 16)
        self.layer = nn.TransformerEncoderLayer(
            16, 2, 32, dropout=0.0, activation="gelu", batch_first=True
        )
        self.head = nn.Linear(16, n_classes)

    def forward(self, x):  # (N, 8 tokens, 8) -> (N, classes)
        return self.head(self.layer(self.embed(x)).mean(dim=1))


def randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones are 0 / 1)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def export(model: nn.Module, shape: tuple[int, ...], **kw) -> bytes:
    """ONNX bytes of ``model`` for inputs (N, *shape), batch dimension dynamic."""
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.eval(),
            torch.zeros(2, *shape),
            f,
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}},
            **kw,
        )
    return f.getvalue()


def run_ort(raw: bytes, X: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """onnxruntime's logits; graph optimisations off, so Q / DQ nodes run as written."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(raw, so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X.reshape(len(X), *shape).astype(np.float32)})[0]


def quantize(raw: bytes, X: np.ndarray, shape: tuple[int, ...], tmp, per_channel: bool) -> bytes:
    """onnxruntime quantize_static, QDQ format, int8 weights, uint8 activations."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            rows = X.reshape(len(X), *shape).astype(np.float32)
            self.it = iter([{"x": rows[i : i + 32]} for i in range(0, min(len(rows), 256), 32)])

        def get_next(self):
            return next(self.it, None)

    src, dst = tmp / "f.onnx", tmp / f"q{int(per_channel)}.onnx"
    src.write_bytes(raw)
    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        per_channel=per_channel,
    )
    return dst.read_bytes()


@pytest.fixture(scope="module")
def zoo(digits, trained):
    """name -> (torch module, onnx bytes, per-row input shape)."""
    torch.manual_seed(0)
    res = randomize_bn(ResNetish(), 1)
    enc = Encoder().eval()
    mlp = trained["sgd"].model.eval()
    return {
        "resnet_folded": (res, export(res, (1, 8, 8)), (1, 8, 8)),
        "resnet_bn": (res, export(res, (1, 8, 8), do_constant_folding=False), (1, 8, 8)),
        "encoder": (enc, export(enc, (8, 8)), (8, 8)),
        "mlp": (mlp, export(mlp, (64,)), (64,)),
    }


@pytest.mark.parametrize("name", ["resnet_folded", "resnet_bn", "encoder", "mlp"])
def test_converter_logits_match_onnxruntime_and_the_torch_module(zoo, digits, name):
    module, raw, shape = zoo[name]
    X = digits.X_test[:100]
    m = load_onnx(raw)
    with torch.no_grad():
        got = m(torch.from_numpy(X)).numpy()
        ref_torch = module(torch.from_numpy(X).reshape(len(X), *shape)).numpy()
    ref = run_ort(raw, X, shape)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, ref_torch, rtol=1e-4, atol=1e-5)
    assert m.input_shape == shape and m.n_classes == 10 and m.n_features == 64


def test_batchnorm_kept_as_nodes_runs_with_its_running_statistics(zoo):
    _, raw, _ = zoo["resnet_bn"]
    ops = Counter(n.op_type for n in onnx.load_model_from_string(raw).graph.node)
    assert ops["BatchNormalization"] == 3  # really unfused: this is what the test is about
    m = load_onnx(raw)
    buffers = dict(m.named_buffers())
    assert any(k.endswith("running_mean") for k in buffers)
    assert not any("running" in k for k, _ in m.named_parameters())  # frozen: never trained
    assert m.training is False


def test_mlp_parameters_are_the_torch_modules_bit_for_bit(zoo):
    module, raw, _ = zoo["mlp"]
    m = load_onnx(raw)
    ours = dict(m.named_parameters())
    theirs = dict(module.named_parameters())
    assert list(ours) == list(theirs)  # same names, same order: the same fault patterns
    for k, v in theirs.items():
        assert torch.equal(ours[k], v)


def test_campaign_on_the_imported_mlp_equals_the_campaign_on_the_torch_module(zoo, digits):
    from sar_core.analysis.campaign import run_campaign

    module, raw, _ = zoo["mlp"]
    m = load_onnx(raw)
    X, y = digits.X_test[:120], digits.y_test[:120]
    for fm in (FaultModel(format="int8", ber=0.01), FaultModel(format="float32", count=3)):
        a = run_campaign(module, X, y, fm, trials=12, seed=3)
        b = run_campaign(m, X, y, fm, trials=12, seed=3)
        assert a.accuracy == b.accuracy and a.flips == b.flips
        assert (a.clean_accuracy, a.deployed_accuracy) == (b.clean_accuracy, b.deployed_accuracy)


def _with_initializers(raw: bytes, values: dict[str, np.ndarray]) -> bytes:
    proto = onnx.load_model_from_string(raw)
    for t in proto.graph.initializer:
        if t.name in values:
            old = numpy_helper.to_array(t)
            t.CopyFrom(numpy_helper.from_array(values[t.name].astype(old.dtype), t.name))
    return proto.SerializeToString()


@pytest.mark.parametrize("name", ["resnet_folded", "encoder"])
def test_faulty_weights_run_like_onnxruntime_on_the_faulty_file(zoo, digits, name):
    """The injector's faulty parameters, written into the file's initializers, run in onnxruntime
    give the logits the imported module gives under functional_call."""
    _, raw, shape = zoo[name]
    m = load_onnx(raw)
    X = digits.X_test[:60]
    inj = Injector(m, FaultModel(format="int8", count=25))
    init_of = {p: i for i, p in m.param_of.items()}
    for t in range(3):
        faulty = inj.apply(inj.sample(trial_rng(0, t)))
        with torch.no_grad():
            got = functional_call(m, faulty, (torch.from_numpy(X),)).numpy()
        values = {init_of[p]: v.numpy() for p, v in faulty.items() if p in init_of}
        ref = run_ort(_with_initializers(raw, values), X, shape)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def quantized(zoo, digits, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("q")
    out = {}
    for name in ("mlp", "resnet_folded"):
        _, raw, shape = zoo[name]
        for pc in (False, True):
            out[(name, pc)] = (quantize(raw, digits.X_train, shape, tmp, pc), shape)
    out[("mlp", "dynamic")] = (quantize_dynamic_bytes(zoo["mlp"][1], tmp), (64,))
    return out


def quantize_dynamic_bytes(raw: bytes, tmp) -> bytes:
    """onnxruntime quantize_dynamic: int8 weights read by MatMulInteger, activations quantized
    at run time by DynamicQuantizeLinear."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = tmp / "d.onnx", tmp / "dyn.onnx"
    src.write_bytes(raw)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst.read_bytes()


@pytest.mark.parametrize(
    "key", [("mlp", False), ("mlp", True), ("resnet_folded", True), ("mlp", "dynamic")]
)
def test_quantized_model_matches_onnxruntime_and_holds_its_stored_codes(quantized, digits, key):
    raw, shape = quantized[key]
    m = load_onnx(raw)
    X = digits.X_test[:100]
    with torch.no_grad():
        got = m(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(got, run_ort(raw, X, shape), rtol=1e-4, atol=1e-4)
    proto = onnx.load_model_from_string(raw)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    assert m.quantized  # the weights are stored codes ...
    for pname, q in m.quantized.items():
        if q.elem_type == 3:  # ... equal to the file's int8 initializers
            assert np.array_equal(m.get_parameter(pname).detach().numpy(), inits[q.initializer])
    check_fault_model(m, FaultModel(format="int8", ber=0.01))  # exact: no error


@pytest.mark.parametrize("key", [("mlp", False), ("resnet_folded", True), ("mlp", "dynamic")])
def test_int8_faults_flip_the_stored_codes_and_use_the_models_own_scales(quantized, digits, key):
    """Every flip changes one bit of one int8 code stored in the file (numpy uint8 views), and the
    faulty module's logits are onnxruntime's on the file holding those codes (its own scales)."""
    raw, shape = quantized[key]
    m = load_onnx(raw)
    X = digits.X_test[:80]
    inj = Injector(m, FaultModel(format="int8", count=6))
    proto = onnx.load_model_from_string(raw)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for t in range(3):
        pattern = inj.sample(trial_rng(7, t))
        faulty = inj.apply(pattern)
        codes, flipped = {}, 0
        for pname, q in m.quantized.items():
            if q.elem_type != 3:
                continue
            stored = inits[q.initializer]
            new = faulty[pname].numpy()
            assert np.array_equal(new, np.rint(new)) and np.abs(new).max() <= 128
            codes[q.initializer] = new.astype(np.int8)
            xor = stored.view(np.uint8) ^ codes[q.initializer].view(np.uint8)
            flipped += int(np.unpackbits(xor).sum())
        assert flipped == pattern.n_flips == 6  # six stored bits, nothing else
        with torch.no_grad():
            got = functional_call(m, faulty, (torch.from_numpy(X),)).numpy()
        ref = run_ort(_with_initializers(raw, codes), X, shape)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_fault_model_check_refuses_what_would_not_hit_the_stored_codes(quantized):
    raw, _ = quantized[("mlp", False)]
    m = load_onnx(raw)
    with pytest.raises(ValueError, match="format='float32' for a quantized model"):
        check_fault_model(m, FaultModel(format="float32", ber=0.01))
    with pytest.raises(ValueError, match="fc1.bias"):  # int32 bias codes are not int8
        check_fault_model(m, FaultModel(format="int8", ber=0.01, include_bias=True))


def _graph(op: str, **attrs) -> bytes:
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3])
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node(op, ["h"], ["y"], name="odd", **attrs)]  # fmt: skip
    g = helper.make_graph(nodes, "g", [x], [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_unknown_operator_is_named_in_the_error():
    with pytest.raises(ValueError, match="operator 'Hardmax'"):
        load_onnx(_graph("Hardmax"))
    assert load_onnx(_graph("Relu")).n_classes == 3


def test_external_data_random_bytes_and_truncation_are_refused(zoo, tmp_path):
    _, raw, _ = zoo["mlp"]
    proto = onnx.load_model_from_string(raw)
    t = proto.graph.initializer[0]
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value="/etc/passwd")
    with pytest.raises(ValueError, match="external data"):
        load_onnx(proto.SerializeToString())
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="Invalid model"):
        load_onnx(rng.bytes(5000))
    with pytest.raises(ValueError, match="Invalid model"):
        load_onnx(raw[: len(raw) // 2])
    path = tmp_path / "big.onnx"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=r"size=\d+ bytes: the cap is 100 bytes"):
        load_onnx(path, max_bytes=100)


def test_docs_list_every_supported_operator():
    from conftest import ROOT

    from sar_core.data.onnx_read import SUPPORTED_OPS

    doc = (ROOT / "docs" / "byom.md").read_text(encoding="utf-8")
    listed = doc.split("Supported operators:", 1)[1].split("Any other operator", 1)[0]
    names = {w.strip(" .,\n") for w in listed.replace("\n", " ").split(",")}
    assert names == set(SUPPORTED_OPS)


def test_a_graph_with_a_constant_node_is_not_taken_for_a_layer_chain():
    """A Constant node has no inputs: as_sequential returns None (it read inputs[0] and raised
    IndexError, so inject/report on such a graph exited 1), and the graph still matches
    onnxruntime."""
    from sar_core.data.onnx_sequential import as_sequential

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(3, np.float32), "b")
    shift = helper.make_tensor("shift_value", onnx.TensorProto.FLOAT, [3], [0.5, -1.0, 2.0])
    nodes = [
        helper.make_node("Constant", [], ["shift"], value=shift),
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
        helper.make_node("Add", ["h", "shift"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
        [w, b],
    )  # fmt: skip
    raw = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    model = load_onnx(raw)
    assert as_sequential(model) is None
    X = rng.normal(size=(5, 4)).astype(np.float32)
    ref = ort.InferenceSession(raw, providers=["CPUExecutionProvider"]).run(None, {"x": X})[0]
    with torch.no_grad():
        got = model(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
