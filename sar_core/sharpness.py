"""Sharpness of a minimum: Hessian spectrum and trace, SAM / average-case / fault-model sharpness.

All measures work on the flattened parameter vector theta (P,) through
``torch.func.functional_call``; the model's own tensors are never written. Loss = mean
cross-entropy on (X, y). Hessian-vector products are forward-over-reverse: Hv = jvp(grad L)(v).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value, jvp, vmap

from sar_core import limits
from sar_core.campaign import summarize
from sar_core.evaluate import as_tensors, evaluate, model_device
from sar_core.faults import FaultModel
from sar_core.montecarlo import MonteCarlo
from sar_core.validate import check_float, check_int

Flat = tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def flat_loss(model: nn.Module, X, y, *, dtype: torch.dtype | None = None) -> Flat:
    """(theta0 (P,), L) where L(theta) is the mean cross-entropy with parameters theta.

    ``dtype=torch.float64`` evaluates in double precision (copies; the model is untouched).
    """
    if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
        X, y = as_tensors(X, y, model_device(model))
    params = {n: p.detach().to(dtype or p.dtype) for n, p in model.named_parameters()}
    X = X.to(dtype) if dtype is not None else X
    names = list(params)
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    theta0 = torch.cat([params[n].reshape(-1) for n in names]).clone()

    def loss(theta: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, sizes)
        p = {n: t.view(s) for n, t, s in zip(names, parts, shapes)}
        return F.cross_entropy(functional_call(model, p, (X,)), y)

    return theta0, loss


def hessian_vector_product(model: nn.Module, X, y, v: torch.Tensor) -> torch.Tensor:
    """H v at the model's weights, v and result flattened in parameter order (P,)."""
    theta, loss = flat_loss(model, X, y)
    return _hvp(loss, theta)(v)


