"""Lanczos extreme eigenvalues against the eigenvalues (numpy eigvalsh) of a dense float64 Hessian.

The stopping rules are heuristics for the top of the spectrum (no Krylov method can prove it has
seen the largest eigenvalue), so they are checked where it counts: at the tolerance asked, on
trained and untrained ReLU nets (an MLP and a CNN), over several seeds, the answer is within
``tol`` x |lambda| of the dense reference — never a faster answer that stopped early.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from sar_core.analysis import lanczos as LZ
from sar_core.data.datasets import load_dataset
from sar_core.data.models import ModelSpec, build_model


def dense_loss(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor):
    """(theta (P,), L): the mean cross-entropy of a float64 copy as a function of flat weights."""
    ref = copy.deepcopy(model).double()
    names = [n for n, _ in ref.named_parameters()]
    shapes = [p.shape for _, p in ref.named_parameters()]
    theta = torch.cat([p.detach().reshape(-1) for _, p in ref.named_parameters()])

    def loss(t: torch.Tensor) -> torch.Tensor:
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            parts[n] = t[i : i + s.numel()].view(s)
            i += s.numel()
        return F.cross_entropy(functional_call(ref, parts, (X.double(),)), y)

    return theta, loss


def trained(spec: ModelSpec, X, y, steps: int) -> torch.nn.Module:
    """A seeded model after ``steps`` full-batch Adam steps (a plain loop, not sar_core.training)."""
    model = build_model(spec, 0).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def cases():
    """(name, model, X, y, eigenvalues of the dense Hessian ascending) for four small nets."""
    d = load_dataset("digits", seed=0)
    X, y = torch.tensor(d.X_train[:150], dtype=torch.float32), torch.tensor(d.y_train[:150])
    mlp = ModelSpec(n_features=64, n_classes=10, widths=(6,))  # P = 460
    cnn = ModelSpec(arch="cnn", n_features=64, n_classes=10, widths=(2, 4), image_shape=(1, 8, 8))
    out = []
    for name, spec in (("mlp", mlp), ("cnn", cnn)):
        for steps in (0, 60):
            model = trained(spec, X, y, steps)
            theta, loss = dense_loss(model, X, y)
            ev = np.linalg.eigvalsh(torch.autograd.functional.hessian(loss, theta).numpy())
            out.append((f"{name}-{steps}steps", model, X, y, ev))
    return out


@pytest.mark.parametrize("tol", [1e-3, 1e-4])
def test_lambda_max_and_min_within_tol_of_the_dense_hessian(cases, tol):
    for name, model, X, y, ev in cases:
        for seed in range(2):
            r = LZ.lanczos_extremes(model, X, y, tol=tol, seed=seed)
            assert r["converged"] and r["n_hvp"] < len(ev) // 4, (name, r)  # stopped by a rule
            lo, hi = float(ev[0]), float(ev[-1])
            assert abs(r["lambda_max"] - hi) <= tol * abs(hi), (name, seed, r, hi)
            assert abs(r["lambda_min"] - lo) <= tol * abs(lo), (name, seed, r, lo)
            top = LZ.lanczos_extremes(model, X, y, tol=tol, seed=seed, want_min=False)
            assert abs(top["lambda_max"] - hi) <= tol * abs(hi), (name, seed, top, hi)
            assert top["lambda_max"] <= hi * (1 + 1e-5)  # a Ritz value lies inside the spectrum


def test_same_seed_same_numbers_and_the_seed_is_used(cases):
    name, model, X, y, ev = cases[1]
    a = LZ.lanczos_extremes(model, X, y, tol=1e-3, seed=5)
    assert a == LZ.lanczos_extremes(model, X, y, tol=1e-3, seed=5)
    runs = [LZ.lanczos_extremes(model, X, y, iters=2, seed=s)["lambda_max"] for s in range(3)]
    assert len(set(runs)) == 3  # the random part of the start vector follows the seed


def test_one_step_is_the_rayleigh_quotient_of_the_gradient_plus_seeded_noise(cases):
    """The start vector, checked from outside: with one product, lambda_max = v^T H v / v^T v for
    v = g / |g| + START_NOISE r / |r|, g the float64 gradient, r ~ N(0, I) from the seed."""
    name, model, X, y, ev = cases[1]
    theta, loss = dense_loss(model, X, y)
    g = torch.autograd.functional.jacobian(loss, theta)
    H = torch.autograd.functional.hessian(loss, theta)
    r = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(7)).double()
    v = g / g.norm() + LZ.START_NOISE * r / r.norm()
    ref = float(v @ H @ v / (v @ v))
    got = LZ.lanczos_extremes(model, X, y, iters=1, seed=7)
    assert got["n_hvp"] == 1 and got["stop"] == "iters"
    assert got["lambda_max"] == pytest.approx(ref, rel=1e-4)


def test_stalled_needs_a_small_change_and_a_small_quadratic_error_estimate():
    """A value that barely moved but whose r^2 / gap is large (a plateau) does not stop it."""
    theta = np.array([0.5, 1.0, 2.0])
    plateau = LZ._stop_rule(5, 0.3, theta, ([2.0], [0.2], [1.0]), [2.0005], tol=1e-3)
    assert plateau is None  # |change| = 5e-4 <= 2e-3, but r^2 / gap = 0.04 > 2e-3
    done = LZ._stop_rule(5, 0.3, theta, ([2.0], [0.03], [1.0]), [2.0005], tol=1e-3)
    assert done == "stalled"  # r^2 / gap = 9e-4 <= 2e-3, r = 0.03 > 2e-3
    assert LZ._stop_rule(5, 0.3, theta, ([2.0], [1e-3], [1.0]), None, tol=1e-3) == "residual"


def test_a_float64_model_reaches_the_dense_eigenvalues_to_1e7(cases):
    """In double precision the recurrence (start vector, reorthogonalization, Ritz values) is
    exact to far below float32 rounding: lambda_max and lambda_min to 1e-7 of eigvalsh."""
    name, model, X, y, ev = cases[1]
    r = LZ.lanczos_extremes(copy.deepcopy(model).double(), X.double(), y, tol=1e-9, iters=400)
    assert r["converged"]
    assert r["lambda_max"] == pytest.approx(float(ev[-1]), rel=1e-7)
    assert r["lambda_min"] == pytest.approx(float(ev[0]), rel=1e-7)


@pytest.fixture(scope="module")
def separated_spectra():
    """(H, v0) for eight float64 symmetric H = Q diag(ev) Q^T (P = 600, Q a random orthogonal
    matrix) with a Hessian-like spectrum known by construction: lambda_max = 1, at least 10 %
    above nine other outliers in [0.2, 0.9]; a bulk N(0, 0.01^2); an isolated lambda_min = -0.3.
    v0 ~ N(0, I): a start with no special weight on the top."""
    P, out = 600, []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        ev = np.r_[1.0, rng.uniform(0.2, 0.9, 9), rng.normal(0.0, 0.01, P - 11), -0.3]
        Q, _ = np.linalg.qr(rng.standard_normal((P, P)))
        out.append((torch.tensor((Q * ev) @ Q.T), torch.tensor(rng.standard_normal(P))))
    return out


@pytest.mark.parametrize("want_min", [True, False])
@pytest.mark.parametrize("tol", [1e-3, 1e-4])
def test_separated_extremes_of_a_known_spectrum_within_tol(separated_spectra, tol, want_min):
    """The rules on an operator whose eigenvalues are set by hand, from a random start: the top
    (with a 10 % gap) and the isolated bottom within tol, long before the space is exhausted."""
    for H, v0 in separated_spectra:
        r = LZ._iterate(H.mv, v0, k=1, iters=300, tol=tol, want_min=want_min)
        assert r["converged"] and r["n_hvp"] < 40, r
        assert abs(r["lambda_max"] - 1.0) <= tol and r["lambda_max"] <= 1.0 + 1e-12, r
        if want_min:
            assert abs(r["lambda_min"] + 0.3) <= tol * 0.3 and r["lambda_min"] >= -0.3 - 1e-12, r


def test_a_close_top_pair_needs_both_the_change_and_the_quadratic_estimate():
    """The hard case of the trained digits MLP, by hand: lambda_2 = 0.91 lambda_1 (as measured
    there), eight more outliers in [0.3, 0.8], a bulk N(0, 0.01^2), lambda_min = -0.25, and a
    start weighted to the outliers as a gradient is. Within tol in all 30 spectra; with the
    "stalled" rule reduced to its change test, or to its r^2 / gap test, it is not (measured
    when this test was written: 2 and 3 misses of 120, one 89 x tol, stopped on lambda_2)."""
    P = 600
    for seed in range(30):
        rng = np.random.default_rng(seed)
        top = np.r_[1.0, 0.91, np.sort(rng.uniform(0.3, 0.8, 8))[::-1]]
        ev = np.r_[top, rng.normal(0.0, 0.01, P - 11), -0.25]
        Q, _ = np.linalg.qr(rng.standard_normal((P, P)))
        H = torch.tensor((Q * ev) @ Q.T)
        v0 = torch.tensor(Q @ (rng.standard_normal(P) * np.r_[np.ones(10), np.full(P - 10, 0.05)]))
        for tol in (1e-3, 1e-4):
            for want_min in (False, True):
                r = LZ._iterate(H.mv, v0, k=1, iters=300, tol=tol, want_min=want_min)
                assert abs(r["lambda_max"] - 1.0) <= tol, (seed, tol, want_min, r)
                if want_min:
                    assert abs(r["lambda_min"] + 0.25) <= tol * 0.25, (seed, tol, r)
