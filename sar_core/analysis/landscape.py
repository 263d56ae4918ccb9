"""Loss landscapes (Li et al., NeurIPS 2018): random directions, 1D / 2D slices, interpolation.

Every grid point is a linear combination of parameter sets, sum_k c_k v_k (e.g. w + a d1 + b d2,
or (1 - t) w_a + t w_b), evaluated by ``sar_core.engine.combinations`` with
``torch.func.functional_call``: the model's own tensors are read, never written. Grid points are
batched with ``torch.func.vmap`` in cache-sized chunks. A point whose logits overflow scores
loss = inf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from sar_core import limits
from sar_core.engine import combinations as C
from sar_core.engine.checks import model_data
from sar_core.engine.evaluate import evaluate
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel
from sar_core.validate import check_choice, check_float, check_int

Params = dict[str, torch.Tensor]
NORMALIZATIONS = ("filter", "layer", "none")


def check_steps(steps: int) -> int:
    """Points per grid axis: 2..limits.MAX_GRID_STEPS."""
    return check_int("steps", steps, low=2, high=limits.MAX_GRID_STEPS)


def check_span(span: float) -> float:
    """Half-width of a grid axis: a finite number > 0."""
    return check_float("span", span, low=0.0, low_open=True)


def grid_axis(steps: int, span: float) -> list[float]:
    """``steps`` points over [-span, span]; the middle point is exactly 0 when steps is odd."""
    steps, span = check_steps(steps), check_span(span)
    k = np.arange(steps, dtype=np.float64)
    return (span * (2.0 * k - (steps - 1)) / (steps - 1)).tolist()  # integer numerator: exact 0


def _weights(model: nn.Module) -> Params:
    return {n: p.detach() for n, p in model.named_parameters()}


def random_direction(
    model: nn.Module, seed: int, *, include_bias: bool = False, normalize: str = "filter"
) -> Params:
    """Seeded Gaussian direction over all parameters, filter-normalized (Li et al. 2018).

    filter: each filter d_i (slice along the first dim: output neuron / channel) is rescaled to
    ||w_i|| / ||d_i||; layer: each tensor to ||W|| / ||D||; none: raw Gaussian. 1-D parameters
    (biases) are zero unless ``include_bias`` (then rescaled as one vector). The raw Gaussian is
    drawn for every parameter in model order from a private generator, so it depends only on the
    shapes and the seed: two models of one architecture get the same raw direction.
    """
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    check_choice("normalize", normalize, NORMALIZATIONS)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out: Params = {}
    for name, w in _weights(model).items():
        d = torch.randn(w.shape, generator=gen, dtype=torch.float32).to(w.device, w.dtype)
        if w.ndim <= 1:  # biases: zero (Li et al.), or one vector rescaled as a whole
            bias_norm = "none" if normalize == "none" else "layer"
            out[name] = _rescale(d, w, bias_norm) if include_bias else torch.zeros_like(w)
        else:
            out[name] = _rescale(d, w, normalize)
    return out


def _rescale(d: torch.Tensor, w: torch.Tensor, normalize: str) -> torch.Tensor:
    if normalize == "none":
        return d
    if normalize == "layer":
        return d * (w.norm() / (d.norm() + 1e-10))
    dims = tuple(range(1, w.ndim))  # one norm per filter: (out, in[, kh, kw]) -> (out,)
    norm = torch.linalg.vector_norm
    scale = norm(w, dim=dims, keepdim=True) / (norm(d, dim=dims, keepdim=True) + 1e-10)
    return d * scale


def direction_pair(model: nn.Module, seed: int, **kwargs) -> tuple[Params, Params]:
    """Two independent directions for a 2D plane: seeds 2*seed and 2*seed + 1."""
    seed = check_int("seed", seed, low=0, high=2**62 - 1)
    return (
        random_direction(model, 2 * seed, **kwargs),
        random_direction(model, 2 * seed + 1, **kwargs),
    )


def evaluate_combinations(
    model: nn.Module,
    X,
    y,
    vectors: Sequence[Mapping[str, torch.Tensor]],
    coeffs: np.ndarray | Sequence[Sequence[float]],
    *,
    chunk_size: int | None = None,
) -> tuple[list[float], list[float]]:
    """(loss, accuracy) at every grid point sum_k coeffs[i, k] * vectors[k]; coeffs: (P, K).

    A zero coefficient contributes exactly nothing, even where its vector is not finite. The
    batched engine is ``sar_core.engine.combinations``.
    """
    X, y = model_data(model, X, y)
    return C.evaluate_combinations(model, X, y, vectors, coeffs, chunk_size=chunk_size)


def slice_1d(
    model: nn.Module,
    X,
    y,
    direction: Mapping[str, torch.Tensor],
    *,
    alphas: Sequence[float] | None = None,
    steps: int = 51,
    span: float = 1.0,
    chunk_size: int | None = None,
) -> dict:
    """L(w + alpha d) and accuracy along one direction; default 51 points over [-1, 1]."""
    if alphas is None:
        alphas = grid_axis(steps, span)
    else:
        alphas = [check_float("alphas[i]", a) for a in alphas]
        check_int("len(alphas)", len(alphas), low=1, high=limits.MAX_GRID_STEPS**2)
    w = _weights(model)
    _check_direction(w, direction, "direction")
    coeffs = [[1.0, a] for a in alphas]
    loss, acc = evaluate_combinations(model, X, y, [w, direction], coeffs, chunk_size=chunk_size)
    return {"alphas": list(alphas), "loss": loss, "accuracy": acc}


def slice_2d(
    model: nn.Module,
    X,
    y,
    d1: Mapping[str, torch.Tensor],
    d2: Mapping[str, torch.Tensor],
    *,
    steps: int = 41,
    span: float = 1.0,
    chunk_size: int | None = None,
) -> dict:
    """L(w + alpha d1 + beta d2) on a steps x steps grid; loss[j][i] is (betas[j], alphas[i])."""
    axis = grid_axis(steps, span)
    w = _weights(model)
    _check_direction(w, d1, "d1")
    _check_direction(w, d2, "d2")
    coeffs = [[1.0, a, b] for b in axis for a in axis]  # row-major: beta outer, alpha inner
    loss, acc = evaluate_combinations(model, X, y, [w, d1, d2], coeffs, chunk_size=chunk_size)
    n = len(axis)
    X, y = model_data(model, X, y)
    center = evaluate(model, X, y)
    return {
        "alphas": axis,
        "betas": list(axis),
        "loss": [loss[j * n : (j + 1) * n] for j in range(n)],
        "accuracy": [acc[j * n : (j + 1) * n] for j in range(n)],
        "center_loss": center.loss,
        "center_accuracy": center.accuracy,
    }


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    X,
    y,
    *,
    steps: int = 41,
    t_min: float = -0.5,
    t_max: float = 1.5,
    chunk_size: int | None = None,
) -> dict:
    """L((1 - t) w_a + t w_b) for t in [t_min, t_max]; t = 0 is model_a, t = 1 is model_b."""
    steps = check_steps(steps)
    t_min = check_float("t_min", t_min)
    t_max = check_float("t_max", t_max)
    if t_max <= t_min:
        raise ValueError(f"Invalid t_max={t_max}: must be greater than t_min={t_min}")
    wa, wb = _weights(model_a), _weights(model_b)
    _check_direction(wa, wb, "model_b")
    k = np.arange(steps, dtype=np.float64)
    ts = t_min + (t_max - t_min) * k / (steps - 1)
    for exact in (0.0, 1.0):  # endpoints land exactly on the models when they are on the grid
        ts[np.isclose(ts, exact, rtol=0.0, atol=1e-12)] = exact
    coeffs = [[1.0 - t, t] for t in ts]
    loss, acc = evaluate_combinations(model_a, X, y, [wa, wb], coeffs, chunk_size=chunk_size)
    X, y = model_data(model_a, X, y)
    sa, sb = evaluate(model_a, X, y), evaluate(model_b, X, y)
    return {
        "t": ts.tolist(),
        "loss": loss,
        "accuracy": acc,
        "loss_a": sa.loss,
        "loss_b": sb.loss,
        "accuracy_a": sa.accuracy,
        "accuracy_b": sb.accuracy,
    }


def fault_direction_slice(
    model: nn.Module,
    X,
    y,
    fault_model: FaultModel,
    *,
    seed: int = 0,
    steps: int = 51,
    span: float = 1.5,
    chunk_size: int | None = None,
) -> dict:
    """Loss along d = w_faulty - w_deployed from w_deployed: the sampled fault lands at alpha = 1.

    The pattern is trial 0 of a campaign with this seed (rng([seed, 0])), so it is the same
    pattern for every model of the architecture. A non-finite perturbation (an exponent flip to
    Inf/NaN) is reported with ``nonfinite=True``; its losses are inf wherever alpha != 0.
    """
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    alphas = grid_axis(steps, span)
    X, y = model_data(model, X, y)
    inj = Injector(model, fault_model)
    pattern = inj.sample(np.random.default_rng([seed, 0]))
    base, faulty = inj.deployed(), inj.apply(pattern)
    d = {n: faulty[n] - base[n] for n in base}
    nonfinite_entries = sum(int((~torch.isfinite(t)).sum()) for t in d.values())
    finite_sq = sum(
        float(torch.where(torch.isfinite(t), t, 0.0).double().pow(2).sum()) for t in d.values()
    )  # float64: a flipped exponent MSB makes |d| ~ 1e38, whose square overflows float32
    loss, acc = evaluate_combinations(
        model, X, y, [base, d], [[1.0, a] for a in alphas], chunk_size=chunk_size
    )
    at_fault = evaluate(model, X, y, faulty)
    deployed = evaluate(model, X, y, base)
    return {
        "alphas": alphas,
        "loss": loss,
        "accuracy": acc,
        "fault_alpha": 1.0,
        "fault_loss": at_fault.loss,
        "fault_accuracy": at_fault.accuracy,
        "deployed_loss": deployed.loss,
        "deployed_accuracy": deployed.accuracy,
        "clean_loss": evaluate(model, X, y).loss,
        "n_flips": pattern.n_flips,
        "n_sites": pattern.n_sites,
        "direction_norm": float("inf") if nonfinite_entries else float(np.sqrt(finite_sq)),
        "finite_direction_norm": float(np.sqrt(finite_sq)),
        "nonfinite": bool(nonfinite_entries) or not np.isfinite(finite_sq),
        "nonfinite_entries": nonfinite_entries,
        "fault_model": fault_model.to_dict(),
        "seed": seed,
    }


def _check_direction(w: Params, d: Mapping[str, torch.Tensor], name: str) -> None:
    if set(d) != set(w):
        raise ValueError(
            f"Invalid {name}: its parameter names {sorted(d)} differ from the model's {sorted(w)}"
        )
    for n, t in w.items():
        if tuple(d[n].shape) != tuple(t.shape):
            raise ValueError(
                f"Invalid {name}: {n!r} has shape {tuple(d[n].shape)}, the model needs "
                f"{tuple(t.shape)}"
            )