def _hvp(loss, theta: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    g = grad(loss)
    return lambda v: jvp(g, (theta,), (v,))[1]  # forward-over-reverse: d/de grad L(theta + e v)


def hessian_eigenvalues(
    model: nn.Module, X, y, *, k: int = 1, iters: int = 100, tol: float = 1e-4, seed: int = 0
) -> list[float]:
    """Top-k Hessian eigenvalues by magnitude: power iteration on Hv, deflation by projection.

    Eigenvector j is sought in the orthogonal complement of the ones already found (Hotelling
    deflation); iteration stops when the Rayleigh quotient changes by less than tol (relative).
    """
    k = check_int("k", k, low=1, high=100)
    iters = check_int("iters", iters, low=1, high=100_000)
    tol = check_float("tol", tol, low=0.0)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    theta, loss = flat_loss(model, X, y)
    hvp = _hvp(loss, theta)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    found: list[torch.Tensor] = []
    eigs: list[float] = []
    for _ in range(min(k, theta.numel())):
        v = _project(torch.randn(theta.shape, generator=gen).to(theta), found)
        v = v / v.norm()
        lam = None
        for _ in range(iters):
            hv = _project(hvp(v), found)
            new = float(v @ hv)  # Rayleigh quotient v^T H v, ||v|| = 1
            norm = hv.norm()
            if not torch.isfinite(norm) or norm == 0:
                lam = new
                break
            v = hv / norm
            if lam is not None and abs(new - lam) <= tol * max(abs(new), 1e-12):
                lam = new
                break
            lam = new
        eigs.append(float(lam))
        found.append(v)
    return eigs


def _project(v: torch.Tensor, basis: list[torch.Tensor]) -> torch.Tensor:
    for u in basis:  # Gram-Schmidt against found eigenvectors
        v = v - (u @ v) * u
    return v


def hessian_trace(
    model: nn.Module, X, y, *, samples: int = 64, seed: int = 0, chunk_size: int = 16
) -> dict:
    """Hutchinson: tr(H) = E[z^T H z] for Rademacher z; mean and 95% t-interval over samples."""
    samples = check_int("samples", samples, low=2, high=limits.MAX_TRIALS)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    chunk_size = check_int("chunk_size", chunk_size, low=1, high=limits.MAX_TRIALS)
    theta, loss = flat_loss(model, X, y)
    hvp = _hvp(loss, theta)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = (torch.randint(0, 2, (samples, theta.numel()), generator=gen) * 2 - 1).to(theta)  # (S, P)
    quad = []
    for i in range(0, samples, chunk_size):
        zc = z[i : i + chunk_size]
        quad += (vmap(hvp)(zc) * zc).sum(dim=1).tolist()  # z^T H z, batched over probes
    s = summarize(quad)
    return {"mean": s["mean"], "ci95": s["ci95"], "std": s["std"], "samples": samples}


def sam_sharpness(
    model: nn.Module,
    X,
    y,
    *,
    rho: float = 0.05,
    steps: int = 5,
    adaptive: bool = False,
    eta: float = 0.01,
) -> float:
    """max_{||e|| <= rho} L(w + e) - L(w), estimated by projected normalized-gradient ascent.

    Adaptive (ASAM): the ball is ||e / T|| <= rho with T = |w| + eta; we ascend in u = e / T,
    whose gradient is T g, so the first step is e = rho T^2 g / ||T g||, ASAM's ascent.
    Returns the largest increase seen over the iterates (a lower bound of the true maximum).
    """
    rho = check_float("rho", rho, low=0.0, low_open=True)
    steps = check_int("steps", steps, low=1, high=1000)
    eta = check_float("eta", eta, low=0.0)
    theta, loss = flat_loss(model, X, y)
    t = theta.abs() + eta if adaptive else torch.ones_like(theta)
    gv = grad_and_value(loss)
    base = float(loss(theta).detach())
    u = torch.zeros_like(theta)  # e = T u, ||u|| <= rho
    best = 0.0
    for _ in range(steps):
        g, _ = gv(theta + t * u)
        tg = t * g
        norm = tg.norm()
        if not torch.isfinite(norm) or norm == 0:
            break
        u = u + rho * tg / norm  # ascent step of length rho in u-space ...
        u = u * torch.clamp(rho / u.norm(), max=1.0)  # ... projected back onto the ball
        val = float(loss(theta + t * u).detach()) - base
        if not np.isfinite(val):
            return float("inf")
        best = max(best, val)
    return best


def average_sharpness(
    model: nn.Module, X, y, *, rho: float = 0.05, samples: int = 32, seed: int = 0
) -> dict:
    """E_{||e|| = rho} L(w + e) - L(w) over uniform directions on the sphere (Monte Carlo).

    Antithetic pairs: each sample scores (L(w + e) + L(w - e)) / 2 - L(w), which cancels the
    gradient term exactly and leaves the expectation unchanged (the sphere is symmetric). To
    second order the value is rho^2 tr(H) / (2 P): tiny for many parameters, so the loss is
    evaluated in float64 (float32 rounding of L would be of the same size).
    """
    rho = check_float("rho", rho, low=0.0, low_open=True)
    samples = check_int("samples", samples, low=2, high=limits.MAX_TRIALS)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    theta, loss = flat_loss(model, X, y, dtype=torch.float64)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    g = torch.randn((samples, theta.numel()), generator=gen, dtype=torch.float64).to(theta)
    e = rho * g / g.norm(dim=1, keepdim=True)  # uniform on the sphere of radius rho
    with torch.no_grad():
        base = loss(theta)
        plus = vmap(loss)(theta + e)
        minus = vmap(loss)(theta - e)
    vals = ((plus + minus) / 2 - base).tolist()
    vals = [v if np.isfinite(v) else float("inf") for v in vals]
    s = summarize(vals)
    return {"mean": s["mean"], "ci95": s["ci95"], "std": s["std"], "samples": samples}


def fault_sharpness(
    model: nn.Module, X, y, fault_model: FaultModel, *, trials: int = 50, seed: int = 0
) -> dict:
    """E[L(w_faulty)] - L(w_deployed) under a fault model; patterns are a campaign's rng([s, t]).

    Trials whose faulty loss is not finite are counted in ``nonfinite_trials`` and left out of
    the mean (an infinite loss would swamp it); ``mean`` is inf when every trial is non-finite.
    """
    trials = check_int("trials", trials, low=1, high=limits.MAX_TRIALS)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
        X, y = as_tensors(X, y, model_device(model))
    mc = MonteCarlo([model], X, y, fault_model)
    base = mc.deployed[0][1]
    incs, flips, changed, bad = [], [], [], 0
    for trial in mc.run(trials, seed=seed):
        flips.append(trial.n_flips[0])
        changed.append(trial.n_changed[0])
        if np.isfinite(trial.loss[0]):
            incs.append(trial.loss[0] - base)
        else:
            bad += 1
    if incs:
        s = summarize(incs)
        mean, ci95 = s["mean"], s["ci95"]
    else:
        mean, ci95 = float("inf"), [float("inf"), float("inf")]
    return {
        "mean": mean,
        "ci95": ci95,
        "nonfinite_trials": bad,
        "trials": trials,
        "deployed_loss": base,
        "mean_flips": float(np.mean(flips)),
        "mean_changed_bits": float(np.mean(changed)),
        "fault_model": fault_model.to_dict(),
    }


def sharpness_report(
    model: nn.Module,
    X,
    y,
    *,
    seed: int = 0,
    fault_model: FaultModel | None = None,
    rho: float = 0.05,
    trials: int = 50,
) -> dict:
    """All sharpness measures of one model at one seed (fault_sharpness when a fault model).

    asam_sharpness is SAM sharpness in ASAM's ball ||e / (|w| + 0.01)|| <= rho: the elementwise
    geometry SAR trains with, where a step is a relative change of each weight.
    """
    if not (isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor)):
        X, y = as_tensors(X, y, model_device(model))
    clean = evaluate(model, X, y)
    out = {
        "loss": clean.loss,
        "accuracy": clean.accuracy,
        "n_params": sum(p.numel() for p in model.parameters()),
        "rho": check_float("rho", rho, low=0.0, low_open=True),
        "seed": seed,
        "lambda_max": hessian_eigenvalues(model, X, y, k=1, seed=seed)[0],
        "trace": hessian_trace(model, X, y, seed=seed),
        "sam_sharpness": sam_sharpness(model, X, y, rho=rho),
        "asam_sharpness": sam_sharpness(model, X, y, rho=rho, adaptive=True),
        "avg_sharpness": average_sharpness(model, X, y, rho=rho, seed=seed),
    }
    if fault_model is not None:
        out["fault_sharpness"] = fault_sharpness(model, X, y, fault_model, trials=trials, seed=seed)
    return out
