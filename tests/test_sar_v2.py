"""SAR v2: geometry and radius derived from the target fault model, checked against references.

References: per-bit displacements from sar_core.formats.bits (NumPy bit views, an independent code path
from the closed-form tables in fault_geometry.fault_intensity), Monte Carlo fault perturbations from
sar_core.faults.model, and the ascent formula computed by hand in float64.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel
from sar_core.formats import bits as B
from sar_core.training import float_intensity
from sar_core.training.fault_geometry import describe_sar, expected_flips, fault_intensity
from sar_core.training.loop import TrainConfig, train
from sar_core.training.optim import SAR


def _reference_t(
    w: np.ndarray, fm: FaultModel, kept: tuple[int, ...], span: float | None = 2.0
) -> np.ndarray:
    """RMS over ``kept`` bits of d = |decode(encode(w) ^ (1 << b)) - decode(encode(w))|, via
    NumPy, where a flip with d > ``span`` x max|stored w| counts 0 (None: every flip counts)."""
    scale = B.int8_scale(w, fm.granularity) if fm.format == "int8" else None
    codes = B.encode(w, fm.format, scale)
    base = B.decode(codes, fm.format, scale).astype(np.float64)
    limit = np.inf if span is None else span * np.abs(base).max()
    sq = np.zeros_like(base)
    for b in kept:
        flipped = codes ^ codes.dtype.type(1 << b)
        with np.errstate(over="ignore", invalid="ignore"):
            d = np.abs(B.decode(flipped, fm.format, scale).astype(np.float64) - base)
        sq += np.where(d <= limit, d, 0.0) ** 2  # NaN / inf compare False
    return np.sqrt(sq / len(kept))


@pytest.mark.parametrize(
    "fmt, bits, gran",
    [
        ("int8", None, "tensor"),
        ("int8", (0, 3, 7), "channel"),
        ("float16", "0-13,15", "tensor"),  # all but the exponent MSB (bit 14)
        ("bfloat16", "0-13,15", "tensor"),
        ("float32", "0-29,31", "tensor"),
        ("float16", "mantissa", "tensor"),
    ],
)
def test_intensity_matches_per_bit_flips_from_numpy_bit_views(fmt, bits, gran):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((6, 9)) * rng.choice([0.002, 0.05, 0.7], size=(6, 9))).astype(
        np.float32
    )
    fm = FaultModel(format=fmt, bits=bits, ber=0.01, granularity=gran)
    t = fault_intensity(torch.from_numpy(w), fm).double().numpy()
    ref = _reference_t(w, fm, fm.bits)
    np.testing.assert_allclose(t, ref, rtol=2e-3)


def test_exponent_msb_is_left_out_of_the_geometry_and_reported():
    fm = FaultModel(format="float16", ber=1e-3)  # all 16 bits
    w = torch.full((4, 5), 0.1)
    np.testing.assert_allclose(
        fault_intensity(w, fm).numpy(),
        _reference_t(w.numpy(), fm, tuple(b for b in range(16) if b != 14)),
        rtol=2e-3,
    )
    model = nn.Sequential(nn.Linear(5, 4))
    d = describe_sar(model, fm, rho=0.5)
    assert d["excluded_bits"] == [14] and 14 not in d["covered_bits"]
    assert d["expected_flips"] == pytest.approx(1e-3 * 20 * 15)
    assert d["expected_excluded_flips"] == pytest.approx(1e-3 * 20)
    assert d["p_any_excluded_flip"] == pytest.approx(1 - (1 - 1e-3) ** 20)
    assert d["rho"] == pytest.approx(0.5 * math.sqrt(1e-3 * 20 * 15))
    with pytest.raises(ValueError, match="catastrophic"):
        fault_intensity(w, FaultModel(format="float16", bits=(14,), ber=1e-3))


@pytest.mark.parametrize(
    "fmt, bits", [("float16", "0-13,15"), ("bfloat16", "0-13,15"), ("float32", "0-29,31")]
)
def test_float_flips_beyond_twice_the_range_are_left_out_of_t_and_reported(fmt, bits):
    """Weights of |w| >= 2 (an exponent flip multiplies them by up to 2^(2^j)) and tiny ones:
    T equals the NumPy reference that drops flips moving a weight by more than 2 max|W|, those
    flips are counted by describe_sar, and without the rule T would be orders larger."""
    w = torch.tensor([[2.5, -3.0, 0.4, 1e-3, 3e-6], [0.0, -0.07, 1.9, 2.0, 0.6667]])
    fm = FaultModel(format=fmt, bits=bits, ber=1e-4)
    t = fault_intensity(w, fm).double().numpy()
    np.testing.assert_allclose(t, _reference_t(w.numpy(), fm, fm.bits), rtol=2e-3)
    # float16: every element subnormal or zero (max|W| tiny: mantissa flips move farther than
    # 2 max|W|), then large ones whose upward flips land on inf; other formats: tiny and large
    for scale in (1e-5, 1e4) if fmt == "float16" else (1e-3, 1e3):
        ws = w * scale
        ref = _reference_t(ws.numpy(), fm, fm.bits)
        np.testing.assert_allclose(fault_intensity(ws, fm).double().numpy(), ref, rtol=2e-3)
    zero = fault_intensity(torch.zeros(3, 2), fm).double().numpy()
    np.testing.assert_allclose(zero, _reference_t(np.zeros((3, 2), np.float32), fm, fm.bits))
    assert t.max() <= 2 * 3.0  # no flip counted moves a weight farther than 2 max|W|
    every = _reference_t(w.numpy(), fm, fm.bits, span=None)
    assert every[0, 0] > 30 * t[0, 0]  # 2.5: its upward exponent flips dominated the RMS
    span = float_intensity.UNCOVERED_SPAN
    try:  # the rule off: every flip counts, as before it
        float_intensity.UNCOVERED_SPAN = float("inf")
        off = fault_intensity(w, fm).double().numpy()
        fits = every < 1e18  # T^2 in float32 (a x 2^64 flip of 2.5 does not fit: clamped)
        np.testing.assert_allclose(off[fits], every[fits], rtol=2e-3)
        assert (off[~fits] >= 1e18).all()
    finally:
        float_intensity.UNCOVERED_SPAN = span
    model = nn.Sequential(nn.Linear(5, 2))
    with torch.no_grad():
        model[0].weight.copy_(w)
    d = describe_sar(model, fm, rho=1.0)
    codes = B.encode(w.numpy(), fm.format)
    base = np.abs(B.decode(codes, fm.format).astype(np.float64))
    n_out = 0
    for b in fm.bits:
        with np.errstate(over="ignore", invalid="ignore"):
            flipped = B.decode(codes ^ codes.dtype.type(1 << b), fm.format).astype(np.float64)
            n_out += int((~(np.abs(flipped - np.sign(w.numpy()) * base) <= 2 * base.max())).sum())
    assert d["uncovered_sites"] == d["layers"][0]["uncovered_sites"] == n_out > 0


@pytest.mark.parametrize("fmt", ["float16", "bfloat16", "float32"])
def test_intensities_of_several_tensors_in_one_pass_equal_each_alone(fmt):
    """SAR computes T of all eligible tensors at once: each tensor keeps its own 2 max|W| span
    (maxima 0.3, 3.0 and 2e-4 here), zeros and subnormals included, bit for bit."""
    from sar_core.training.fault_geometry import fault_intensities

    g = torch.Generator().manual_seed(1)
    ws = [
        torch.randn(7, 5, generator=g) * 0.1,
        torch.tensor([[2.5, -3.0, 0.4], [0.0, 1e-6, -0.9]]),
        torch.randn(13, generator=g) * 1e-4,
    ]
    ws[2][3] = 0.0
    fm = FaultModel(format=fmt, bits="0-13,15" if fmt != "float32" else "0-29,31", ber=1e-4)
    batch = fault_intensities(ws, fm)
    for w, t in zip(ws, batch):
        assert t.shape == w.shape
        assert torch.equal(t, fault_intensity(w, fm))
        np.testing.assert_allclose(
            t.double().numpy(), _reference_t(w.numpy(), fm, fm.bits), rtol=2e-3
        )


def test_int8_flips_stay_within_twice_the_range():
    """The 2 max|W| rule leaves the int8 geometry unchanged: no int8 flip moves that far."""
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((5, 7)) * 0.3).astype(np.float32)
    for gran in ("tensor", "channel"):
        fm = FaultModel(format="int8", ber=0.01, granularity=gran)
        ref = _reference_t(w, fm, fm.bits, span=None)
        np.testing.assert_array_equal(_reference_t(w, fm, fm.bits), ref)
        np.testing.assert_allclose(fault_intensity(torch.from_numpy(w), fm).numpy(), ref, rtol=1e-5)


def test_int8_geometry_is_the_quantization_step_times_rms_dq():
    w = torch.tensor([[0.5, -0.25], [0.1, 0.0]])
    fm = FaultModel(format="int8", bits=(0, 7), ber=0.01)
    s = 0.5 / 127
    expected = s * math.sqrt((1**2 + 128**2) / 2)
    np.testing.assert_allclose(fault_intensity(w, fm).numpy(), np.full((2, 2), expected), rtol=1e-6)


def test_occurrence_radius_is_the_expected_normalised_fault_norm():
    """E ||T^-1 D||^2 over sampled int8 fault patterns equals E[n] = p * N_sites."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4))
    fm = FaultModel(format="int8", ber=0.02)
    inj = Injector(model, fm)
    ts = {n: fault_intensity(p.detach(), fm) for n, p in model.named_parameters() if p.dim() > 1}
    vals = []
    for k in range(300):
        d = inj.perturbation(inj.sample(np.random.default_rng([5, k])))
        vals.append(sum(float(((d[n] / ts[n]) ** 2).sum()) for n in ts))
    e_n, _ = expected_flips(fm, 20 * 30 + 30 * 4)
    assert e_n == pytest.approx(0.02 * 720 * 8)
    se = np.std(vals, ddof=1) / np.sqrt(len(vals))
    assert abs(np.mean(vals) - e_n) < 4 * se + 1e-9


