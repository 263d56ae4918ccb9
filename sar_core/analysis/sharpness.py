"""Sharpness of a minimum: Hessian spectrum and trace, SAM / average-case / fault-model sharpness.

All measures work on the flattened parameter vector theta (P,) through
``torch.func.functional_call``; the model's own tensors are never written. Loss = mean
cross-entropy on (X, y). The spectrum and the trace use ``hvp_graph``: one gradient graph kept
and differentiated again per product; ``hessian_vector_product`` is forward-over-reverse.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value, jvp, vmap

from sar_core import limits
from sar_core.engine.evaluate import as_tensors, evaluate, model_device
from sar_core.engine.montecarlo import loss_increases
from sar_core.faults.model import FaultModel
from sar_core.stats.intervals import summarize
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


def hvp_graph(model: nn.Module, X, y) -> tuple[int, Callable[[torch.Tensor], torch.Tensor]]:
    """(P, hvp): H v by differentiating one kept gradient graph again (as PyHessian does).

    The gradient g(theta) is built once with ``create_graph=True``; each product is
    d(g . v)/d theta, one backward pass through that graph, with no new forward pass. A matrix
    (c, P) of vectors gives its c products from one batched (vmapped) backward pass.
    """
    theta0, loss = flat_loss(model, X, y)
    theta = theta0.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(theta), theta, create_graph=True)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        """H v for v (P,), or H v_i for each row of v (c, P) in one batched backward pass."""
        batched = v.dim() == 2
        (hv,) = torch.autograd.grad(
            g, theta, grad_outputs=v, retain_graph=True, is_grads_batched=batched
        )
        return hv.detach()

    return theta.numel(), hvp


def lanczos_extremes(
    model: nn.Module,
    X,
    y,
    *,
    k: int = 1,
    iters: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
    want_min: bool = True,
) -> dict:
    """Extreme Hessian eigenvalues by Lanczos with full reorthogonalization.

    Returns ``lambda_max`` (largest algebraic eigenvalue), ``lambda_min`` (smallest), ``top``
    (the k largest, descending), ``n_hvp``, ``converged`` and ``stop`` (which rule ended it, see
    ``_stop_rule``). The wanted Ritz values are the k largest and, with ``want_min``, the
    smallest; at most ``iters`` Hessian-vector products.
    """
    k = check_int("k", k, low=1, high=100)
    iters = check_int("iters", iters, low=1, high=100_000)
    tol = check_float("tol", tol, low=0.0)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    P, hvp = hvp_graph(model, X, y)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    lz = _Lanczos(hvp, torch.randn(P, generator=gen))
    stop, prev = "iters", None
    for m in range(min(iters, P)):
        beta = lz.step()
        vals, resid = lz.wanted(k, want_min, beta)
        rule = _stop_rule(m, beta, lz.theta, vals, resid, prev, tol)
        if rule is not None:
            stop = rule
            break
        prev = vals
        lz.extend(beta)
    if stop == "iters" and lz.size == P:
        stop = "exhausted"  # the whole space: the Ritz values are exact
    theta = lz.theta
    return {
        "lambda_max": float(theta[-1]),
        "lambda_min": float(theta[0]),
        "top": sorted(theta.tolist(), reverse=True)[:k],
        "n_hvp": lz.size,
        "converged": stop != "iters",
        "stop": stop,
    }


class _Lanczos:
    """The Lanczos recurrence on H from a start vector: orthonormal V, tridiagonal T = V^T H V.

    ``step`` applies H to the newest vector, appends alpha = v^T H v and orthogonalizes the
    result against all of V (twice: full reorthogonalization, as floating point needs), keeping
    it as the candidate next vector; ``extend(beta)`` accepts it. ``theta`` / ``S``: the Ritz
    values (ascending) and eigenvectors of T.
    """

    def __init__(self, hvp: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor) -> None:
        self.hvp = hvp
        self.V = [v0 / v0.norm()]  # orthonormal Lanczos vectors
        self.alphas: list[float] = []
        self.betas: list[float] = []
        self.w = v0

    @property
    def size(self) -> int:
        """Hessian-vector products done (the order of T)."""
        return len(self.alphas)

    def step(self) -> float:
        """One product H v_m; returns beta_m = ||w|| of the orthogonalized remainder w."""
        w = self.hvp(self.V[-1])
        self.alphas.append(float(w @ self.V[-1]))
        Vm = torch.stack(self.V)  # (m + 1, P)
        for _ in range(2):  # Gram-Schmidt twice keeps V orthogonal to working precision
            w = w - Vm.t() @ (Vm @ w)
        self.w = w
        self.theta, self.S = np.linalg.eigh(_tridiagonal(self.alphas, self.betas))
        return float(w.norm())

    def wanted(self, k: int, want_min: bool, beta: float) -> tuple[list[float], list[float]]:
        """The wanted Ritz values (k largest, then the smallest) and their residuals |beta s_m|."""
        n = len(self.theta)
        idx = list(range(n - min(k, n), n)) + ([0] if want_min else [])
        return [self.theta[i] for i in idx], [abs(beta * self.S[-1, i]) for i in idx]

    def extend(self, beta: float) -> None:
        """Accept the remainder of the last step as the next Lanczos vector."""
        self.betas.append(beta)
        self.V.append(self.w / beta)


def _stop_rule(
    m: int,
    beta: float,
    theta: np.ndarray,
    vals: list[float],
    resid: list[float],
    prev: list[float] | None,
    tol: float,
) -> str | None:
    """Which rule ends the iteration after step m (0-based), or None to go on.

    - "invariant": beta ~ 0, the Krylov space is invariant and the Ritz values are exact;
    - "residual": every wanted value's Ritz residual |beta s_m| is <= tol x |value| (a bound on
      its distance to an eigenvalue), or
    - "stalled": ... or changed by <= tol x |value| since the last step (PyHessian's rule; from
      step 2 on). A value may satisfy either of the last two; all must, and m >= 1.
    """
    if not np.isfinite(beta) or beta <= 1e-10 * max(abs(theta).max(), 1e-30):
        return "invariant"
    small = [r <= tol * max(abs(v), 1e-12) for r, v in zip(resid, vals)]
    still = [False] * len(vals)
    if m >= 2 and prev is not None and len(prev) == len(vals):
        still = [abs(v - p) <= tol * max(abs(v), 1e-12) for v, p in zip(vals, prev)]
    if m < 1 or not all(a or b for a, b in zip(small, still)):
        return None
    return "residual" if all(small) else "stalled"


def _tridiagonal(alphas: list[float], betas: list[float]) -> np.ndarray:
    T = np.diag(np.asarray(alphas, dtype=np.float64))
    if betas:
        off = np.asarray(betas, dtype=np.float64)
        T += np.diag(off, 1) + np.diag(off, -1)
    return T


def hessian_eigenvalues(
    model: nn.Module, X, y, *, k: int = 1, iters: int = 100, tol: float = 1e-4, seed: int = 0
) -> list[float]:
    """The k largest algebraic Hessian eigenvalues (descending), by Lanczos (``lanczos_extremes``)."""
    return lanczos_extremes(model, X, y, k=k, iters=iters, tol=tol, seed=seed, want_min=False)[
        "top"
    ]


def hessian_trace(
    model: nn.Module,
    X,
    y,
    *,
    samples: int = 64,
    seed: int = 0,
    rel_ci: float = 0.05,
    min_samples: int = 8,
    deflate: int = 0,
    chunk_size: int | None = None,
) -> dict:
    """Hutchinson: tr(H) = E[z^T H z] for Rademacher z, with a stopping rule on its CI.

    Probes are drawn one at a time (each one HVP through one kept gradient graph); after
    ``min_samples`` the estimate stops as soon as the 95% t-interval's half-width is at most
    ``rel_ci`` x |mean| (rel_ci = 0: always ``samples`` probes). ``deflate`` = k > 0 is
    Hutch++ (Meyer et al. 2021): Q = orth(H Omega) for k random sign vectors, tr(Q^T H Q) exactly
    (2k HVPs), plus Hutchinson on (I - QQ^T) z, whose variance lacks the top of the spectrum; the
    interval is that of the residual probes. Returns mean, ci95, std, ``samples`` = ``n_probes``
    (residual probes), ``n_hvp`` (all products), ``max_probes`` and ``stopped_early``.

    ``chunk_size`` (default 1): probes whose products run as one batched backward pass; the rule
    is checked after each chunk, so up to chunk_size - 1 probes more than one at a time. The
    probes are the same, in the same order, for every chunk size (products differ by float32
    rounding). Measured on one CPU thread (digits MLP, SmallCNN): no faster; it saves the
    per-product overhead on an accelerator.
    """
    samples = check_int("samples", samples, low=2, high=limits.MAX_TRIALS)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    rel_ci = check_float("rel_ci", rel_ci, low=0.0)
    min_samples = check_int("min_samples", min_samples, low=2, high=limits.MAX_TRIALS)
    deflate = check_int("deflate", deflate, low=0, high=1000)
    chunk = check_int("chunk_size", 1 if chunk_size is None else chunk_size, low=1, high=1024)
    P, hvp = hvp_graph(model, X, y)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    signs = lambda n: (torch.randint(0, 2, (n, P), generator=gen) * 2 - 1).float()  # noqa: E731
    exact, Q = 0.0, None
    if deflate:  # Hutch++: Q = orth(H Omega), tr(Q^T H Q) exactly
        Q, _ = torch.linalg.qr(torch.stack(_products(hvp, list(signs(min(deflate, P))), chunk), 1))
        cols = [Q[:, i] for i in range(Q.shape[1])]
        exact = float(sum(q @ hq for q, hq in zip(cols, _products(hvp, cols, chunk))))
    quad: list[float] = []
    while len(quad) < samples:
        Z = list(signs(min(chunk, samples - len(quad))))  # c probes (P,)
        if Q is not None:
            Z = [z - Q @ (Q.t() @ z) for z in Z]  # the part of z outside span(Q)
        quad += [float(z @ hz) for z, hz in zip(Z, _products(hvp, Z, chunk))]  # z^T H z
        if len(quad) >= min(min_samples, samples) and rel_ci > 0:
            s = summarize(quad)
            if (s["ci95"][1] - s["mean"]) <= rel_ci * abs(s["mean"] + exact):
                break
    s = summarize(quad)
    n = len(quad)
    return {
        "mean": s["mean"] + exact,
        "ci95": [c + exact for c in s["ci95"]],
        "std": s["std"],
        "samples": n,
        "n_probes": n,
        "n_hvp": n + 2 * (0 if Q is None else Q.shape[1]),
        "max_probes": samples,
        "stopped_early": n < samples,
    }


def _products(hvp, V: list[torch.Tensor], chunk: int) -> list[torch.Tensor]:
    """[H v for v in V]: one product per vector, or one batched product per ``chunk`` vectors."""
    if chunk == 1:
        return [hvp(v) for v in V]
    return [hv for i in range(0, len(V), chunk) for hv in hvp(torch.stack(V[i : i + chunk]))]


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
