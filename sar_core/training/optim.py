"""SAM, ASAM and SAR as torch optimizers (first_step / second_step / step(closure)).

Ascent step of the whole family (Foret et al. 2021; Kwon et al. 2021):
    e(w) = r * T^2 g / ||T g||,   then descend with the gradient taken at w + e(w).
e(w) is the worst first-order point of the ellipsoid ||T^-1 e|| <= r. The geometry fixes the
diagonal T, and r is the radius:
    plain        T = 1                          r = rho            (SAM)
    elementwise  T = |w| + eta                  r = rho            (ASAM; SAR v1)
    layer        T = |w| / max|W_layer| + eta   r = rho
    fault        T = fault intensity below      r = rho * sqrt(E[n]) (SAR v2; v3 below)

SAR v3 (the default ``sar``; int8 targets): the ascent point is w + v s(w), v = e / s held fixed,
s = max|W| / 127 per tensor (or output channel), and the gradient flows into the range:
    d/dw L(w + v s(w)) = g' + (g' . e / s) ds/dw,   ds/dw = sign(w_k) / 127 at k = argmax |w|
(``_add_range_grad``). Optional ``fault_sample``: a target fault D = dq s(w) is added at the
ascent point. Float targets keep the v2 intensity. rho = 0 turns every term off.

SAR v2 (geometry "fault") derives T and r from its target fault model (format, bits B, rate).
Intensity, per weight i: T_i = sqrt(mean_{b in B'} d_ib^2), the RMS displacement of w_i when one
selected bit b of its stored value flips, B' = B without the catastrophic bits (below):
    int8      d_ib = s * |dq_b|,  |dq_b| = 2^b (b < 7), 128 (b = 7, the two's-complement sign);
              s = max|W| / 127 of the weight's tensor (or output channel): T is constant per
              tensor/channel and proportional to its quantization step.
    float     d_ib = |w_i| * |relative change of flip b| for w_i stored in the format, exact:
              sign 2|w|; exponent bit j: |w|(2^(2^j) - 1) when that bit is 0, |w|(1 - 2^-(2^j))
              when it is 1; mantissa bit k: 2^(k - M) * 2^e(w) (e = the stored exponent).
Occurrence: a fault perturbation D hits n sites, each moving ||T^-1 D||^2 by d_ib^2 / T_i^2
(1 on average over b), so E||T^-1 D||^2 = E[n] = p * N' (BER p; N' = eligible weights x |B'|) or
count * |B'| / |B|. The radius is r = rho * sqrt(E[n]): rho is a dimensionless multiplier
(rho = 1: SAM's worst case sits on the ellipsoid a typical fault reaches).
Catastrophic sites: the exponent MSB of float formats (a weight |w| < 2 multiplied by 2^(2^(E-1)):
2^128 in float32/bfloat16, 2^16 in float16). No finite radius covers them, so they are left out of
T and E[n] and reported instead (``describe_sar``: expected count and P(at least one per trial));
flatness cannot absorb them, clipping at inference or protecting the bit can.
Weights the fault model cannot hit (biases by default, unselected layers) get T = 0: no ascent.
With rho = 0 the weights are never touched, so the update equals the base optimizer's exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from sar_core.faults.model import FaultModel, eligible_parameters
from sar_core.names import GEOMETRIES, SAR_GEOMETRIES  # defined once; 'fault': from the target
from sar_core.training.fault_geometry import (
    Int8Rows,
    covered_bits,
    expected_flips,
    fault_intensity,
)
from sar_core.training.randbet import int8_quantize, random_bit_errors
from sar_core.validate import check_choice, check_float

# SAR preset: SAR v3 (geometry "fault" + the range gradient), chosen on tuning seeds 0-1 over the
# suite's tasks (benchmarks/results/suite_defaults_tuning.md); judged on held-out seeds in the suite.
SAR_DEFAULT_GEOMETRY = "fault"
SAR_DEFAULT_RHO = 0.015  # multiplier of the fault radius sqrt(E[n]); best mean on tuning seeds
SAR_DEFAULT_RANGE_GRAD = True  # SAR v3 terms, used with geometry "fault" and an int8 target
SAR_DEFAULT_FAULT_SAMPLE = False


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

    def _ts(self, groups: list[tuple[dict, list]], in_step: bool) -> list:
        """T per group (``in_step``: w has just been copied into the restore buffers)."""
        return [self._group_ts(group, ps) for group, ps in groups]

    def _with_grads(self) -> list[tuple[dict, list[torch.Tensor]]]:
        """(group, parameters with a gradient) of every group that has any."""
        out = []
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if ps:
                out.append((group, ps))
        return out

    def _ascent_parts(
        self, groups: list[tuple[dict, list]], in_step: bool = False
    ) -> tuple[list[tuple], torch.Tensor | float]:
        """Per group (group, params, T, T*g) and the global norm ||T g||."""
        parts = []
        for (group, ps), ts in zip(groups, self._ts(groups, in_step)):
            gs = [p.grad for p in ps]
            tgs = gs if ts is None else list(torch._foreach_mul(ts, gs))
            parts.append((group, ps, ts, tgs))
        tgs_all = [x for part in parts for x in part[3]]
        if not tgs_all:
            return parts, 0.0
        return parts, torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tgs_all)))

    @torch.no_grad()
    def ascent_direction(self) -> dict[torch.Tensor, torch.Tensor]:
        """e(w) for every parameter with a gradient, from the current gradients (no update)."""
        parts, norm = self._ascent_parts(self._with_grads())
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

    def _olds(self, ps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Buffers that keep w during a step, reused across steps."""
        return [self._old(p) for p in ps]

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
        groups = self._with_grads()
        ps = [p for _, group_ps in groups for p in group_ps]
        if not ps:
            return
        olds = self._olds(ps)
        torch._foreach_copy_(olds, ps)
        self._moved = [(ps, olds)]
        parts, norm = self._ascent_parts(groups, in_step=True)
        for group, ps, ts, tgs in parts:
            scale = float(self._radius(group) / (norm + 1e-12))
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
    """SAR: a SAM-family optimizer aimed at a bit-flip fault model (geometry, rho, target).

    With ``geometry="fault"`` the fault model sets T and the radius (module docstring); ``rho`` is
    then the dimensionless multiplier. SAR v3 adds, for int8 targets, ``range_grad`` (the
    gradient flows into each tensor's quantization step s = max|W| / 127 through the
    perturbation, which is measured in units of s) and ``fault_sample`` (a fault pattern drawn
    from the target is added to the ascent point each step; its size is Δq·s(w)). Pass
    ``model.named_parameters()`` so the fault model's layer selection can be matched.
    """

    _geometries = SAR_GEOMETRIES

    def __init__(
        self,
        params: Iterable[Any],
        base_optimizer=torch.optim.SGD,
        *,
        rho: float = SAR_DEFAULT_RHO,
        geometry: str = SAR_DEFAULT_GEOMETRY,
        eta: float = 0.01,
        fault_model: FaultModel | None = None,
        range_grad: bool = False,
        fault_sample: bool = False,
        seed: int = 0,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(params, base_optimizer, rho=rho, geometry=geometry, eta=eta, **base_kwargs)
        self.fault_model = fault_model  # the FaultModel this model is trained against (or None)
        self.fault_radius = 1.0
        self._eligible: set[int] = set()
        v3 = bool(range_grad or fault_sample)
        if v3 and (geometry != "fault" or fault_model is None or fault_model.format != "int8"):
            raise ValueError(
                f"Invalid range_grad={range_grad}, fault_sample={fault_sample} with "
                f"geometry={geometry!r}: SAR v3's range terms need geometry 'fault' and an int8 "
                "target fault model"
            )
        if fault_sample and fault_model.ber is None:  # type: ignore[union-attr]
            raise ValueError("Invalid fault_model for fault_sample=True: give a ber, not a count")
        self.range_grad = bool(range_grad)
        self.fault_sample = bool(fault_sample)
        self._gen = torch.Generator().manual_seed(int(seed) + 7919)  # SAR's own fault draws
        if geometry == "fault":
            self._setup_fault_geometry()

    def _named(self) -> list[tuple[str, torch.Tensor]]:
        out, k = [], 0
        for group in self.param_groups:
            names = group.get("param_names")
            for i, p in enumerate(group["params"]):
                out.append((names[i] if names else f"p{k}", p))
                k += 1
        return out

    def _setup_fault_geometry(self) -> None:
        fm = self.fault_model
        if not isinstance(fm, FaultModel):
            raise ValueError(
                f"Invalid fault_model={fm!r}: geometry 'fault' needs a FaultModel (its target)"
            )
        named = self._named()
        if fm.layers is not None and not any(g.get("param_names") for g in self.param_groups):
            raise ValueError(
                f"Invalid params for layers={list(fm.layers)}: pass model.named_parameters() so "
                "SAR can match the fault model's layers"
            )
        shapes = {n: tuple(p.shape) for n, p in named}
        elig = set(eligible_parameters(shapes, fm))
        by_name = dict(named)
        self._eligible = {id(by_name[n]) for n in elig}
        n_elem = sum(by_name[n].numel() for n in elig)
        self.fault_radius = math.sqrt(expected_flips(fm, n_elem)[0])
        if fm.format == "int8":
            kept, _ = covered_bits(fm)
            self._int8_rms_dq = math.sqrt(
                sum((128.0 if b == 7 else 2.0**b) ** 2 for b in kept) / len(kept)
            )

    def _t_of(self, p: torch.Tensor, group: dict) -> torch.Tensor | None:
        if group["geometry"] != "fault":
            return self._t(p, group)
        if id(p) not in self._eligible:
            return p.new_zeros(())  # broadcasts: no ascent on weights the faults cannot hit
        return fault_intensity(p.detach(), self.fault_model)  # type: ignore[arg-type]

    def _int8(self) -> bool:
        """Whether T comes from int8 ranges (geometry 'fault' in every group, int8 target)."""
        fm = self.fault_model
        return (
            fm is not None
            and fm.format == "int8"
            and all(g["geometry"] == "fault" for g in self.param_groups)
        )

    def _rows(self, elig: list[torch.Tensor]) -> Int8Rows:
        """The row layout of the eligible weights with a gradient (rebuilt when they change)."""
        rows = getattr(self, "_layout", None)
        if rows is None or rows.key != Int8Rows.key_of(elig):
            rows = self._layout = Int8Rows(elig, self.fault_model.granularity)  # type: ignore[union-attr]
        return rows

    def _olds(self, ps: list[torch.Tensor]) -> list[torch.Tensor]:
        if not self._int8():
            return super()._olds(ps)
        elig = [p for p in ps if id(p) in self._eligible]
        views = iter(self._rows(elig).views) if elig else iter(())
        return [next(views) if id(p) in self._eligible else self._old(p) for p in ps]

    def _ts(self, groups: list[tuple[dict, list]], in_step: bool) -> list:
        """int8: T = s(w) RMS|dq| per tensor or output channel (0 where faults cannot hit).

        s = max|W| / 127 of every row of the eligible weights at once (``Int8Rows``). In a step the
        rows, their max|w| and its first position are kept for the range gradient and the sampled
        fault: both are functions of the same w.
        """
        self._int8_step = None
        if not self._int8():
            return super()._ts(groups, in_step)
        ps = [p for _, group_ps in groups for p in group_ps]
        elig = [p for p in ps if id(p) in self._eligible]
        t_of: dict[int, torch.Tensor] = {}
        if elig:
            rows = self._rows(elig)
            amax, first = rows.amax_first(None if in_step else elig)  # (R, 1) each
            s = torch.where(amax > 0, amax / 127.0, 1.0)  # int8 step (all-zero row: any s)
            t_of = {id(p): t for p, t in zip(elig, rows.per_tensor(s * self._int8_rms_dq))}
            if in_step:
                self._int8_step = (rows, elig, amax, first, s)
        zero: dict[tuple, torch.Tensor] = {}
        out = []
        for _, group_ps in groups:
            ts = []
            for p in group_ps:
                t = t_of.get(id(p))
                if t is None:  # a 0-d zero broadcasts: no ascent where the faults cannot hit
                    t = zero.get((p.dtype, p.device))
                    if t is None:
                        t = zero[(p.dtype, p.device)] = p.new_zeros(())
                ts.append(t)
            out.append(ts)
        return out

    def _radius(self, group: dict) -> float:
        return group["rho"] * (self.fault_radius if group["geometry"] == "fault" else 1.0)

    def _ascend(self) -> None:
        """Climb to w + e(w); SAR v3 with fault_sample adds a sampled target fault Δq·s(w)."""
        self._int8_step = None
        super()._ascend()
        if self.fault_sample and self._int8_step is not None:
            fm = self.fault_model
            rows, elig, _, _, s = self._int8_step
            # in parameter order: the same draws as one loop over the eligible weights
            for p, w, s_p in zip(elig, rows.views, rows.per_tensor(s)):
                q = int8_quantize(w, s_p)
                qf, _ = random_bit_errors(q, fm.bits, fm.ber, self._gen)  # type: ignore[union-attr]
                p.add_((qf.float() - q.float()) * s_p)  # D = Δq s, |D| <= 255 s

    def _descend(self) -> None:
        """Back to w; v3: add d L / d s · d s / d w, then the base optimizer's step."""
        step, self._int8_step = getattr(self, "_int8_step", None), None
        if self.range_grad and step is not None:
            rows, elig, amax, first, _ = step
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in elig]
            deltas = torch._foreach_sub(elig, rows.views)  # p - w: the displacement e (+ D)
            _add_range_grads(grads, deltas, rows.rows, amax, rows.at(first), rows.row_start + first)
        super()._descend()


