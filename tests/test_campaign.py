"""Campaigns: statistics vs scipy, paired differences, non-finite logits, deployed accuracy, sweeps."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import tiny_linear
from scipy import stats

from sar_core.analysis.campaign import compare, iter_compare, paired_difference, run_campaign
from sar_core.analysis.sweeps import figure_curves, iter_sweep, sweep, sweep_bits, sweep_layers
from sar_core.data.io import dumps, rows_to_csv
from sar_core.data.models import build_model
from sar_core.engine.evaluate import evaluate, score_logits
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel, parameter_shapes, sample_pattern
from sar_core.stats.intervals import summarize

# ---------------------------------------------------------------- statistics ------------------


@pytest.mark.parametrize("n", [2, 5, 30, 400])
def test_summarize_matches_scipy(n):
    v = np.random.default_rng(n).uniform(0.3, 0.9, size=n)
    s = summarize(v)
    assert s["n"] == n
    assert s["mean"] == pytest.approx(np.mean(v), rel=1e-12)
    assert s["std"] == pytest.approx(stats.tstd(v), rel=1e-12)
    lo, hi = stats.t.interval(0.95, n - 1, loc=np.mean(v), scale=stats.sem(v))
    assert s["ci95"] == pytest.approx([lo, hi], rel=1e-10)
    assert s["quantiles"]["q50"] == pytest.approx(np.median(v))
    assert s["quantiles"]["q05"] <= s["quantiles"]["q25"] <= s["quantiles"]["q75"]


def test_summarize_single_value_and_constant_values():
    # one trial: the spread is unknown, so std and the interval are NaN (as scipy's are), never a
    # zero-width "certain" interval
    one = summarize([0.5])
    assert one["mean"] == 0.5 and one["n"] == 1
    assert math.isnan(one["std"]) and all(math.isnan(x) for x in one["ci95"])
    assert all(math.isnan(x) for x in stats.t.interval(0.95, 0, loc=0.5, scale=np.nan))
    s = summarize([0.7] * 10)
    assert s["std"] == 0.0 and s["ci95"] == [0.7, 0.7]


def test_paired_difference_matches_scipy_ttest_rel():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.9, 60)
    other = base + rng.normal(0.02, 0.01, 60)
    fm = FaultModel(format="int8", ber=0.01)

    def res(acc):
        from sar_core.analysis.campaign import CampaignResult

        return CampaignResult(fm, 1.0, 1.0, 10, accuracy=list(acc), loss=[0.0] * 60, flips=[1] * 60)

    d = paired_difference(res(base), res(other))
    t = stats.ttest_rel(other, base)
    ci = t.confidence_interval(0.95)
    assert d["mean"] == pytest.approx(np.mean(other - base), rel=1e-12)
    assert d["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-10)
    assert d["n"] == 60


# ---------------------------------------------------------------- campaigns on real models ----


def _manual_int8_model(model, spec):
    """A copy of ``model`` whose weight matrices are int8-quantized by hand (numpy)."""
    copy = build_model(spec, 0)
    state = {}
    for k, v in model.state_dict().items():
        w = v.numpy()
        if w.ndim >= 2:
            s = np.float32(np.max(np.abs(w)) / np.float32(127))
            w = np.clip(np.rint(w / s), -127, 127).astype(np.int8).astype(np.float32) * s
        state[k] = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))
    copy.load_state_dict(state)
    return copy


def _accuracy(model, X, y) -> float:
    with torch.no_grad():
        pred = model(torch.from_numpy(X)).argmax(1).numpy()
    return float(np.mean(pred == y))


@pytest.mark.parametrize("stem", ["digits_mlp_sgd", "digits_cnn_sar"])
def test_deployed_int8_accuracy_matches_manual_quantization(demo, digits, stem):
    ck = demo[stem]
    X, y = digits.X_test, digits.y_test
    res = run_campaign(ck.model, X, y, FaultModel(format="int8", ber=1e-4), trials=2)
    manual = _manual_int8_model(ck.model, ck.spec)
    assert res.deployed_accuracy == pytest.approx(_accuracy(manual, X, y), abs=1e-6)
    assert res.clean_accuracy == pytest.approx(_accuracy(ck.model, X, y), abs=1e-6)


def test_trial_accuracy_matches_a_manual_fault_injection(demo, digits_small):
    ck = demo["digits_mlp_sar"]
    X, y = digits_small
    fm = FaultModel(format="float32", bits="exponent", count=3)
    res = run_campaign(ck.model, X, y, fm, trials=4, seed=9)
    shapes = parameter_shapes(ck.model)
    for t in range(4):
        pattern = sample_pattern(shapes, fm, np.random.default_rng([9, t]))
        copy = build_model(ck.spec, 0)
        state = {k: v.clone() for k, v in ck.model.state_dict().items()}
        for name, (idx, bits) in pattern.sites.items():
            u = state[name].numpy().reshape(-1).view(np.uint32)  # a view: edits the clone
            for i, b in zip(idx, bits):
                u[i] ^= np.uint32(1 << int(b))
        copy.load_state_dict(state)
        with torch.no_grad():
            logits = copy(torch.from_numpy(X))
        ok = (logits.argmax(1).numpy() == y) & torch.isfinite(logits).all(1).numpy()
        assert res.accuracy[t] == pytest.approx(float(np.mean(ok)), abs=1e-6)
        assert res.flips[t] == 3


def test_nonfinite_logits_count_as_wrong_and_loss_is_inf():
    # every weight is +-1: flipping float32 bit 30 of any of them gives +-inf
    model = tiny_linear([[1.0, -1.0], [-1.0, 1.0]], [0.1, -0.1])
    X = np.array([[2.0, 0.0], [0.0, 2.0]] * 8, dtype=np.float32)
    y = np.array([0, 1] * 8)
    assert evaluate(model, X, y).accuracy == 1.0
    assert float(np.float32(1.0).view(np.uint32) ^ np.uint32(1 << 30)) == float(
        np.float32("inf").view(np.uint32)
    )
    fm = FaultModel(format="float32", bits=(30,), count=1)
    res = run_campaign(model, X, y, fm, trials=8)
    # half the rows would still have the right argmax (an inf logit on the true class): wrong anyway
    assert res.accuracy == [0.0] * 8
    assert res.loss == [float("inf")] * 8
    s = res.summary()
    assert s["mean_accuracy"] == 0.0 and s["nonfinite_loss_trials"] == 8
    json.loads(dumps(s))  # summaries serialise: inf -> "inf"
    csv = rows_to_csv(res.rows())
    assert csv.splitlines()[0] == "trial,accuracy,loss,flips,changed_bits" and ",inf," in csv


def test_score_logits_rows_with_nan_or_inf_are_wrong():
    logits = torch.tensor(
        [[float("nan"), 0.0], [float("inf"), 0.0], [1.0, 0.0], [-float("inf"), 5]]
    )
    s = score_logits(logits, torch.tensor([0, 0, 0, 1]))
    assert s.accuracy == 0.25 and s.loss == float("inf")


def test_overflowing_loss_with_finite_logits_is_recorded_as_inf():
    model = tiny_linear([[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0])
    params = {
        "out.weight": torch.tensor([[1e38, 0.0], [-1e38, 0.0]]),
        "out.bias": torch.zeros(2),
    }
    X, y = np.array([[3.0, 0.0]], np.float32), np.array([1])
    s = evaluate(model, X, y, params)  # logits +-3e38 are finite, the loss 6e38 is not
    assert s.accuracy == 0.0 and s.loss == float("inf")


def test_summaries_and_exports_survive_nan_and_inf():
    s = summarize([0.5, float("nan"), float("inf")])
    text = dumps(s)
    assert json.loads(text)["mean"] == "nan"
    rows = [{"a": float("nan"), "b": float("-inf"), "c": [1.0, float("inf")], "d": np.float32(2)}]
    assert rows_to_csv(rows).splitlines()[1] == 'nan,-inf,"[1.0, ""inf""]",2.0'


# ---------------------------------------------------------------- compare and sweeps ----------


def test_compare_uses_identical_patterns_and_pairs_against_the_first(demo, digits_small):
    X, y = digits_small
    models = [demo["digits_mlp_sgd"].model, demo["digits_mlp_sar"].model]
    fm = FaultModel(format="int8", ber=0.01)
    out = compare(models, X, y, fm, trials=12, seed=3)
    a, b = out["results"]
    assert a.flips == b.flips and len(a.accuracy) == 12
    assert out["paired_difference"][0]["mean"] == 0.0
    ref = np.asarray(b.accuracy) - np.asarray(a.accuracy)
    assert out["paired_difference"][1]["mean"] == pytest.approx(ref.mean())
    single = run_campaign(models[1], X, y, fm, trials=12, seed=3)
    assert single.accuracy == b.accuracy  # pairing does not change a model's own trials


def test_iter_compare_yields_snapshots_that_later_trials_do_not_change(demo, digits_small):
    X, y = digits_small
    models = [demo["digits_cnn_sgd"].model, demo["digits_cnn_sam"].model]
    fm = FaultModel(format="int8", count=5)
    steps = list(iter_compare(models, X, y, fm, trials=4, seed=2))
    final = run_campaign(models[0], X, y, fm, trials=4, seed=2)
    for t, step in enumerate(steps, 1):
        assert [len(r.accuracy) for r in step] == [t, t]
        assert step[0].accuracy == final.accuracy[:t] and step[0].flips == final.flips[:t]
    assert len({id(step[0]) for step in steps}) == 4  # new objects at every step


def test_iter_compare_with_an_engine_runs_at_fms_rate(demo, digits_small):
    """The engine built at BER 1e-9 runs (and records) the fm it is given, like a fresh one."""
    from sar_core.engine.montecarlo import MonteCarlo

    X, y = digits_small
    models = [demo["digits_mlp_sgd"].model]
    engine = MonteCarlo(models, X, y, FaultModel(format="int8", ber=1e-9))
    fm = FaultModel(format="int8", ber=3e-3)
    got = list(iter_compare(models, X, y, fm, trials=6, seed=4, engine=engine))[-1][0]
    fresh = run_campaign(models[0], X, y, fm, trials=6, seed=4)
    assert got.fault_model == fm and got.summary()["fault_model"]["ber"] == 3e-3
    assert got.flips == fresh.flips and got.accuracy == fresh.accuracy and sum(got.flips) > 0
    other = FaultModel(format="float16", ber=3e-3)
    with pytest.raises(ValueError, match=r"Invalid fm=.*differs in more than the rate"):
        next(iter_compare(models, X, y, other, trials=2, engine=engine))
    with pytest.raises(ValueError, match="Invalid engine: it was built for other model objects"):
        next(iter_compare([demo["digits_mlp_sam"].model], X, y, fm, trials=2, engine=engine))
    with pytest.raises(ValueError, match=r"Invalid options \['memory_mb'\] with engine="):
        next(iter_compare(models, X, y, fm, trials=2, engine=engine, memory_mb=8))


def test_models_of_other_shapes_cannot_be_paired(demo, digits_small):
    X, y = digits_small
    models = [demo["digits_mlp_sgd"].model, demo["digits_cnn_sgd"].model]
    with pytest.raises(ValueError, match="same architecture"):
        compare(models, X, y, FaultModel(format="int8", ber=0.01), trials=2)


def test_sweep_structure_and_shared_trial_seeds(demo, digits_small):
    X, y = digits_small
    models = [demo["digits_mlp_sgd"].model, demo["digits_mlp_sam"].model]
    fm = FaultModel(format="int8", ber=0.01)
    out = sweep(models, X, y, fm, bers=[0.001, 0.05], trials=6, seed=1)
    assert out["ber"] == [0.001, 0.05] and len(out["models"]) == 2
    for m in out["models"]:
        assert len(m["mean_accuracy"]) == len(m["ci95_low"]) == len(m["ci95_high"]) == 2
        assert all(
            lo <= mu <= hi for lo, mu, hi in zip(m["ci95_low"], m["mean_accuracy"], m["ci95_high"])
        )
    # each level equals an independent campaign with the same seed
    ref = run_campaign(models[1], X, y, fm.with_rate(ber=0.05), trials=6, seed=1)
    assert out["models"][1]["mean_accuracy"][1] == pytest.approx(np.mean(ref.accuracy))
    levels = [lvl for lvl, _ in iter_sweep(models, X, y, fm, counts=[1, 4], trials=2)]
    assert levels == [1, 4]


def test_sweep_bits_int8_sign_bit_hurts_most(demo, digits_small):
    X, y = digits_small
    fm = FaultModel(format="int8", count=3000)
    out = sweep_bits(demo["digits_mlp_sgd"].model, X, y, fm, bits=[0, 7], trials=5)
    assert [r["bit"] for r in out] == [0, 7]
    assert out[1]["mean_accuracy"] < out[0]["mean_accuracy"]
    assert all(r["mean_flips"] == 3000 for r in out)


def test_sweep_layers_covers_every_eligible_layer(demo, digits_small):
    X, y = digits_small
    model = demo["digits_cnn_sgd"].model
    fm = FaultModel(format="float16", ber=0.001)
    out = sweep_layers(model, X, y, fm, trials=3)
    assert [r["layer"] for r in out] == ["conv1", "conv2", "out"]
    assert sum(r["n_sites"] for r in out) == Injector(model, fm).n_sites


def test_campaign_at_negligible_ber_equals_deployed(demo, digits_small):
    X, y = digits_small
    res = run_campaign(
        demo["digits_mlp_sgd"].model, X, y, FaultModel(format="int8", ber=1e-12), trials=3
    )
    assert res.flips == [0, 0, 0]
    assert all(math.isclose(a, res.deployed_accuracy) for a in res.accuracy)


def test_figure_curves_read_the_summaries_clamp_the_ci_and_collapse_undefined_bounds():
    """Hand-made sweep points (an overshooting CI, a one-trial NaN CI): the curves recount them."""
    nan = float("nan")

    def summ(mean, lo, hi, deployed):
        return {"mean_accuracy": mean, "ci95": (lo, hi), "deployed_accuracy": deployed}

    points = [
        (1e-3, [summ(0.97, 0.93, 1.02, 0.98), summ(0.5, nan, nan, 0.9)]),
        (1e-2, [summ(0.80, -0.05, 0.95, 0.98), summ(0.4, 0.3, 0.5, 0.9)]),
    ]
    a, b = figure_curves(points, labels=["sgd", "own"], methods=["sgd", "sar"], dashed=[0, 1])
    assert a["x"] == b["x"] == [1e-3, 1e-2]
    assert a["mean"] == [0.97, 0.80] and a["lo"] == [0.93, 0.0] and a["hi"] == [1.0, 0.95]
    assert b["lo"] == [0.5, 0.3] and b["hi"] == [0.5, 0.5]  # NaN bound: onto the mean
    assert (a["dash"], b["dash"]) == ("solid", "dash") and (a["clean"], b["clean"]) == (0.98, 0.9)
    assert (a["label"], b["method"]) == ("sgd", "sar")
    with pytest.raises(ValueError):
        figure_curves(points, labels=["one"], methods=["sgd", "sar"])
