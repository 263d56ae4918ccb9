"""SAM, ASAM and SAR as torch optimizers (first_step / second_step / step(closure)).

Ascent step of the whole family (Foret et al. 2021; Kwon et al. 2021):
    e(w) = rho * T^2 g / ||T g||,   then descend with the gradient taken at w + e(w).
Geometry fixes the diagonal T:
    plain        T = 1                       (SAM)
    elementwise  T = |w| + eta               (ASAM; bit flips move w in proportion to |w|)
    layer        T = |w| / max|W_layer| + eta (the weight range that sets an int8 step)
With rho = 0 the weights are never touched, so the update equals the base optimizer's exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from sar_core.validate import check_choice, check_float

GEOMETRIES = ("plain", "elementwise", "layer")
# SAR preset chosen from the rho x geometry sweep in benchmarks/rho_sweep.py (see README).
SAR_DEFAULT_GEOMETRY = "elementwise"
SAR_DEFAULT_RHO = 1.0


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimization around any base optimizer.

    Example:
        >>> opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
        >>> loss_fn().backward(); opt.first_step(zero_grad=True)
        >>> loss_fn().backward(); opt.second_step(zero_grad=True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer: type[torch.optim.Optimizer] = torch.optim.SGD,
        *,
        rho: float = 0.05,
        geometry: str = "plain",
        eta: float = 0.01,
        **base_kwargs: Any,
    ) -> None:
        rho = check_float("rho", rho, low=0.0)
        check_choice("geometry", geometry, GEOMETRIES)
        eta = check_float("eta", eta, low=0.0)
        super().__init__(params, dict(rho=rho, geometry=geometry, eta=eta, **base_kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    @staticmethod
    def _t(p: torch.Tensor, group: dict) -> torch.Tensor | None:
        """The diagonal T of the neighbourhood (None = identity)."""
        if group["geometry"] == "plain":
            return None
        a = p.abs()
        if group["geometry"] == "elementwise":
            return a + group["eta"]
        m = a.max()
        return (a / m if m > 0 else torch.zeros_like(a)) + group["eta"]

    @torch.no_grad()
    def ascent_direction(self) -> dict[torch.Tensor, torch.Tensor]:
        """e(w) for every parameter with a gradient, from the current gradients (no update)."""
        tg = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                t = self._t(p, group)
                tg.append(p.grad if t is None else t * p.grad)
        norm = (
            torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in tg]))
            if tg
            else 0
        )
        out = {}
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                t = self._t(p, group)
                out[p] = (
                    p.grad * scale if t is None else t * t * p.grad * scale
                )  # rho T^2 g / ||Tg||
        return out

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Climb to the local maximum w + e(w)."""
        if any(g["rho"] > 0 for g in self.param_groups):
            for p, e in self.ascent_direction().items():
                self.state[p]["old_p"] = p.detach().clone()
                p.add_(e)
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Go back to w and take the base optimizer's step with the gradient from w + e(w)."""
        for group in self.param_groups:
            for p in group["params"]:
                old = self.state[p].pop("old_p", None)
                if old is not None:
                    p.copy_(old)  # exact restore, not p - e(w)
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        """Full SAM step; ``closure`` runs forward + backward and returns the loss at w."""
        if closure is None:
            raise ValueError(
                "Invalid closure=None: SAM needs a closure that runs forward + backward"
            )
        closure = torch.enable_grad()(closure)
        loss = closure()
        self.first_step(zero_grad=True)
        closure()
        self.second_step()
        return loss

    def set_rho(self, rho: float) -> None:
        """Change the radius of every parameter group (used by SAR's calibration)."""
        rho = check_float("rho", rho, low=0.0)
        for g in self.param_groups:
            g["rho"] = rho


class ASAM(SAM):
    """Adaptive SAM: elementwise geometry T = |w| + eta (Kwon et al. 2021)."""

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer=torch.optim.SGD,
        *,
        rho: float = 0.5,
        eta: float = 0.01,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(
            params, base_optimizer, rho=rho, geometry="elementwise", eta=eta, **base_kwargs
        )


class SAR(SAM):
    """SAR: a SAM-family optimizer aimed at a bit-flip fault model (geometry, rho, target)."""

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer=torch.optim.SGD,
        *,
        rho: float = SAR_DEFAULT_RHO,
        geometry: str = SAR_DEFAULT_GEOMETRY,
        eta: float = 0.01,
        fault_model: Any = None,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(params, base_optimizer, rho=rho, geometry=geometry, eta=eta, **base_kwargs)
        self.fault_model = fault_model  # the FaultModel this model is trained against (or None)