def _add_range_grads(
    grads: list[torch.Tensor],
    deltas: list[torch.Tensor],
    rows: list[int],
    amax: torch.Tensor,
    w_top: torch.Tensor,
    top: torch.Tensor,
) -> None:
    """grad += (g · delta / s) ds/dw for every tensor: delta = v s(w) scales with s = max|W|/127.

    With v held fixed, d L(w + v s(w)) / d s = g · v = g · delta / s, and s depends on w only
    through the largest |w| of the tensor (per output channel with granularity "channel"):
    ds / dw = sign(w) / 127 there. Per tensor/channel: grad[argmax] += (g · delta) / max|w|.
    ``rows``: rows (1 or C) of each tensor; per row (R, 1): ``amax`` = max|w|, ``w_top`` = w at
    its first argmax, ``top`` = that position in the tensor's flat order.
    """
    prods = torch._foreach_mul(grads, deltas)
    if all(r == 1 for r in rows):
        dot = torch.stack([x.sum() for x in prods]).view(-1, 1)  # (R, 1)
    else:
        dot = torch.cat([x.reshape(r, -1).sum(dim=1, keepdim=True) for x, r in zip(prods, rows)])
    add = dot / torch.where(amax > 0, amax, 1.0) * torch.sign(w_top)
    for g, k, a in zip(
        grads, top.view(-1).split_with_sizes(rows), add.view(-1).split_with_sizes(rows)
    ):
        g.put_(k, a, accumulate=True)  # one position per row: g[k] + a


def _add_range_grad(grad: torch.Tensor, delta: torch.Tensor, w: torch.Tensor, gran: str) -> None:
    """The range gradient of one tensor (``_add_range_grads`` for a single weight)."""
    rows = w.shape[0] if gran == "channel" and w.dim() > 1 else 1
    w2 = w.reshape(rows, -1)
    amax, first = w2.abs().max(dim=1, keepdim=True)
    start = torch.arange(rows, device=w.device).view(-1, 1) * w2.shape[1]
    _add_range_grads([grad], [delta], [rows], amax, w2.gather(1, first), start + first)