def _setup():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    X, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    return model, X, y


@pytest.mark.parametrize(
    "fm", [FaultModel(format="int8", ber=0.01), FaultModel(format="float16", ber=1e-3)]
)
def test_fault_ascent_step_matches_the_formula(fm):
    model, X, y = _setup()
    w0 = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    opt = SAR(
        model.named_parameters(), torch.optim.SGD, rho=0.3, geometry="fault", fault_model=fm, lr=0.1
    )
    F.cross_entropy(model(X), y).backward()
    g = {n: p.grad.detach().double().clone() for n, p in model.named_parameters()}
    kept = tuple(b for b in fm.bits if not (fm.format == "float16" and b == 14))
    t = {
        n: torch.from_numpy(_reference_t(w0[n].float().numpy(), fm, kept))
        if w0[n].dim() > 1
        else torch.zeros_like(w0[n])  # biases: not eligible, no ascent
        for n in w0
    }
    n_w = 6 * 8 + 8 * 3
    r = 0.3 * math.sqrt(fm.ber * n_w * len(kept))
    norm = math.sqrt(sum(float(((t[n] * g[n]) ** 2).sum()) for n in w0))
    opt.first_step()
    for n, p in model.named_parameters():
        e = r * t[n] ** 2 * g[n] / norm
        np.testing.assert_allclose(p.detach().double() - w0[n], e, rtol=5e-3, atol=1e-7)


