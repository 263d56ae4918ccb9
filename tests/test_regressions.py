"""Regression tests for defects found in review (each failed before its fix)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from sar_core.bits import flip_value, parse_bits
from sar_core.calibrate import calibrate_rho
from sar_core.evaluate import evaluate
from sar_core.faults import FaultModel
from sar_core.io import SCHEMA, checkpoint_bytes, load_checkpoint
from sar_core.training import TrainConfig, spec_for, train


def test_compare_refuses_models_trained_on_different_splits(cli, tmp_path):
    # before: every model was scored on the first model's test split (a silent wrong answer)
    paths = []
    for seed in (0, 7):
        p = tmp_path / f"s{seed}.safetensors"
        rc, _, err = cli("train", "--epochs", "1", "--seed", seed, "--out", p, "--quiet")
        assert rc == 0, err
        paths.append(p)
    for cmd in ("compare", "sweep"):
        rc, out, err = cli(
            cmd, "--models", *paths, "--format", "int8", "--ber", "0.01", "--trials", "2", "--quiet"
        )
        assert rc == 2 and out == ""
        assert err.count("\n") == 1 and "split seed 7" in err and "split seed 0" in err


def test_csv_that_does_not_match_the_checkpoint_is_a_usage_error(cli, tmp_path):
    from sar_core.data import load_csv

    rng = np.random.default_rng(0)

    def write(path, n_features):
        X = rng.normal(size=(60, n_features))
        y = (X[:, 0] > 0).astype(int)
        cols = [f"f{i}" for i in range(n_features)] + ["label"]
        rows = [",".join(cols)] + [",".join(map(str, [*x, t])) for x, t in zip(X, y)]
        path.write_text("\n".join(rows) + "\n")
        return path

    three, five = write(tmp_path / "a.csv", 3), write(tmp_path / "b.csv", 5)
    data = load_csv(three, name="a")
    res = train(spec_for(data, "mlp", (8,)), data, TrainConfig(epochs=1))
    ck = tmp_path / "a.safetensors"
    ck.write_bytes(checkpoint_bytes(res.model, res.spec, res.metadata(data)))
    rc, _, err = cli("inject", "--model", ck, "--csv", five, "--ber", "0.01", "--trials", "2")
    assert rc == 2 and "has 5 features" in err and "trained with 3" in err
    rc, out, _ = cli(
        "inject",
        "--model",
        ck,
        "--csv",
        three,
        "--ber",
        "0.01",
        "--trials",
        "2",
        "--json",
        "--quiet",
    )
    assert rc == 0 and json.loads(out)["trials"] == 2


def test_parse_bits_checks_bounds_before_expanding_a_range():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"position 1000000000000 is outside 0\.\.7"):
        parse_bits("0-1000000000000", "int8")
    assert time.perf_counter() - t0 < 1.0  # would allocate ~10^12 ints before the fix
    with pytest.raises(ValueError) as e:
        parse_bits("0-100000", "float32")
    assert len(str(e.value)) < 300  # the message shows what was typed, not the expanded list


@pytest.mark.parametrize("bits", [[1.7], [True], ["3"]])
def test_parse_bits_rejects_non_integer_positions(bits):
    with pytest.raises(ValueError, match="not an integer bit position"):
        FaultModel(bits=bits, ber=0.1)


def _with_meta(meta_change: dict) -> bytes:
    tensors = {"out.weight": torch.zeros(10, 64), "out.bias": torch.zeros(10)}
    meta = {
        "schema": SCHEMA,
        "method": "sgd",
        "config": {},
        "seed": 0,
        "metrics": {},
        "dataset": {"name": "digits", "seed": 0},
        "spec": {"arch": "mlp", "n_features": 64, "n_classes": 10, "widths": [4]},
    }
    meta.update(meta_change)
    return st_save(tensors, metadata={"sar_lab": json.dumps(meta)})


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"dataset": {"name": "digits", "seed": "x"}}, "dataset.seed='x'"),
        ({"dataset": {"name": "digits", "seed": [1]}}, "dataset.seed=[1]"),
        ({"dataset": {"seed": 0}}, "dataset.name=None"),
    ],
)
def test_checkpoint_dataset_metadata_is_validated(change, needle):
    # before: accepted, then the dashboard crashed on every rerun at int(seed)
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_checkpoint(_with_meta(change))


def test_tiny_file_declaring_a_huge_model_is_rejected_without_building_it():
    huge = {"arch": "mlp", "n_features": 100000, "n_classes": 10, "widths": [1024] * 6}
    with pytest.raises(ValueError, match="do not match the declared mlp architecture"):
        load_checkpoint(_with_meta({"spec": huge}))


def test_unreadable_path_is_a_value_error():
    with pytest.raises(ValueError, match="Invalid model path"):
        load_checkpoint("a" * 5000)


def test_int8_scale_that_underflows_float32_is_rejected():
    with pytest.raises(ValueError, match="Invalid scale"):
        flip_value(1e-45, "int8", 0)


def test_calibration_accepts_numpy_like_every_other_analysis(digits_small, demo):
    X, y = digits_small
    model = demo["digits_mlp_sgd"].model
    a = calibrate_rho(
        model, np.asarray(X), np.asarray(y), FaultModel(format="int8", ber=0.01), trials=2
    )
    b = calibrate_rho(
        model,
        torch.as_tensor(np.asarray(X)),
        torch.as_tensor(np.asarray(y)),
        FaultModel(format="int8", ber=0.01),
        trials=2,
    )
    assert a == b


def test_stopping_mid_epoch_returns_the_weights_its_history_describes(digits):
    spec = spec_for(digits, "mlp")
    polls = iter(range(10**6))
    res = train(
        spec, digits, TrainConfig(epochs=3), should_stop=lambda: next(polls) >= 23 + 5
    )  # 1437 rows / 64 = 23 batches
    assert res.stopped and len(res.history) == 1  # stopped 5 batches into epoch 2
    once = train(spec, digits, TrainConfig(epochs=1))
    assert evaluate(res.model, digits.X_test, digits.y_test).accuracy == res.clean_accuracy
    for p, q in zip(res.model.parameters(), once.model.parameters()):
        assert torch.equal(p, q)  # exactly the one-epoch model
    assert res.metadata(digits)["stopped"] is True
