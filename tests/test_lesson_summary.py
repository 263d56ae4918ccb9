"""The lesson's readings of raw numbers (sar_core.analysis.lesson_summary), against independent
references: scipy's t interval, numpy bit views of int8 codes, and hand-built campaigns whose
right answer is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sar_core.analysis.lesson_summary import (
    compare_lost,
    compare_rise,
    int8_steps,
    noise,
    summarize_level,
    useful_rates,
)


def model(acc, *, deployed=0.9, loss=None, dloss=0.3, changed=None, clean=None) -> dict:
    acc = list(map(float, acc))
    return {
        "clean_accuracy": deployed if clean is None else clean,
        "deployed_accuracy": deployed,
        "deployed_loss": dloss,
        "accuracy": acc,
        "loss": list(
            map(float, loss if loss is not None else [dloss + (deployed - a) for a in acc])
        ),
        "flips": [5] * len(acc) if changed is None else list(changed),
        "changed": [5] * len(acc) if changed is None else list(changed),
    }


def raw(level, *models) -> dict:
    return {"level": level, "n_sites": 1000, "models": list(models)}


def scipy_interval(d):
    d = np.asarray(d, dtype=np.float64)
    return stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=stats.sem(d))


def test_lost_difference_is_a_paired_t_interval_in_points():
    rng = np.random.default_rng(0)
    a = 0.8 + 0.03 * rng.standard_normal(30)
    b = a + 0.02 + 0.01 * rng.standard_normal(30)
    res = compare_lost(model(a, deployed=0.95), model(b, deployed=0.96), no_flips=False)
    d = (b - 0.96) - (a - 0.95)  # accuracy lost by b minus lost by a, per pattern
    lo, hi = scipy_interval(100 * d)
    assert res["diff"]["mean"] == pytest.approx(100 * d.mean())
    assert (res["diff"]["lo"], res["diff"]["hi"]) == pytest.approx((lo, hi))
    want = "loses less" if lo > 0 else ("loses more" if hi < 0 else "no measurable difference")
    assert res["state"] == want


def test_a_clean_accuracy_lead_is_not_robustness():
    """b is 2 points better without faults and loses exactly as much as a under every pattern:
    comparing faulty accuracy would call b better; accuracy LOST says no difference."""
    rng = np.random.default_rng(1)
    a = 0.7 + 0.05 * rng.standard_normal(20)
    res = compare_lost(model(a, deployed=0.90), model(a + 0.02, deployed=0.92), no_flips=False)
    assert res["diff"]["mean"] == pytest.approx(0.0, abs=1e-9)
    assert res["state"] == "no measurable difference"


def test_no_flips_says_so_whatever_the_numbers():
    m0 = model([0.9] * 20, changed=[0] * 20)
    m1 = model([0.95] * 20, deployed=0.95, changed=[0] * 20)
    s = summarize_level(raw(1e-7, m0, m1))
    assert s["no_flips"] and s["models"][1]["vs_first"]["state"] == "no bits flipped"
    assert s["models"][1]["flat_vs_first"]["state"] == "no bits flipped"


def test_one_pattern_is_too_few_to_call_a_model_flatter():
    res = compare_rise(model([0.8], loss=[0.9]), model([0.85], loss=[0.4]), no_flips=False)
    assert res["state"] == "too few trials"


def test_flatter_needs_the_whole_interval_over_many_patterns():
    rng = np.random.default_rng(2)
    ra = 0.5 + 0.1 * rng.random(40)
    rb = ra - 0.2 + 0.02 * rng.standard_normal(40)  # b's loss rises clearly less
    res = compare_rise(
        model([0.8] * 40, loss=0.3 + ra), model([0.8] * 40, loss=0.3 + rb), no_flips=False
    )
    lo, hi = scipy_interval(rb - ra)
    assert (res["diff"]["lo"], res["diff"]["hi"]) == pytest.approx((lo, hi))
    assert hi < 0 and res["state"] == "flatter"
    same = compare_rise(
        model([0.8] * 40, loss=0.3 + ra), model([0.8] * 40, loss=0.3 + ra[::-1]), no_flips=False
    )
    assert same["state"] == "no measurable difference"


def test_an_infinite_loss_is_named_not_averaged():
    res = compare_rise(
        model([0.1, 0.8, 0.8], loss=[math.inf, 0.5, 0.6]),
        model([0.8] * 3, loss=[0.4] * 3),
        no_flips=False,
    )
    assert res["state"] == "infinite" and res["nonfinite_trials"] == 1


def test_noise_flags_a_curve_that_rises_with_the_rate():
    lv = [
        summarize_level(raw(0.01, model([0.80, 0.82, 0.81]), model([0.85, 0.84, 0.86]))),
        summarize_level(raw(0.02, model([0.88, 0.86, 0.87]), model([0.80, 0.81, 0.79]))),
    ]
    nz = noise(lv, 0.02)
    assert nz["wiggle"] == pytest.approx(100 * (0.87 - 0.81)) and nz["warn"]
    calm = [
        summarize_level(raw(0.01, model([0.80, 0.81, 0.80]), model([0.60, 0.61, 0.60]))),
        summarize_level(raw(0.02, model([0.70, 0.71, 0.70]), model([0.50, 0.51, 0.50]))),
    ]
    assert not noise(calm, 0.02)["warn"]


def test_useful_rates_drop_dead_ends_at_both_ends():
    levels = [
        summarize_level(
            raw(1e-7, model([0.9] * 4, changed=[0] * 4), model([0.9] * 4, changed=[0] * 4))
        ),
        summarize_level(raw(1e-3, model([0.88, 0.87, 0.86, 0.88]), model([0.9] * 4))),
        summarize_level(raw(1e-2, model([0.5, 0.52, 0.49, 0.5]), model([0.7] * 4))),
        summarize_level(raw(1e-1, model([0.1] * 4), model([0.11] * 4))),  # both at chance
    ]
    assert useful_rates(levels) == [1e-3, 1e-2]


def test_int8_step_and_bit7_move_match_numpy_bit_views():
    rng = np.random.default_rng(3)
    weights = {
        "a": rng.normal(0, 0.3, (16, 8)).astype(np.float32),
        "b": rng.uniform(-0.1, 0.1, (4, 16)).astype(np.float32),
    }
    got = int8_steps(weights)
    moves, steps = [], []
    for w in weights.values():
        s = np.float32(np.abs(w).max() / np.float32(127))
        q = np.clip(np.round(w / s), -128, 127).astype(np.int8)
        flipped = (q.view(np.uint8) ^ np.uint8(0x80)).view(np.int8)  # bit 7 of the stored byte
        moves.append(np.abs(flipped.astype(np.float64) - q.astype(np.float64)) * float(s))
        steps.append(float(s))
    allm = np.concatenate([m.ravel() for m in moves])
    assert got["step"] == pytest.approx(max(steps), rel=1e-6)
    assert got["bit7_move_max"] == pytest.approx(allm.max(), rel=1e-6)
    assert got["bit7_move_median"] == pytest.approx(np.median(allm), rel=1e-6)
    assert got["max_abs_w"] == pytest.approx(max(float(np.abs(w).max()) for w in weights.values()))
