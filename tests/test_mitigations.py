"""Mitigations: range restriction leaves clean predictions alone; protected bits, counted by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sar_core.analysis.campaign import run_campaign
from sar_core.analysis.mitigations import (
    Clamp,
    Protection,
    default_protection,
    extra_bits,
    filter_pattern,
    filtered_campaign,
    inference_ops,
    profile_bounds,
    protected_bit_count,
    protected_campaign,
    range_restricted,
    secded_check_bits,
)
from sar_core.engine.evaluate import as_tensors, logits_of
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel, FaultPattern, parameter_shapes

INT8 = FaultModel(format="int8", ber=0.01)
MLP_WEIGHTS = 64 * 128 + 128 * 64 + 64 * 10  # digits MLP (128, 64): weights only, by hand


@pytest.fixture(scope="module", params=["digits_mlp_sgd", "digits_cnn_sgd"])
def restricted(request, demo, digits):
    model = demo[request.param].model
    deployed = Injector(model, INT8).deployed()
    bounds = profile_bounds(model, digits.X_train, deployed)
    return model, deployed, bounds, range_restricted(model, bounds)


def test_range_restriction_keeps_predictions_on_profiling_data(restricted, digits, digest):
    model, deployed, bounds, rr = restricted
    X, _ = as_tensors(digits.X_train, digits.y_train)
    plain = logits_of(model, deployed, X)
    clamped = logits_of(rr, deployed, X)
    assert torch.equal(plain.argmax(1), clamped.argmax(1))
    assert torch.equal(plain, clamped)  # every activation lies inside its own profiled range
    # same parameter names, so campaigns hit both with the same patterns; no Clamp in the model
    assert [n for n, _ in rr.named_parameters()] == [n for n, _ in model.named_parameters()]
    assert not any(isinstance(m, Clamp) for m in model.modules())
    assert sum(isinstance(m, Clamp) for m in rr.modules()) == len(bounds.layers)


def test_bounds_are_the_activation_extremes(demo, digits):
    model = demo["digits_mlp_sgd"].model
    b = profile_bounds(model, digits.X_train, batch_size=100)  # batching must not matter
    X = torch.as_tensor(digits.X_train)
    with torch.no_grad():
        h1 = torch.relu(model.fc1(X))
        h2 = torch.relu(model.fc2(h1))
    assert b.layers == ("act1", "act2")
    assert b.low == (float(h1.min()), float(h2.min()))
    assert b.high == (float(h1.max()), float(h2.max()))


def test_clamp_cuts_a_faulty_activation(demo, digits):
    model = demo["digits_mlp_sgd"].model
    b = profile_bounds(model, digits.X_train)
    rr = range_restricted(model, b)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    params["fc1.weight"][0, :] = 1e4  # a catastrophic fault on unit 0 of fc1
    X = torch.as_tensor(digits.X_test[:50])
    with torch.no_grad():
        h = torch.relu(torch.nn.functional.linear(X, params["fc1.weight"], params["fc1.bias"]))
        expected_h1 = h.clamp(max=b.high[0])
    with torch.no_grad():
        got = torch.func.functional_call(rr, params, (X,))
        ref = rr.out(rr.act2_clamp(torch.relu(rr.fc2(expected_h1))))
    assert torch.allclose(got, ref, rtol=0, atol=0)


def test_extra_ops_counted_by_hand(restricted):
    model, _, bounds, rr = restricted
    ops = inference_ops(rr, 64)
    plain = inference_ops(model, 64)
    if "fc1.weight" in dict(model.named_parameters()):
        assert ops["clamp_ops"] == 2 * (128 + 64) and plain["macs"] == MLP_WEIGHTS
    else:  # CNN (8, 16): conv outputs 8x8x8 and 16x4x4, clamped before pooling
        assert ops["clamp_ops"] == 2 * (8 * 8 * 8 + 16 * 4 * 4)
        assert plain["macs"] == 8 * 8 * 8 * 9 + 16 * 4 * 4 * 9 * 8 + 64 * 10
    assert plain["clamp_ops"] == 0 and ops["macs"] == plain["macs"]


def test_conv1d_ops_counted_by_hand():
    from sar_core.data.models import ModelSpec, build_model

    spec = ModelSpec(arch="cnn1d", n_features=40, n_classes=10, widths=(4, 6), image_shape=(1, 40))
    model = build_model(spec, 0)
    bounds = profile_bounds(model, np.random.default_rng(0).normal(size=(32, 40)))
    ops = inference_ops(range_restricted(model, bounds), 40)
    # conv1: 4 x 40 outputs, 1 x 5 taps; conv2: 6 x 20 outputs, 4 x 5 taps; out: 6 * 10 -> 10
    assert ops["macs"] == 4 * 40 * 5 + 6 * 20 * 4 * 5 + 6 * 10 * 10
    assert ops["clamp_ops"] == 2 * (4 * 40 + 6 * 20)


@pytest.mark.parametrize("k, r", [(1, 3), (4, 4), (8, 5), (11, 5), (26, 6), (32, 7), (64, 8)])
def test_secded_check_bits_match_known_codes(k, r):
    # extended Hamming: (4,1) repetition+parity, (8,4), (13,8), (16,11), (32,26), (39,32), (72,64)
    assert secded_check_bits(k) == r


def test_extra_bits_hand_count(demo):
    shapes = parameter_shapes(demo["digits_mlp_sgd"].model)
    tmr = Protection(bits=(7,), scheme="tmr")
    assert protected_bit_count(shapes, INT8, tmr) == MLP_WEIGHTS
    assert extra_bits(shapes, INT8, tmr) == 2 * MLP_WEIGHTS
    assert MLP_WEIGHTS % 64 == 0
    assert extra_bits(shapes, INT8, Protection(bits=(7,), scheme="secded")) == MLP_WEIGHTS // 64 * 8
    # 17024 bits in blocks of 1000: 17 full codewords (r+1 = 11) and one of 24 bits (r+1 = 6)
    secded = Protection(bits=(7,), scheme="secded", block=1000)
    assert extra_bits(shapes, INT8, secded) == 17 * 11 + 6
    fp = FaultModel(format="float32", ber=1e-5)
    prot = default_protection("float32")
    assert prot.positions("float32") == (30, 31)
    assert extra_bits(shapes, fp, prot) == 2 * 2 * MLP_WEIGHTS


def _pattern(sites: dict, n_sites: int = 10**6) -> FaultPattern:
    arr = {k: (np.array(i, np.int64), np.array(b, np.int64)) for k, (i, b) in sites.items()}
    return FaultPattern(sites=arr, n_flips=sum(len(i) for i, _ in sites.values()), n_sites=n_sites)


def _as_set(p: FaultPattern) -> set:
    return {(n, int(i), int(b)) for n, (idx, bit) in p.sites.items() for i, b in zip(idx, bit)}


def test_exact_count_tmr_removes_every_protected_site(demo):
    shapes = parameter_shapes(demo["digits_mlp_sgd"].model)
    fm = FaultModel(format="int8", count=4)
    p = _pattern({"fc1.weight": ([3, 3, 9], [7, 2, 7]), "out.weight": ([5], [0])})
    out = filter_pattern(p, shapes, fm, Protection(bits=(7,)), 0)
    assert _as_set(out) == {("fc1.weight", 3, 2), ("out.weight", 5, 0)} and out.n_flips == 2


def test_exact_count_secded_corrects_single_errors_per_codeword(demo):
    shapes = parameter_shapes(demo["digits_mlp_sgd"].model)
    fm = FaultModel(format="int8", count=4)
    sec = Protection(bits=(7,), scheme="secded", block=64)
    # fc1 elements 0 and 63 share codeword 0 (both stay); element 64 is alone in codeword 1;
    # out.weight element 0 is protected bit 64*128 + 128*64 = 16384 -> codeword 256, alone
    p = _pattern({"fc1.weight": ([0, 63, 64], [7, 7, 7]), "out.weight": ([0, 1], [7, 6])})
    out = filter_pattern(p, shapes, fm, sec, 0)
    assert _as_set(out) == {("fc1.weight", 0, 7), ("fc1.weight", 63, 7), ("out.weight", 1, 6)}


def test_tmr_under_ber_fails_at_the_closed_form_rate(demo):
    shapes = parameter_shapes(demo["digits_mlp_sgd"].model)
    p = 0.05
    fm = FaultModel(format="int8", bits=(7,), ber=p)  # only protected sites can be hit
    inj = Injector(demo["digits_mlp_sgd"].model, fm)
    counts = []
    for t in range(40):
        pat = inj.sample(np.random.default_rng([1, t]))
        out = filter_pattern(pat, shapes, fm, Protection(bits=(7,)), np.random.default_rng(t))
        assert len(_as_set(out)) == out.n_flips  # distinct sites
        counts.append(out.n_flips)
    rate = p * (1 - (1 - p) ** 2) + (1 - p) * p**2  # >= 2 of 3 copies wrong
    mean, se = MLP_WEIGHTS * rate, np.sqrt(MLP_WEIGHTS * rate / 40)
    assert abs(np.mean(counts) - mean) < 5 * se
    everything = FaultModel(format="int8", bits=(7,), ber=1.0)  # all copies fail: nothing fixed
    pat = Injector(demo["digits_mlp_sgd"].model, everything).sample(0)
    assert _as_set(filter_pattern(pat, shapes, everything, Protection(bits=(7,)), 0)) == _as_set(
        pat
    )


def test_unfiltered_campaign_reproduces_run_campaign(demo, digits_small):
    model = demo["digits_cnn_sgd"].model
    a = run_campaign(model, *digits_small, INT8, trials=6, seed=4)
    b = filtered_campaign(model, *digits_small, INT8, None, trials=6, seed=4)
    assert a.accuracy == b.accuracy and a.flips == b.flips


def test_protected_campaign_is_paired_and_never_worse_under_exact_counts(demo, digits_small):
    model = demo["digits_mlp_sgd"].model
    fm = FaultModel(format="int8", count=30)
    plain = run_campaign(model, *digits_small, fm, trials=8, seed=2)
    prot = protected_campaign(model, *digits_small, fm, Protection(bits="0-7"), trials=8, seed=2)
    assert prot.flips == [0] * 8 and all(a == prot.deployed_accuracy for a in prot.accuracy)
    assert plain.flips == [30] * 8


def test_bad_inputs(demo):
    with pytest.raises(ValueError, match="Invalid scheme"):
        Protection(bits=(7,), scheme="parity")
    with pytest.raises(ValueError, match="Invalid block"):
        Protection(bits=(7,), scheme="secded", block=0)
    with pytest.raises(ValueError, match="Invalid bits"):
        Protection(bits=(9,)).positions("int8")
