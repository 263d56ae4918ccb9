"""train(): accuracy on digits, same start for every method, cancellation, history records."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from sar_core.data.datasets import load_dataset
from sar_core.data.models import build_model
from sar_core.faults.model import FaultModel
from sar_core.training.loop import METHODS, TrainConfig, spec_for, train, with_method
from sar_core.training.optim import SAR_DEFAULT_GEOMETRY, SAR_DEFAULT_RHO

HISTORY_KEYS = {
    "epoch",
    "method",
    "train_loss",
    "train_acc",
    "test_acc",
    "test_loss",
    "rho",
    "seconds",
}


def _equal_weights(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("method", ["sgd", "sar"])
def test_sgd_and_sar_reach_95_percent_on_digits(trained, method):
    res = trained[method]
    assert len(res.history) == 30 and not res.stopped
    assert res.clean_accuracy >= 0.95
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_sar_history_records_its_radius(trained):
    assert {h["rho"] for h in trained["sar"].history} == {SAR_DEFAULT_RHO}
    assert trained["sgd"].history[0]["rho"] is None


@pytest.mark.parametrize("method", METHODS)
def test_every_method_starts_from_the_same_initial_weights(digits, method):
    spec = spec_for(digits, "mlp", (16,))
    res = train(
        spec, digits, TrainConfig(method=method, epochs=3, seed=11), should_stop=lambda: True
    )
    assert res.stopped and res.history == []
    assert _equal_weights(res.model, build_model(spec, 11))


@pytest.mark.parametrize("method", ["sam", "asam", "sar"])
def test_rho_zero_training_equals_sgd_bit_exactly(digits, method):
    """Same split, seed, initial weights and batch order: only the optimizer differs."""
    spec = spec_for(digits, "mlp", (16,))
    base = TrainConfig(method="sgd", epochs=2, seed=5)
    a = train(spec, digits, base)
    b = train(spec, digits, with_method(base, method, rho=0.0))
    assert _equal_weights(a.model, b.model)
    assert [h["test_acc"] for h in a.history] == [h["test_acc"] for h in b.history]


def test_same_seed_same_split_for_every_method(digits, demo):
    """The demo checkpoints of every method record the same dataset split (name and seed)."""
    described = {ck.meta["dataset"]["seed"] for ck in demo.values()}
    assert described == {0}
    again = load_dataset("digits", seed=0)
    assert np.array_equal(again.X_train, digits.X_train)
    assert np.array_equal(again.y_test, digits.y_test)
    assert all(ck.meta["dataset"] == digits.describe() for ck in demo.values())


def test_training_is_deterministic(digits):
    spec = spec_for(digits, "cnn", (4, 8))
    cfg = TrainConfig(method="sam", epochs=1, seed=2)
    a, b = train(spec, digits, cfg), train(spec, digits, cfg)
    assert _equal_weights(a.model, b.model)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in a.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in b.history]


def test_should_stop_cancels_mid_epoch(digits):
    calls = {"n": 0}
    batches_per_epoch = math.ceil(len(digits.y_train) / 64)

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > batches_per_epoch + 3  # three batches into epoch 2

    res = train(spec_for(digits, "mlp", (16,)), digits, TrainConfig(epochs=10), should_stop=stop)
    assert res.stopped
    assert [h["epoch"] for h in res.history] == [1]  # the interrupted epoch is not recorded
    assert not res.model.training


def test_on_epoch_receives_each_record(digits):
    seen = []
    res = train(
        spec_for(digits, "mlp", (16,)),
        digits,
        TrainConfig(method="adam", epochs=3, seed=1),
        on_epoch=seen.append,
    )
    assert [r["epoch"] for r in seen] == [1, 2, 3]
    for rec in seen:
        assert set(rec) == HISTORY_KEYS
        assert rec["method"] == "adam"
        assert 0.0 <= rec["train_acc"] <= 1.0 and 0.0 <= rec["test_acc"] <= 1.0
        assert math.isfinite(rec["train_loss"]) and rec["seconds"] >= 0
    seen[0]["epoch"] = 99  # a copy: the result's history is not affected
    assert res.history[0]["epoch"] == 1
    assert res.train_seconds == pytest.approx(sum(h["seconds"] for h in res.history))


def test_fat_and_calibrated_sar_run(digits):
    small = replace(digits, X_train=digits.X_train[:300], y_train=digits.y_train[:300])
    spec = spec_for(small, "mlp", (16,))
    fm = FaultModel(format="int8", bits="0-6", ber=0.02)
    fat = train(spec, small, TrainConfig(method="fat", epochs=2, fault_model=fm))
    assert len(fat.history) == 2 and math.isfinite(fat.history[-1]["train_loss"])
    sar = train(
        spec,
        small,
        TrainConfig(
            method="sar", epochs=2, rho_mode="calibrated", calibrate_every=1, fault_model=fm
        ),
    )
    assert len(sar.calibrations) == 2
    assert [h["rho"] for h in sar.history] == [c.rho for c in sar.calibrations]
    assert all(c.rho > 0 for c in sar.calibrations)


def test_config_dict_round_trip_with_effective_values():
    cfg = TrainConfig(method="sar", epochs=4, fault_model=FaultModel(format="float16", ber=0.001))
    d = cfg.to_dict()
    assert d["lr"] == 0.05 and d["rho"] == SAR_DEFAULT_RHO
    assert d["geometry"] == SAR_DEFAULT_GEOMETRY
    assert d["fault_model"]["format"] == "float16"
    back = TrainConfig.from_dict(d)
    assert back.fault_model == cfg.fault_model and back.effective_rho == cfg.effective_rho
    assert TrainConfig(method="adam").effective_lr == 0.002


def test_spec_that_does_not_match_the_data_is_rejected(digits):
    wine = load_dataset("wine")
    with pytest.raises(ValueError, match="do not match dataset 'wine'"):
        train(spec_for(digits, "mlp"), wine, TrainConfig(epochs=1))


def test_diverging_training_records_inf_loss_and_counts_nan_rows_wrong(digits):
    from sar_core.data.io import dumps

    res = train(spec_for(digits, "mlp", (16,)), digits, TrainConfig(lr=10.0, epochs=3))
    last = res.history[-1]
    assert not all(bool(p.isfinite().all()) for p in res.model.parameters())  # it did diverge
    assert last["train_loss"] == float("inf") and last["test_loss"] == float("inf")
    assert last["train_acc"] == 0.0 and last["test_acc"] == 0.0  # NaN logits are never right
    assert '"train_loss": "inf"' in dumps(res.history)
