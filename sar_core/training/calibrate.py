"""SAR's radius calibrated to a fault model.

rho* solves  L(w + e(rho)) - L(w) = E_faults[L(w_faulty)] - L(w_deployed):
"a worst case (one SAM ascent step) as harmful as the typical fault". Catastrophic sites (the
exponent MSB of float formats) are left out of the expectation and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sar_core.engine.evaluate import as_tensors, model_device
from sar_core.engine.montecarlo import loss_increases
from sar_core.faults.model import FaultModel, catastrophic_bits
from sar_core.training.optim import GEOMETRIES, SAM
from sar_core.validate import check_choice, check_int


@dataclass(frozen=True)
class Calibration:
    """Result of a calibration: the radius and the numbers it came from."""

    rho: float
    target_increase: float  # mean loss increase under the faults (catastrophic bits excluded)
    sam_increase: float  # L(w + e(rho)) - L(w) at the returned rho
    excluded_bits: tuple[int, ...]  # catastrophic bit positions left out
    nonfinite_trials: int  # trials whose faulty loss was not finite (left out of the mean)
    saturated: bool  # True when even rho_max did not reach the target

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return {
            "rho": self.rho,
            "target_increase": self.target_increase,
            "sam_increase": self.sam_increase,
            "excluded_bits": list(self.excluded_bits),
            "nonfinite_trials": self.nonfinite_trials,
            "saturated": self.saturated,
        }


def fault_loss_increase(
    model: nn.Module, X: torch.Tensor, y: torch.Tensor, fm: FaultModel, trials: int, seed: int
) -> tuple[float, int, tuple[int, ...]]:
    """Mean loss increase under ``fm`` with catastrophic bits removed; (mean, n_nonfinite, excluded)."""
    excluded = tuple(b for b in fm.bits if b in catastrophic_bits(fm.format))  # type: ignore[union-attr]
    kept = tuple(b for b in fm.bits if b not in excluded)  # type: ignore[union-attr]
    if not kept:
        raise ValueError(
            f"Invalid bits={list(fm.bits)} for calibration: only catastrophic bits {list(excluded)} "
            "are selected; choose other bits or give rho by hand"
        )
    _, inc, _, _ = loss_increases(model, X, y, replace(fm, bits=kept), trials=trials, seed=seed)
    finite = np.isfinite(inc)
    mean = float(np.mean(inc[finite])) if finite.any() else float("inf")
    return mean, int((~finite).sum()), excluded


def sam_loss_increase(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    rhos: list[float],
    geometry: str,
    eta: float = 0.01,
) -> list[float]:
    """L(w + e(rho)) - L(w) for each rho, with e from one gradient at w (a SAM ascent step)."""
    params = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    loss = F.cross_entropy(functional_call(model, params, (X,)), y)
    grads = torch.autograd.grad(loss, list(params.values()))
    group = {"geometry": geometry, "eta": eta}
    with torch.no_grad():
        tg = []
        for p, g in zip(params.values(), grads):
            t = SAM._t(p, group)
            tg.append(g if t is None else t * g)
        norm = torch.sqrt(sum((x * x).sum() for x in tg)) + 1e-12
        unit = {}
        for (n, p), g in zip(params.items(), grads):
            t = SAM._t(p, group)
            unit[n] = (g if t is None else t * t * g) / norm  # e(rho) = rho * unit
        out = []
        for r in rhos:
            shifted = {n: p + r * unit[n] for n, p in params.items()}
            out.append(
                float(F.cross_entropy(functional_call(model, shifted, (X,)), y)) - float(loss)
            )
    return out


def calibrate_rho(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    fm: FaultModel,
    *,
    geometry: str = "elementwise",
    eta: float = 0.01,
    trials: int = 16,
    seed: int = 0,
    rho_max: float = 4.0,
    iters: int = 14,
) -> Calibration:
    """Bisection for the rho whose SAM loss increase equals the fault model's expected increase."""
    check_choice("geometry", geometry, GEOMETRIES)
    trials = check_int("trials", trials, low=1, high=1000)
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        X, y = as_tensors(X, y, model_device(model))
    target, bad, excluded = fault_loss_increase(model, X, y, fm, trials, seed)
    target = max(target, 0.0)
    hi_inc = sam_loss_increase(model, X, y, [rho_max], geometry, eta)[0]
    if not np.isfinite(target) or hi_inc < target:
        return Calibration(rho_max, target, hi_inc, excluded, bad, True)
    lo, hi = 0.0, rho_max
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if sam_loss_increase(model, X, y, [mid], geometry, eta)[0] < target:
            lo = mid
        else:
            hi = mid
    rho = 0.5 * (lo + hi)
    inc = sam_loss_increase(model, X, y, [rho], geometry, eta)[0]
    return Calibration(rho, target, inc, excluded, bad, False)
