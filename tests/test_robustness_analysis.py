"""sar_core.analysis.robustness: the double-win columns, defined once, against references."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from sar_core.analysis import robustness as R
from sar_core.analysis.campaign import compare
from sar_core.faults.model import FaultModel

FM = FaultModel(format="int8", ber=0.01)


def test_double_win_rows_pair_within_an_architecture_and_match_compare(demo, digits_small):
    X, y = digits_small
    cks = [demo[k] for k in ("digits_mlp_sgd", "digits_cnn_sgd", "digits_mlp_sar")]
    rows = R.double_win_rows(cks, X, y, FM, trials=8, seed=2, rounds=2, inner=1)
    mlp = compare([cks[0].model, cks[2].model], X, y, FM, trials=8, seed=2)["results"]
    cnn = compare([cks[1].model], X, y, FM, trials=8, seed=2)["results"][0]
    for row, res, ref in (
        (rows[0], mlp[0], mlp[0]),
        (rows[1], cnn, cnn),
        (rows[2], mlp[1], mlp[0]),
    ):
        s = res.summary()
        assert row["fault_accuracy"] == s["mean_accuracy"] and row["fault_ci95"] == s["ci95"]
        assert row["deployed_accuracy"] == s["deployed_accuracy"]
        d = np.asarray(res.accuracy) - np.asarray(ref.accuracy)
        assert row["paired_difference"]["mean"] == pytest.approx(d.mean(), abs=1e-15)
    # reference: the t interval of the paired differences (scipy), then the verdict's rule
    d = np.asarray(mlp[1].accuracy) - np.asarray(mlp[0].accuracy)
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    want = "win" if lo > 0 else "loss" if hi < 0 else "tie"
    assert rows[2]["paired_difference"]["verdict"] == want
    assert rows[0]["paired_difference"]["verdict"] is None  # the reference itself
    for ck, row in zip(cks, rows):
        assert row["parameters"] == sum(p.numel() for p in ck.model.parameters())
        assert row["extra_params"] == 0 and row["extra_ops"] == 0 and row["extra_bits"] == 0
        assert row["latency_ms"] > 0 and row["latency_ratio"] > 0 and row["method"] == ck.method


def test_train_cost_ratio_needs_an_sgd_model_of_the_same_setup(demo):
    cks = [demo[k] for k in ("digits_mlp_sgd", "digits_mlp_sar", "digits_cnn_sar")]
    secs = [ck.meta["metrics"]["train_seconds"] for ck in cks]
    assert R.train_cost_ratios(cks) == [1.0, pytest.approx(secs[1] / secs[0]), None]
    other = dataclasses.replace(cks[0], meta={**cks[0].meta, "config": {"epochs": -1}})
    assert R.train_cost_ratios([other, cks[1]]) == [1.0, None]  # other epochs: no reference


def test_a_model_without_a_plain_twin_has_no_structural_comparison():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
    ck = type("Ck", (), {"model": model, "spec": None, "meta": {}, "method": "sgd"})()
    assert R.plain_twin(ck) is None
    cost = R.inference_cost(model, None, torch.zeros(5, 4), rounds=1, inner=1)
    assert cost["parameters"] == 15 and cost["extra_params"] is None
    assert cost["latency_ratio"] is None and cost["latency_ms"] > 0


def test_bit_layer_grid_measures_every_pair_with_only_that_layer_and_bit():
    fm = FaultModel(format="int8", count=3, bits=(0, 7))
    seen = []
    out = R.bit_layer_grid(fm, ["fc1", "out"], lambda f: seen.append(f) or len(seen) / 10)
    assert [(f.layers, f.bits) for f in seen] == [
        (("fc1",), (0,)), (("fc1",), (7,)), (("out",), (0,)), (("out",), (7,)),
    ]  # fmt: skip
    assert out == {"bits": [0, 7], "layers": ["fc1", "out"], "accuracy": [[0.1, 0.2], [0.3, 0.4]]}


def test_sharpness_points_read_the_measure_and_the_fault_columns():
    rows = [{"fault_accuracy": 0.8, "fault_ci95": [0.7, 0.9]}]
    reports = [{"lambda_max": 12.5, "fault_sharpness": {"mean": 0.3, "ci95": [0.2, 0.4]}}]
    p = R.sharpness_points(["a"], ["sgd"], rows, reports, "fault_sharpness")
    assert p == [{"label": "a", "method": "sgd", "x": 0.3, "y": 0.8, "lo": 0.7, "hi": 0.9}]
    assert R.sharpness_points(["a"], ["sgd"], rows, reports, "lambda_max")[0]["x"] == 12.5
    with pytest.raises(ValueError, match="Invalid measure='flatness': must be one of"):
        R.sharpness_value(reports[0], "flatness")
