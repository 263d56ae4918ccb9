"""Sharpness of a minimum: SAM / ASAM / average-case / fault-model sharpness, and a report.

The Hessian measures live in ``sar_core.analysis.hessian`` (products, trace) and
``sar_core.analysis.lanczos`` (extreme eigenvalues); they are re-exported here. All measures work
on the flattened parameter vector theta (P,) through ``flat_loss``; the model's own tensors are
never written. Loss = mean cross-entropy on (X, y).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import grad_and_value, vmap

from sar_core import limits
from sar_core.analysis.hessian import flat_loss, hessian_trace, hessian_vector_product, hvp_graph
from sar_core.analysis.lanczos import hessian_eigenvalues, lanczos_extremes
from sar_core.engine.evaluate import as_tensors, evaluate, model_device
from sar_core.engine.montecarlo import loss_increases
from sar_core.faults.model import FaultModel
from sar_core.stats.intervals import summarize
from sar_core.validate import check_float, check_int

__all__ = [
    "average_sharpness",
    "fault_sharpness",
    "flat_loss",
    "hessian_eigenvalues",
    "hessian_trace",
    "hessian_vector_product",
    "hvp_graph",
    "lanczos_extremes",
    "sam_sharpness",
    "sharpness_report",
]


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
    base, inc, flips, changed = loss_increases(model, X, y, fault_model, trials=trials, seed=seed)
    finite = np.isfinite(inc)
    incs, bad = inc[finite], int((~finite).sum())
    if incs.size:
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
    spectrum = lanczos_extremes(model, X, y, seed=seed)
    out = {
        "loss": clean.loss,
        "accuracy": clean.accuracy,
        "n_params": sum(p.numel() for p in model.parameters()),
        "rho": check_float("rho", rho, low=0.0, low_open=True),
        "seed": seed,
        **{k: spectrum[k] for k in ("lambda_max", "lambda_min")},
        "trace": hessian_trace(model, X, y, seed=seed, deflate=4),
        "sam_sharpness": sam_sharpness(model, X, y, rho=rho),
        "asam_sharpness": sam_sharpness(model, X, y, rho=rho, adaptive=True),
        "avg_sharpness": average_sharpness(model, X, y, rho=rho, seed=seed),
    }
    if fault_model is not None:
        out["fault_sharpness"] = fault_sharpness(model, X, y, fault_model, trials=trials, seed=seed)
    return out
