"""The Hessian of the loss at a model's weights: products, extreme eigenvalues (Lanczos), trace.

Everything works on the flattened parameter vector theta (P,) through
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
from torch.func import functional_call, grad, jvp

from sar_core import limits
from sar_core.engine.evaluate import as_tensors, model_device
from sar_core.stats.intervals import summarize
from sar_core.validate import check_float, check_int

Flat = tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]

START_NOISE = 0.3  # weight of the seeded random direction in the Lanczos start vector (vs g)


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
    g = grad(loss)
    return jvp(g, (theta,), (v,))[1]  # forward-over-reverse: d/de grad L(theta + e v)


class _GradientGraph:
    """H v products from one kept gradient graph; ``grad`` is the (detached) gradient g (P,)."""

    def __init__(self, model: nn.Module, X, y) -> None:
        theta0, loss = flat_loss(model, X, y)
        self.theta = theta0.requires_grad_(True)  # theta0 is a fresh copy (flat_loss clones)
        (self.g,) = torch.autograd.grad(loss(self.theta), self.theta, create_graph=True)
        self.grad = self.g.detach()
        self.P = self.theta.numel()

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        """H v for v (P,), or H v_i for each row of v (c, P) in one batched backward pass."""
        (hv,) = torch.autograd.grad(
            self.g, self.theta, grad_outputs=v, retain_graph=True, is_grads_batched=v.dim() == 2
        )
        return hv.detach()


def hvp_graph(model: nn.Module, X, y) -> tuple[int, Callable[[torch.Tensor], torch.Tensor]]:
    """(P, hvp): H v by differentiating one kept gradient graph again (as PyHessian does).

    The gradient g(theta) is built once with ``create_graph=True``; each product is
    d(g . v)/d theta, one backward pass through that graph, with no new forward pass. A matrix
    (c, P) of vectors gives its c products from one batched (vmapped) backward pass.
    """
    hvp = _GradientGraph(model, X, y)
    return hvp.P, hvp


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
    smallest; at most ``iters`` Hessian-vector products. The start vector is the gradient
    direction plus ``START_NOISE`` x a seeded random unit vector: the gradient of a trained net
    lies mostly in the top eigenspace, which saves products; the random part keeps every
    direction reachable (and the seed meaningful).
    """
    k = check_int("k", k, low=1, high=100)
    iters = check_int("iters", iters, low=1, high=100_000)
    tol = check_float("tol", tol, low=0.0)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    hvp = _GradientGraph(model, X, y)
    lz = _Lanczos(hvp, _start_vector(hvp.grad, seed), min(iters, hvp.P))
    stop, prev = "iters", None
    for m in range(min(iters, hvp.P)):
        beta = lz.step()
        vals, resid, gaps = lz.wanted(k, want_min, beta)
        rule = _stop_rule(m, beta, lz.theta, (vals, resid, gaps), prev, tol)
        if rule is not None:
            stop = rule
            break
        prev = vals
        lz.extend(beta)
    if stop == "iters" and lz.size == hvp.P:
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


def _start_vector(g: torch.Tensor, seed: int) -> torch.Tensor:
    """g / ||g|| + START_NOISE r / ||r|| for r ~ N(0, I) from ``seed`` (r alone if g is 0)."""
    r = torch.randn(g.numel(), generator=torch.Generator(device="cpu").manual_seed(seed))
    r = (r / r.norm()).to(g)
    norm = g.norm()
    if not (torch.isfinite(norm) and norm > 0):
        return r
    return g / norm + START_NOISE * r


class _Lanczos:
    """The Lanczos recurrence on H from a start vector: orthonormal V, tridiagonal T = V^T H V.

    ``step`` applies H to the newest vector, appends alpha = v^T H v and orthogonalizes the
    result against all of V (classical Gram-Schmidt twice: full reorthogonalization, as floating
    point needs), keeping it as the candidate next vector; ``extend(beta)`` accepts it.
    ``theta`` / ``S``: the Ritz values (ascending) and eigenvectors of T. V lives in one
    preallocated (rows, P) buffer that doubles when full, so no step copies the basis.
    """

    def __init__(self, hvp: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, n: int):
        self.hvp = hvp
        self.V = v0.new_empty((min(n, 16), v0.numel()))  # rows: orthonormal Lanczos vectors
        self.V[0] = v0 / v0.norm()
        self.alphas: list[float] = []
        self.betas: list[float] = []
        self.w = v0

    @property
    def size(self) -> int:
        """Hessian-vector products done (the order of T)."""
        return len(self.alphas)

    def step(self) -> float:
        """One product H v_m; returns beta_m = ||w|| of the orthogonalized remainder w."""
        m = self.size
        Vm = self.V[: m + 1]  # (m + 1, P), a view
        w = self.hvp(Vm[m])
        h = Vm @ w  # projections on V; h[m] = alpha_m = v_m^T H v_m
        self.alphas.append(float(h[m]))
        w = w - h @ Vm
        w = w - (Vm @ w) @ Vm  # the second pass removes what rounding left
        self.w = w
        self.theta, self.S = np.linalg.eigh(_tridiagonal(self.alphas, self.betas))
        return float(w.norm())

    def wanted(self, k: int, want_min: bool, beta: float) -> tuple[list, list, list]:
        """The wanted Ritz values (k largest, then the smallest), their residuals |beta s_m| and
        gaps (distance to the nearest other Ritz value; inf while T is 1 x 1)."""
        th, n = self.theta, len(self.theta)
        idx = list(range(n - min(k, n), n)) + ([0] if want_min else [])
        gaps = [min([abs(th[i] - th[j]) for j in range(n) if j != i], default=np.inf) for i in idx]
        return [th[i] for i in idx], [abs(beta * self.S[-1, i]) for i in idx], gaps

    def extend(self, beta: float) -> None:
        """Accept the remainder of the last step as the next Lanczos vector."""
        self.betas.append(beta)
        m = len(self.betas)
        if m == self.V.shape[0]:
            self.V = torch.cat([self.V, torch.empty_like(self.V)])
        self.V[m] = self.w / beta


def _stop_rule(
    m: int,
    beta: float,
    theta: np.ndarray,
    ritz: tuple[list[float], list[float], list[float]],
    prev: list[float] | None,
    tol: float,
) -> str | None:
    """Which rule ends the iteration after step m (0-based), or None to go on.

    ``ritz`` = the wanted Ritz values, their residuals r = |beta s_m| and their gaps.

    - "invariant": beta ~ 0, the Krylov space is invariant and the Ritz values are exact;
    - "residual": every wanted value has r <= tol x |value| (a bound on its distance to an
      eigenvalue), or
    - "stalled": ... or changed by <= tol x |value| since the last step (PyHessian's rule; from
      step 2 on) *and* has r^2 / gap <= tol x |value| (the error of a Ritz value near convergence
      is about r^2 / gap; either estimate alone misses cases: the change stalls on a plateau,
      and the Ritz gap overstates the true one). A value may satisfy "residual" or "stalled";
      all must, and m >= 1.
    """
    if not np.isfinite(beta) or beta <= 1e-10 * max(abs(theta).max(), 1e-30):
        return "invariant"
    vals, resid, gaps = ritz
    scale = [tol * max(abs(v), 1e-12) for v in vals]
    small = [r <= s for r, s in zip(resid, scale)]
    still = [False] * len(vals)
    if m >= 2 and prev is not None and len(prev) == len(vals):
        still = [
            abs(v - p) <= s and r * r <= s * g
            for v, p, r, g, s in zip(vals, prev, resid, gaps, scale)
        ]
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
