"""Sharpness measures against a dense Hessian, scipy's constrained optimum and the campaign module."""

from __future__ import annotations

import copy
import hashlib
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from sar_core.analysis import sharpness as S
from sar_core.data.models import ModelSpec, build_model
from sar_core.faults.model import FaultModel


@pytest.fixture(scope="module")
def tiny():
    """A smooth (tanh) 4-6-3 MLP, 40 rows of data, and its dense float64 Hessian (51 x 51)."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 4, generator=gen)
    y = torch.randint(0, 3, (40,), generator=gen)
    model = build_model(ModelSpec(n_features=4, n_classes=3, widths=(6,), activation="tanh"), 1)
    ref = copy.deepcopy(model).double()  # independent float64 reference
    theta64, loss64 = S.flat_loss(ref, X.double(), y)
    H = torch.autograd.functional.hessian(loss64, theta64)
    return model, X, y, H, theta64, loss64


def param_hash(model):
    h = hashlib.sha256()
    for n, p in model.named_parameters():
        h.update(n.encode() + p.detach().numpy().tobytes())
    return h.hexdigest()


def top_algebraic(H, k):
    return torch.linalg.eigvalsh(H).flip(0)[:k].tolist()


def test_lambda_max_default_args_within_1pct(tiny):
    model, X, y, H, *_ = tiny
    (lam,) = S.hessian_eigenvalues(model, X, y)
    assert lam == pytest.approx(top_algebraic(H, 1)[0], rel=0.01)


def test_top_k_lanczos_within_1pct(tiny):
    model, X, y, H, *_ = tiny
    eigs = S.hessian_eigenvalues(model, X, y, k=3, iters=1000, tol=1e-8, seed=4)
    np.testing.assert_allclose(eigs, top_algebraic(H, 3), rtol=0.01)


@pytest.fixture(scope="module")
def wine_untrained():
    """Untrained wine 13-6-3 tanh MLPs whose dense Hessian has |lambda_min| > lambda_max > 0."""
    from sar_core.data.datasets import load_dataset

    d = load_dataset("wine", seed=0)
    X, y = torch.tensor(d.X_train, dtype=torch.float32), torch.tensor(d.y_train)
    spec = ModelSpec(n_features=13, n_classes=3, widths=(6,), activation="tanh")
    found = []
    for seed in range(40):
        model = build_model(spec, seed)
        theta64, loss64 = S.flat_loss(copy.deepcopy(model).double(), X.double(), y)
        ev = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss64, theta64))
        if ev[0] < 0 < ev[-1] < -ev[0]:  # mixed signs; the largest |lambda| is negative
            found.append((model, ev))
        if len(found) == 2:
            break
    assert len(found) == 2, "no mixed-sign case among 40 seeds"
    return X, y, found


def test_lambda_max_is_the_largest_algebraic_eigenvalue_on_mixed_spectra(wine_untrained):
    X, y, found = wine_untrained
    for model, ev in found:
        r = S.lanczos_extremes(model, X, y, tol=1e-6)
        assert r["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-3)
        assert r["lambda_min"] == pytest.approx(float(ev[0]), rel=1e-3)
        assert r["n_hvp"] <= ev.numel() and r["converged"]
        rep = S.sharpness_report(model, X, y)
        assert rep["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-2) and rep["lambda_max"] > 0
        assert rep["lambda_min"] == pytest.approx(float(ev[0]), rel=1e-2)


def test_hvp_graph_matches_the_dense_hessian(tiny):
    model, X, y, H, *_ = tiny
    P, hvp = S.hvp_graph(model, X, y)
    cols = torch.stack([hvp(e) for e in torch.eye(P)], dim=1)
    torch.testing.assert_close(cols.double(), H, rtol=1e-4, atol=1e-5)


def test_hutchpp_is_exact_when_the_deflation_spans_the_space_and_unbiased_otherwise(tiny):
    model, X, y, H, *_ = tiny
    P = H.shape[0]
    full = S.hessian_trace(model, X, y, samples=4, deflate=P, rel_ci=0)
    assert full["mean"] == pytest.approx(float(H.trace()), rel=1e-4, abs=1e-5)
    assert full["n_hvp"] == 4 + 2 * P
    r = S.hessian_trace(model, X, y, samples=400, deflate=4, seed=2, rel_ci=0)
    assert r["ci95"][0] - 1e-6 <= float(H.trace()) <= r["ci95"][1] + 1e-6 or abs(
        r["mean"] - float(H.trace())
    ) <= 2 * (r["ci95"][1] - r["mean"])


def test_trace_stopping_rule_uses_fewer_probes_when_they_agree(tiny):
    model, X, y, H, *_ = tiny
    fixed = S.hessian_trace(model, X, y, samples=64, seed=3, rel_ci=0)
    assert fixed["n_probes"] == 64 and not fixed["stopped_early"]
    half = fixed["ci95"][1] - fixed["mean"]
    rel = half / abs(fixed["mean"])
    rule = S.hessian_trace(model, X, y, samples=64, seed=3, rel_ci=rel)
    assert rule["n_probes"] < 64 and rule["stopped_early"]
    assert rule["ci95"][1] - rule["mean"] <= rel * abs(rule["mean"])  # the CI it stopped at
    # same probes in the same order: the stopped run is a prefix of the fixed one
    var = 2 * float((H**2).sum() - (H.diagonal() ** 2).sum())
    assert abs(rule["mean"] - float(H.trace())) <= 4 * math.sqrt(var / rule["n_probes"])


def test_trace_chunks_batch_the_same_probes(tiny):
    """chunk_size batches the products: the same probes in the same order, so the same estimate
    to float32 rounding; the stopping rule is checked after each chunk."""
    model, X, y, H, *_ = tiny
    one = S.hessian_trace(model, X, y, samples=24, seed=5, rel_ci=0, deflate=3)
    four = S.hessian_trace(model, X, y, samples=24, seed=5, rel_ci=0, deflate=3, chunk_size=4)
    assert one["n_hvp"] == four["n_hvp"] == 24 + 6
    assert four["mean"] == pytest.approx(one["mean"], rel=1e-5)
    assert four["std"] == pytest.approx(one["std"], rel=1e-4)
    fixed = S.hessian_trace(model, X, y, samples=64, seed=3, rel_ci=0)
    rel = 1.5 * (fixed["ci95"][1] - fixed["mean"]) / abs(fixed["mean"])
    rule = S.hessian_trace(model, X, y, samples=64, seed=3, rel_ci=rel, chunk_size=5)
    assert rule["stopped_early"] and rule["n_probes"] % 5 == 0


def test_lanczos_reports_the_rule_that_stopped_it(tiny):
    model, X, y, H, *_ = tiny
    P = H.shape[0]
    assert S.lanczos_extremes(model, X, y, iters=3)["stop"] == "iters"
    r = S.lanczos_extremes(model, X, y, tol=0.0, iters=10 * P)  # only exact stops remain
    assert r["stop"] != "iters" and r["converged"] and r["n_hvp"] <= P
    assert r["lambda_max"] == pytest.approx(top_algebraic(H, 1)[0], rel=1e-4)
    assert S.lanczos_extremes(model, X, y, tol=1e-3)["stop"] in ("residual", "stalled")


def test_sam_one_step_is_the_sam_ascent_and_asam_ascent(tiny):
    model, X, y, _, theta64, loss64 = tiny
    rho = 0.1
    th = theta64.detach().clone().requires_grad_(True)
    g = torch.autograd.grad(loss64(th), th)[0].detach()
    base = float(loss64(theta64.detach()))
    ref = float(loss64(theta64.detach() + rho * g / g.norm())) - base
    assert S.sam_sharpness(model, X, y, rho=rho, steps=1) == pytest.approx(ref, rel=1e-3)
    t = theta64.detach().abs() + 0.01  # ASAM: e = rho T^2 g / ||T g||
    ref_a = float(loss64(theta64.detach() + rho * t * t * g / (t * g).norm())) - base
    got = S.sam_sharpness(model, X, y, rho=rho, steps=1, adaptive=True)
    assert got == pytest.approx(ref_a, rel=1e-3)


def test_sam_sharpness_matches_scipy_constrained_maximum(tiny):
    model, X, y, _, theta64, loss64 = tiny
    rho = 0.2
    th = theta64.detach()
    base = float(loss64(th))

    def neg(e):
        et = torch.tensor(e, dtype=torch.float64, requires_grad=True)
        val = -loss64(th + et)
        (gr,) = torch.autograd.grad(val, et)
        return float(val.detach()), gr.numpy()

    x0 = np.full(th.numel(), rho / math.sqrt(th.numel()) / 2)
    cons = {"type": "ineq", "fun": lambda e: rho**2 - e @ e, "jac": lambda e: -2 * e}
    opt = minimize(neg, x0, jac=True, constraints=[cons], method="SLSQP", tol=1e-12)
    best = -opt.fun - base
    got = S.sam_sharpness(model, X, y, rho=rho, steps=20)
    assert got <= best * 1.01 + 1e-6  # cannot beat the constrained optimum
    assert got >= best * 0.97  # and a few ascent steps get close to it


def test_average_sharpness_matches_second_order_expectation(tiny):
    model, X, y, H, *_ = tiny
    rho, n = 0.01, 2000
    r = S.average_sharpness(model, X, y, rho=rho, samples=n, seed=2)
    P = H.shape[0]
    tr, tr2 = float(H.trace()), float((H @ H).trace())
    # E_u[u^T H u] = tr(H)/P on the unit sphere; Var = 2 (tr(H^2) - tr(H)^2/P) / (P (P + 2))
    expected = rho**2 / 2 * tr / P
    se = rho**2 / 2 * math.sqrt(2 * (tr2 - tr**2 / P) / (P * (P + 2)) / n)
    assert abs(r["mean"] - expected) <= 4 * se + 1e-3 * expected


def _naive_int8_loss_increases(model, X, y, ber: float, trials: int, seed: int) -> np.ndarray:
    """A plain loop, independent of sar_core's injector and engine: per trial, a copy of the
    model gets int8 weights (per-tensor scale max|w|/127) with the sampled bits flipped through
    numpy uint8 views; L(faulty) - L(deployed) from an ordinary forward pass.

    Sites as documented in sar_core.faults.model: the 2-D weights in model order, element-major,
    site = element * 8 + bit; n ~ Binomial(N, ber), then n distinct sites, from rng([seed, t])."""
    names = [n for n, p in model.named_parameters() if p.dim() == 2]
    w = {n: p.detach().numpy() for n, p in model.named_parameters()}
    scale = {n: np.float32(np.abs(w[n]).max() / np.float32(127)) for n in names}
    q = {n: np.clip(np.rint(w[n] / scale[n]), -127, 127).astype(np.int8) for n in names}
    sizes = [q[n].size for n in names]
    starts = np.cumsum([0] + sizes)

    def loss_with(codes: dict) -> float:
        m = copy.deepcopy(model)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if n in codes:
                    p.copy_(torch.from_numpy(codes[n].astype(np.float32) * scale[n]))
            return float(torch.nn.functional.cross_entropy(m(X), y))

    deployed = loss_with(q)
    out = []
    for t in range(trials):
        rng = np.random.default_rng([seed, t])
        n_sites = int(starts[-1]) * 8
        k = int(rng.binomial(n_sites, ber))
        sites = rng.choice(n_sites, size=k, replace=False) if k else np.zeros(0, np.int64)
        codes = {n: q[n].copy() for n in names}
        for site in sites.tolist():
            elem, bit = divmod(site, 8)
            j = int(np.searchsorted(starts, elem, side="right")) - 1
            flat = codes[names[j]].reshape(-1).view(np.uint8)  # a view: writes reach codes
            flat[elem - starts[j]] ^= np.uint8(1 << bit)
        out.append(loss_with(codes) - deployed)
    return np.array(out)


def test_fault_sharpness_matches_a_naive_bit_flip_loop(tiny):
    model, X, y, *_ = tiny
    fm = FaultModel(format="int8", ber=0.05)
    r = S.fault_sharpness(model, X, y, fm, trials=20, seed=5)
    ref = _naive_int8_loss_increases(model, X, y, 0.05, trials=20, seed=5)
    assert np.isfinite(ref).all() and np.ptp(ref) > 0  # real, varied increases
    assert r["mean"] == pytest.approx(float(np.mean(ref)), rel=1e-5, abs=1e-7)
    assert r["nonfinite_trials"] == 0 and r["ci95"][0] <= r["mean"] <= r["ci95"][1]


def test_fault_sharpness_counts_nonfinite_trials(tiny):
    model, X, y, *_ = tiny
    fm = FaultModel(format="float16", bits=(14,), count=3)
    with torch.no_grad():  # setup on a copy: weights in [1, 2) turn Inf/NaN under a bit-14 flip
        m = copy.deepcopy(model)
        m.fc1.weight.fill_(1.5)
    r = S.fault_sharpness(m, X, y, fm, trials=10, seed=0)
    assert r["nonfinite_trials"] > 0 and r["trials"] == 10


def test_report_keys_determinism_and_no_mutation(tiny):
    model, X, y, *_ = tiny
    before = param_hash(model)
    fm = FaultModel(format="int8", ber=0.02)
    a = S.sharpness_report(model, X, y, seed=3, fault_model=fm, trials=5)
    b = S.sharpness_report(model, X, y, seed=3, fault_model=fm, trials=5)
    assert a == b
    for key in ("lambda_max", "trace", "sam_sharpness", "avg_sharpness", "fault_sharpness"):
        assert key in a
    assert "fault_sharpness" not in S.sharpness_report(model, X, y, seed=3)
    assert param_hash(model) == before


def test_the_hessian_names_stay_importable_from_sharpness():
    """The Hessian moved to hessian.py / lanczos.py; callers import from sharpness as before."""
    from sar_core.analysis import hessian, lanczos

    for name in ("flat_loss", "hvp_graph", "hessian_vector_product", "hessian_trace"):
        assert getattr(S, name) is getattr(hessian, name)
    for name in ("lanczos_extremes", "hessian_eigenvalues"):
        assert getattr(S, name) is getattr(lanczos, name)


@pytest.mark.parametrize(
    "call",
    [
        lambda m, X, y: S.hessian_eigenvalues(m, X, y, k=0),
        lambda m, X, y: S.hessian_trace(m, X, y, samples=1),
        lambda m, X, y: S.sam_sharpness(m, X, y, rho=0.0),
        lambda m, X, y: S.sam_sharpness(m, X, y, steps=0),
        lambda m, X, y: S.average_sharpness(m, X, y, rho=-1.0),
        lambda m, X, y: S.fault_sharpness(m, X, y, FaultModel(ber=0.1), trials=0),
    ],
)
def test_bad_arguments_raise_value_error(tiny, call):
    model, X, y, *_ = tiny
    with pytest.raises(ValueError, match="Invalid"):
        call(model, X, y)