def test_rho_zero_fault_geometry_training_equals_sgd_bit_exactly(digits):
    fm = FaultModel(format="int8", ber=0.01)
    from sar_core.training.loop import spec_for

    spec = spec_for(digits, "mlp", widths=(16,))
    a = train(spec, digits, TrainConfig(method="sgd", epochs=2, seed=3))
    b = train(
        spec,
        digits,
        TrainConfig(method="sar", geometry="fault", rho=0.0, fault_model=fm, epochs=2, seed=3),
    )
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))


def test_two_target_fault_models_give_two_checkpoints_from_the_same_seed(digits):
    from sar_core.training.loop import spec_for

    spec = spec_for(digits, "mlp", widths=(16,))
    base = dict(method="sar", geometry="fault", rho=0.02, epochs=2, seed=3)
    targets = [
        FaultModel(format="int8", ber=0.01),
        FaultModel(format="int8", ber=0.03),  # same geometry, other radius
        FaultModel(format="float16", ber=1e-4),  # other geometry
    ]
    models = [train(spec, digits, TrainConfig(fault_model=fm, **base)).model for fm in targets]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not all(
                torch.equal(p, q) for p, q in zip(models[i].parameters(), models[j].parameters())
            )


def test_describe_sar_int8_layers_and_radius():
    model, _, _ = _setup()
    fm = FaultModel(format="int8", ber=0.01)
    d = describe_sar(model, fm, rho=0.1)
    assert d["covered_bits"] == list(range(8)) and d["excluded_bits"] == []
    assert d["eligible_weights"] == 6 * 8 + 8 * 3
    assert d["expected_flips"] == pytest.approx(0.01 * 72 * 8)
    assert d["fault_radius"] == pytest.approx(math.sqrt(0.01 * 72 * 8))
    rows = {r["name"]: r for r in d["layers"]}
    assert not rows["0.bias"]["eligible"] and rows["0.weight"]["eligible"]
    s = float(model[0].weight.detach().abs().max()) / 127
    assert rows["0.weight"]["t_mean"] == pytest.approx(s * math.sqrt(21845 / 8), rel=1e-5)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda m: SAR(m.parameters(), geometry="fault", lr=0.1), "fault_model"),
        (
            lambda m: SAR(
                m.parameters(),
                geometry="fault",
                lr=0.1,
                fault_model=FaultModel("int8", ber=0.1, layers=("0",)),
            ),
            "named_parameters",
        ),
        (
            lambda m: TrainConfig(method="sar", geometry="fault", rho_mode="calibrated"),
            "calibrated",
        ),
    ],
)
def test_bad_sar_v2_settings_are_clear_errors(make, match):
    model, _, _ = _setup()
    with pytest.raises(ValueError, match=match):
        make(model)


