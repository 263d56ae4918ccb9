"""Checkpoints (safetensors + validated metadata) and JSON / CSV export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from sar_core.data.datasets import load_dataset
from sar_core.data.io import SCHEMA, checkpoint_bytes, dumps, jsonable, load_checkpoint, rows_to_csv
from sar_core.data.io import save_checkpoint as save
from sar_core.data.models import ModelSpec, build_model
from sar_core.engine.evaluate import evaluate


def _meta(**extra) -> dict:
    return {
        "method": "sgd",
        "config": {"epochs": 3, "lr": 0.05},
        "dataset": {"name": "digits", "seed": 0},
        "seed": 7,
        "metrics": {"clean_accuracy": 0.9},
        **extra,
    }


SPECS = [
    ModelSpec(arch="mlp", n_features=64, n_classes=10, widths=(12, 6)),
    ModelSpec(arch="cnn", n_features=64, n_classes=10, widths=(3, 5), image_shape=(1, 8, 8)),
]


@pytest.mark.parametrize("spec", SPECS, ids=["mlp", "cnn"])
def test_round_trip_is_bit_identical_and_keeps_metadata(tmp_path, digest, spec):
    model = build_model(spec, 3)
    with torch.no_grad():  # awkward values survive too: subnormals, -0.0, huge magnitudes
        p = next(model.parameters()).view(-1)
        p[:3] = torch.tensor([1e-45, -0.0, 3.0e38])
    meta = _meta(history=[{"epoch": 1, "test_acc": 0.5}], notes="ünïcode ✓")
    path = save(tmp_path / "sub" / "m.safetensors", model, spec, meta)
    ck = load_checkpoint(path)
    assert digest(ck.model) == digest(model)
    assert ck.spec == spec and ck.method == "sgd"
    assert ck.meta == {"schema": SCHEMA, **meta, "spec": spec.to_dict()}
    assert not ck.model.training
    from_bytes = load_checkpoint(path.read_bytes())
    assert digest(from_bytes.model) == digest(model) and from_bytes.meta == ck.meta


def test_checkpoint_is_plain_safetensors_with_float32_tensors(tmp_path):
    spec = SPECS[0]
    path = save(tmp_path / "m.safetensors", build_model(spec, 0), spec, _meta())
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == {
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
            "out.weight",
            "out.bias",
        }
        assert f.get_tensor("fc1.weight").dtype == torch.float32
        assert json.loads(f.metadata()["sar_lab"])["schema"] == SCHEMA


def test_checkpoint_bytes_are_deterministic():
    spec = SPECS[1]
    a = checkpoint_bytes(build_model(spec, 1), spec, _meta())
    b = checkpoint_bytes(build_model(spec, 1), spec, _meta())
    assert a == b


def test_saving_does_not_touch_the_model(digest):
    spec = SPECS[0]
    model = build_model(spec, 0)
    before = digest(model)
    blob = checkpoint_bytes(model, spec, _meta())
    assert digest(model) == before
    ck = load_checkpoint(blob)
    with torch.no_grad():
        next(ck.model.parameters()).add_(1.0)  # the loaded model shares no memory with the source
    assert digest(model) == before


def test_non_finite_metrics_are_stored_as_strings():
    spec = SPECS[0]
    blob = checkpoint_bytes(build_model(spec, 0), spec, _meta(metrics={"loss": float("inf")}))
    assert load_checkpoint(blob).meta["metrics"] == {"loss": "inf"}


def test_demo_checkpoints_load_and_report_their_own_accuracy(demo):
    data = load_dataset("digits", seed=0)
    for stem, ck in demo.items():
        assert ck.method == stem.rsplit("_", 1)[1]
        assert ck.spec.arch == stem.split("_")[1]
        acc = evaluate(ck.model, data.X_test, data.y_test).accuracy
        assert acc == pytest.approx(ck.meta["metrics"]["clean_accuracy"], abs=1e-6)
        assert acc >= 0.9


# ---------------------------------------------------------------- JSON / CSV ------------------


def test_dumps_is_deterministic_and_strict_json():
    obj = {"b": 1, "a": [np.float32(0.5), np.int64(3), float("nan"), -float("inf")], "c": (1, 2)}
    text = dumps(obj)
    assert text == '{"a": [0.5, 3, "nan", "-inf"], "b": 1, "c": [1, 2]}'
    assert dumps(dict(reversed(list(obj.items())))) == text


def test_jsonable_handles_arrays_tensors_and_objects_with_to_dict():
    from sar_core.faults.model import FaultModel

    out = jsonable(
        {
            "arr": np.array([1.0, np.inf]),
            "t": torch.tensor([[1, 2]]),
            "scalar": torch.tensor(float("nan")),
            "fm": FaultModel(format="int8", bits="lsb", count=2),
        }
    )
    assert out["arr"] == [1.0, "inf"] and out["t"] == [[1, 2]] and out["scalar"] == "nan"
    assert out["fm"]["bits"] == [0] and out["fm"]["count"] == 2
    json.dumps(out, allow_nan=False)


def test_rows_to_csv_union_of_columns():
    text = rows_to_csv([{"a": 1, "b": 2.5}, {"a": 2, "c": "x"}])
    assert text.splitlines() == ["a,b,c", "1,2.5,", "2,,x"]
    assert rows_to_csv([]) == "\n"


def test_load_model_dispatches_on_the_suffix(tmp_path, demo_paths):
    """Issue 19: .safetensors -> a checkpoint; .onnx -> an imported model; others refused."""
    from sar_core.data.io import Checkpoint, ImportedModel, load_model, model_io

    ck = load_model(demo_paths["digits_mlp_sgd"])
    assert isinstance(ck, Checkpoint) and model_io(ck) == ((1, 8, 8), 10)  # its recorded image
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(
        ck.model, torch.zeros(2, 64), str(onnx_path), dynamo=False, input_names=["x"],
        dynamic_axes={"x": {0: "n"}},
    )  # fmt: skip
    imported = load_model(onnx_path)
    assert isinstance(imported, ImportedModel) and model_io(imported) == ((64,), 10)
    assert imported.raw == onnx_path.read_bytes() and not imported.quantized
    for bad in ("m.pt", "m.pth", "m", "m.onnx.bak"):
        with pytest.raises(ValueError, match="suffix"):
            load_model(tmp_path / bad)
