"""SAM and ASAM: the sharpness-aware optimizers SAR builds on (first_step / second_step / step).

The ascent e(w) = r T^2 g / ||T g|| for the fault-free geometries (plain: T = 1, SAM; elementwise:
T = |w| + eta, ASAM; layer: T = |w| / max|W_layer| + eta); the formulas of the whole family are
in sar_core.training.optim, which is also where all three are imported from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from sar_core.names import GEOMETRIES
from sar_core.validate import check_choice, check_float


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimization around any base optimizer.

    Example:
        >>> opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1, momentum=0.9)
        >>> loss_fn().backward(); opt.first_step(zero_grad=True)
        >>> loss_fn().backward(); opt.second_step(zero_grad=True)
    """

    _geometries = GEOMETRIES

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
        check_choice("geometry", geometry, self._geometries)
        eta = check_float("eta", eta, low=0.0)
        super().__init__(params, dict(rho=rho, geometry=geometry, eta=eta, **base_kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **base_kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    @staticmethod
    def _t(p: torch.Tensor, group: dict) -> torch.Tensor | None:
        """The diagonal T of a fault-free geometry (None = identity)."""
        if group["geometry"] == "plain":
            return None
        a = p.abs()
        if group["geometry"] == "elementwise":
            return a.add_(group["eta"])
        m = a.max()
        return (a.div_(m) if m > 0 else a.zero_()).add_(group["eta"])

    def _t_of(self, p: torch.Tensor, group: dict) -> torch.Tensor | None:
        return self._t(p, group)

    def _radius(self, group: dict) -> float:
        return group["rho"]

    def _group_ts(self, group: dict, ps: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """T of each parameter of a group, computed once per step (None = identity)."""
        if group["geometry"] == "plain":
            return None
        if group["geometry"] == "elementwise":  # T = |w| + eta, batched over the group
            ts = torch._foreach_abs(ps)
            torch._foreach_add_(ts, group["eta"])
            return list(ts)
        return [self._t_of(p, group) for p in ps]  # type: ignore[misc]

    def _ascent_parts(self) -> tuple[list[tuple], torch.Tensor | float]:
        """Per group (group, params, T, T*g) and the global norm ||T g||."""
        parts = []
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            gs = [p.grad for p in ps]
            ts = self._group_ts(group, ps)
            tgs = gs if ts is None else list(torch._foreach_mul(ts, gs))
            parts.append((group, ps, ts, tgs))
        tgs_all = [x for part in parts for x in part[3]]
        if not tgs_all:
            return parts, 0.0
        return parts, torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tgs_all)))

    @torch.no_grad()
    def ascent_direction(self) -> dict[torch.Tensor, torch.Tensor]:
        """e(w) for every parameter with a gradient, from the current gradients (no update)."""
        parts, norm = self._ascent_parts()
        out = {}
        for group, ps, ts, tgs in parts:
            scale = self._radius(group) / (norm + 1e-12)
            for k, p in enumerate(ps):
                out[p] = tgs[k] * scale if ts is None else ts[k] * tgs[k] * scale  # r T^2 g/||Tg||
        return out

    def _old(self, p: torch.Tensor) -> torch.Tensor:
        buf = self.state[p].get("old_p")
        if buf is None or buf.shape != p.shape:
            buf = self.state[p]["old_p"] = torch.empty_like(p)
        return buf

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Climb to the local maximum w + e(w) (w kept in buffers reused across steps)."""
        self._ascend()
        if zero_grad:
            self.zero_grad()

    def _ascend(self) -> None:
        self._moved: list[tuple[list, list]] = []
        if not any(self._radius(g) > 0 for g in self.param_groups):
            return
        parts, norm = self._ascent_parts()
        norm = _host(norm)
        for group, ps, ts, tgs in parts:
            olds = [self._old(p) for p in ps]
            torch._foreach_copy_(olds, ps)
            self._moved.append((ps, olds))
            scale = _ascent_scale(self._radius(group), norm)
            if ts is None:
                torch._foreach_add_(ps, tgs, alpha=scale)  # w + r g / ||g||
            else:
                torch._foreach_addcmul_(ps, ts, tgs, value=scale)  # w + r T (T g) / ||Tg||

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Go back to w and take the base optimizer's step with the gradient from w + e(w)."""
        self._descend()
        if zero_grad:
            self.zero_grad()

    def _descend(self) -> None:
        for ps, olds in getattr(self, "_moved", []):
            torch._foreach_copy_(ps, olds)  # exact restore, not p - e(w)
        self._moved = []
        self.base_optimizer.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch.optim.Optimizer.zero_grad, without its per-call profiler hooks (SAM calls it
        twice a step)."""
        if not set_to_none:
            super().zero_grad(set_to_none=False)
            return
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = None

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


def _host(norm: torch.Tensor | float) -> float | np.floating:
    """A 0-d float32 norm as a NumPy float32 (one .item()); other values as they are."""
    if isinstance(norm, torch.Tensor) and norm.dtype == torch.float32:
        return np.float32(norm.item())
    return norm


def _ascent_scale(radius: float, norm: torch.Tensor | float | np.floating) -> float:
    """r / (||T g|| + 1e-12), rounded as the 0-d float32 tensor expression would be.

    On a tensor ``r / (norm + 1e-12)`` is ``(norm + f32(1e-12)).reciprocal() * f32(r)``, each op
    rounded to float32; NumPy float32 scalars do the same three roundings on the host.
    """
    if isinstance(norm, np.float32):
        return float(np.float32(radius) * (np.float32(1.0) / (norm + np.float32(1e-12))))
    return float(radius / (norm + 1e-12))


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