def test_describe_sar_accepts_a_spec_and_varies_with_the_target():
    from sar_core.data.models import ModelSpec, build_model

    spec = ModelSpec(arch="mlp", n_features=6, n_classes=3, widths=(8,))
    fm8, fm16 = FaultModel(format="int8", ber=0.01), FaultModel(format="float16", ber=1e-3)
    a = describe_sar(spec, fm8, rho=0.1, seed=2)
    assert a == describe_sar(build_model(spec, 2), fm8, rho=0.1)
    b = describe_sar(spec, fm16, rho=0.1, seed=2)
    assert a["rho"] != b["rho"] and a["layers"] != b["layers"]
    assert json.loads(json.dumps(a)) == a  # JSON-ready for the dashboard
    with pytest.raises(ValueError, match="model"):
        describe_sar("mlp", fm8)


@pytest.mark.parametrize(
    "target",
    [
        dict(format="int8", ber=0.01, kind="stuck-at-1"),
        dict(format="int8", ber=0.01, burst=2),
        dict(format="int8", ber_01=0.01, ber_10=0.02),
    ],
)
def test_sar_fault_geometry_refuses_fault_kinds_it_does_not_define(target):
    """SAR v2's geometry is defined for independent weight flips; other kinds get a clear error."""
    from sar_core.faults.model import FaultModel
    from sar_core.training.loop import TrainConfig

    fm = FaultModel(**target)
    with pytest.raises(ValueError, match="SAR's fault geometry"):
        TrainConfig(method="sar", geometry="fault", fault_model=fm)
    TrainConfig(method="fat", fault_model=fm)  # fault-aware training samples any weight kind


def test_training_refuses_activation_targets():
    from sar_core.faults.model import FaultModel
    from sar_core.training.loop import TrainConfig

    with pytest.raises(ValueError, match="target='weights'"):
        TrainConfig(method="fat", fault_model=FaultModel(ber=1e-3, target="activations"))
