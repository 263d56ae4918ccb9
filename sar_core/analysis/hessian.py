"""The Hessian of the loss at a model's weights: the flat loss, Hessian-vector products, trace.

Everything works on the flattened parameter vector theta (P,) through
``torch.func.functional_call``; the model's own tensors are never written. Loss = mean
cross-entropy on (X, y). The trace (here) and the spectrum (``sar_core.analysis.lanczos``) use
``hvp_graph``: one gradient graph kept and differentiated again per product;
``hessian_vector_product`` is forward-over-reverse.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, jvp

from sar_core import limits
from sar_core.engine.checks import model_data
from sar_core.stats.intervals import summarize
from sar_core.validate import check_float, check_int

Flat = tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def flat_loss(model: nn.Module, X, y, *, dtype: torch.dtype | None = None) -> Flat:
    """(theta0 (P,), L) where L(theta) is the mean cross-entropy with parameters theta.

    ``dtype=torch.float64`` evaluates in double precision (copies; the model is untouched).
    """
    X, y = model_data(model, X, y, float64=True)
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


class GradientGraph:
    """H v from one kept gradient graph (see ``hvp_graph``); ``grad``: the gradient g (P,).

    ``theta`` is a copy of the weights (requires grad); the model is never written.
    """

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
    hvp = GradientGraph(model, X, y)
    return hvp.P, hvp


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
