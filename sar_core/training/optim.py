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
s = max|W| / 127 per tensor (or output channel; 1 where that rounds to 0, as the injector's
``bits.int8_scale``), and the gradient flows into the range where s follows max|W|:
    d/dw L(w + v s(w)) = g' + (g' . e / s) ds/dw,   ds/dw = sign(w_k) / 127 at k = argmax |w|
(``_add_range_grads``). Optional ``fault_sample``: a target fault D = dq s(w) is added at the
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
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import torch

from sar_core.faults.model import FaultModel, eligible_parameters
from sar_core.names import GEOMETRIES, SAR_GEOMETRIES  # defined once; 'fault': from the target
from sar_core.training.fault_geometry import (
    Int8Rows,
    covered_bits,
    expected_flips,
    fault_intensities,
)
from sar_core.training.randbet import expected_int8_fault, int8_quantize, random_bit_errors
from sar_core.training.sam import ASAM, SAM, _ascent_scale, _host

# SAM and ASAM live in sar_core.training.sam; the family is imported from here
__all__ = ["ASAM", "GEOMETRIES", "SAM", "SAR", "SAR_GEOMETRIES"]

# SAR preset: SAR v3 (geometry "fault" + the range gradient + the fault mean), chosen on tuning
# seeds 0-1 over the suite's tasks (benchmarks/results/suite_defaults_tuning.md); judged on
# held-out seeds in the suite.
SAR_DEFAULT_GEOMETRY = "fault"
SAR_DEFAULT_RHO = 0.015  # multiplier of the fault radius sqrt(E[n]); best mean on tuning seeds
SAR_DEFAULT_RANGE_GRAD = True  # SAR v3 terms, used with geometry "fault" and an int8 target
SAR_DEFAULT_FAULT_SAMPLE = False
SAR_DEFAULT_FAULT_MEAN = 0.5  # kappa: every other step 2 kappa E[D|w] at the ascent point (int8)
SAR_DEFAULT_FAULT_MEAN_ALT = True


class _Plan(NamedTuple):
    """What SAR's int8 ascent iterates over, kept across steps (``SAR._plan``)."""

    ps: list[torch.Tensor]  # every parameter with a gradient, in group order
    hit: list[bool]  # whether each can be hit by the target faults
    elig: list[torch.Tensor]  # the ones that can
    radii: list[float]  # the radius of each eligible one (its group's)
    radius: float | None  # the radius of all of them, or None if they differ
    layouts: list[Int8Rows]  # their rows, one layout per dtype and device
    ts: list[torch.Tensor]  # T of each eligible one (views of its layout's ``t``)
    mask: Any  # None if every one can be hit, else 1/0 per parameter (NumPy on the CPU)
    moved: list[tuple[list, list]]  # (weights, where their w is kept) per layout: SAM's restore


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
        fault_mean: float = 0.0,
        fault_mean_alt: bool = False,
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
        # fraction of the expected target fault E[D | w] added to the ascent point (int8 only):
        # E[dq | q] = p sum_b dq_b(q), a (1 - 2p) shrink of every code for all 8 bits
        self.fault_mean = float(fault_mean)
        if self.fault_mean and (
            geometry != "fault" or fault_model is None or fault_model.format != "int8"
        ):
            raise ValueError(
                f"Invalid fault_mean={fault_mean}: needs geometry 'fault' and an int8 target"
            )
        self._mean_shift: list = []
        # alternate: 2 kappa E[D] every other step, none between (mean of the two losses, unbiased)
        self.fault_mean_alt = bool(fault_mean_alt)
        self._mean_steps = 0
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
            self._int8_bits = tuple(kept)
            self._site_rate = expected_flips(fm, n_elem)[0] / max(1, n_elem * len(kept))

    def _group_ts(self, group: dict, ps: list[torch.Tensor]) -> list[torch.Tensor] | None:
        """T of a group's parameters once per step; the fault geometry computes every eligible
        tensor at once (``fault_intensities``: float formats in one pass)."""
        if group["geometry"] != "fault":
            return super()._group_ts(group, ps)
        elig = [p for p in ps if id(p) in self._eligible]
        ts = fault_intensities([p.detach() for p in elig], self.fault_model)  # type: ignore[arg-type]
        t_of = dict(zip(map(id, elig), ts))
        return [t_of.get(id(p), p.new_zeros(())) for p in ps]  # 0: faults cannot hit it

    def _radius(self, group: dict) -> float:
        return group["rho"] * (self.fault_radius if group["geometry"] == "fault" else 1.0)

    def _int8(self) -> bool:
        """Whether T comes from int8 ranges (geometry 'fault' in every group, int8 target)."""
        fm = self.fault_model
        return (
            fm is not None
            and fm.format == "int8"
            and all(g["geometry"] == "fault" for g in self.param_groups)
        )

    def _plan(self, *, fresh: bool = False) -> _Plan | None:
        """What a step's int8 ascent iterates over (``_Plan``), or None if no eligible weight has
        a gradient. Kept for the steps while the parameters with a gradient and the radii stay
        the same (a parameter whose shape changes in place needs a new optimizer, as the base
        optimizer's state does); ``fresh``: a new one (new layouts), not kept."""
        key = (
            tuple(p.grad is not None and id(p) for g in self.param_groups for p in g["params"]),
            tuple(self._radius(g) for g in self.param_groups),
        )
        cached = getattr(self, "_plan_cache", None)
        if not fresh and cached is not None and cached[0] == key:
            return cached[1]
        ps, hit, radii = [], [], []  # every parameter with a gradient, in group order
        for group, r in zip(self.param_groups, key[1]):
            for p in group["params"]:
                if p.grad is not None:
                    ps.append(p)
                    hit.append(id(p) in self._eligible)
                    radii.append(r)
        elig = [p for p, h in zip(ps, hit) if h]
        plan = None
        if elig:
            by_kind: dict[tuple, list[torch.Tensor]] = {}  # one layout per dtype and device
            for p in elig:
                by_kind.setdefault((p.dtype, p.device), []).append(p)
            gran = self.fault_model.granularity  # type: ignore[union-attr]
            layouts = [Int8Rows(kind, gran) for kind in by_kind.values()]
            t_of = {id(p): t for rows in layouts for p, t in zip(rows.params, rows.t_views)}
            mask = None
            if not all(hit):
                dev = ps[0].device
                mask = torch.tensor(hit, dtype=ps[0].dtype, device=dev)
                mask = mask.numpy() if dev.type == "cpu" else mask
            radii = [r for r, h in zip(radii, hit) if h]
            plan = _Plan(
                ps, hit, elig, radii, radii[0] if len(set(radii)) == 1 else None, layouts,
                [t_of[id(p)] for p in elig], mask, [(rows.params, rows.views) for rows in layouts],
            )  # fmt: skip
        if not fresh:
            self._plan_cache = (key, plan)
        return plan

    def _int8_ascent(self, in_step: bool) -> tuple | None:
        """The int8 ascent from the current gradients: T = s(w) RMS|dq|, T g and r / ||T g||.

        Returns (the step's ``_Plan``, T g of its eligible weights, r / ||T g||: one number, or
        one per eligible weight if the groups' radii differ), or None if no eligible weight has a
        gradient. s = max|W| / 127 of every row (tensor or output channel; the injector's rule,
        ``bits.int8_scale_of_max``) at once (``Int8Rows``, which keeps them for the step); the
        other parameters have T = 0 and stay at w. ``in_step``: w is first copied into the layouts' buffers, SAM's
        restore copies; otherwise fresh layouts are used (a step's records stay untouched).
        """
        plan = self._plan(fresh=not in_step)
        if plan is None:
            return None
        for rows in plan.layouts:
            if in_step:
                torch._foreach_copy_(rows.views, rows.params)  # w, restored by second_step
            rows.find_max(None if in_step else rows.params, first=self.range_grad)
            rows.set_t(self._int8_rms_dq)
        tgs = torch._foreach_mul(plan.ts, [p.grad for p in plan.elig])
        # ||T g|| over every parameter with a gradient, the same reduction as SAM's: elsewhere
        # T g = 0 g, whose norm is 0 (NaN where g is not finite), here ||g|| x 0
        if plan.mask is None:
            norms = torch.stack(torch._foreach_norm(tgs))
        else:
            it = iter(tgs)
            mixed = [next(it) if h else p.grad for p, h in zip(plan.ps, plan.hit)]
            norms = torch.stack(torch._foreach_norm(mixed))
            if isinstance(plan.mask, np.ndarray):  # on the CPU: the same product, in NumPy
                n = norms.numpy()
                np.multiply(n, plan.mask, out=n)
            else:
                norms.mul_(plan.mask)
        norm = _host(torch.linalg.vector_norm(norms))
        if plan.radius is not None:  # one radius (one group, or equal ones)
            return plan, tgs, _ascent_scale(plan.radius, norm)
        scale = {r: _ascent_scale(r, norm) for r in set(plan.radii)}
        return plan, tgs, [scale[r] for r in plan.radii]

    @torch.no_grad()
    def ascent_direction(self) -> dict[torch.Tensor, torch.Tensor]:
        """e(w) for every parameter with a gradient (no update; 0 where faults cannot hit)."""
        if not self._int8():
            return super().ascent_direction()
        out = {
            p: torch.zeros_like(p)
            for g in self.param_groups
            for p in g["params"]
            if p.grad is not None
        }
        parts = self._int8_ascent(in_step=False)
        if parts is not None:
            plan, tgs, scales = parts
            if not isinstance(scales, list):
                scales = [scales] * len(tgs)
            for p, t, tg, scale in zip(plan.elig, plan.ts, tgs, scales):
                out[p] = t * tg * scale  # r T^2 g / ||T g||
        return out

    def _ascend(self) -> None:
        """Climb to w + e(w); SAR v3 with fault_sample adds a sampled target fault Δq·s(w)."""
        self._int8_step = None
        if not self._int8():
            super()._ascend()
            return
        self._moved = []
        if not any(self._radius(g) > 0 for g in self.param_groups):
            return
        parts = self._int8_ascent(in_step=True)
        if parts is None:
            return
        plan, tgs, scales = parts
        elig, layouts = plan.elig, plan.layouts
        self._moved = plan.moved
        if isinstance(scales, list):  # groups with different radii
            torch._foreach_addcmul_(elig, plan.ts, tgs, scales)
        else:
            torch._foreach_addcmul_(elig, plan.ts, tgs, value=scales)  # w + r T (T g) / ||Tg||
        self._int8_step = layouts
        self._mean_shift = []
        kappa = self.fault_mean
        if self.fault_mean_alt:
            self._mean_steps += 1
            kappa = 2 * kappa if self._mean_steps % 2 == 0 else 0.0
        if kappa:  # kappa E[D | w] = c sum_b dq_b s on every eligible int8 tensor
            c = self._site_rate * kappa
            for rows in layouts:
                if len(self._int8_bits) == 8:  # closed form on whole buffers
                    ms = rows.mean_fault(c)
                else:
                    ms = [expected_int8_fault(w, s, self._int8_bits, c)
                          for w, s in zip(rows.views, rows.scale_views)]  # fmt: skip
                torch._foreach_add_(rows.params, ms)
                self._mean_shift.append((rows.params, ms))
        if self.fault_sample:
            fm = self.fault_model
            at = {
                id(p): (w, s)
                for rows in layouts
                for p, w, s in zip(rows.params, rows.views, rows.scale_views)
            }
            for p in elig:  # in parameter order: the same draws as one loop over the weights
                w, s = at[id(p)]
                q = int8_quantize(w, s)
                qf, _ = random_bit_errors(q, fm.bits, fm.ber, self._gen)  # type: ignore[union-attr]
                p.add_((qf.float() - q.float()) * s)  # D = Δq s, |D| <= 255 s

    def _descend(self) -> None:
        """Back to w; v3: add d L / d s · d s / d w, then the base optimizer's step."""
        layouts, self._int8_step = getattr(self, "_int8_step", None), None
        # the mean fault does not scale with s: it stays out of the range term
        for ps, ms in self._mean_shift:
            torch._foreach_sub_(ps, ms)
        self._mean_shift = []
        if self.range_grad and layouts:
            for rows in layouts:
                ps = rows.params
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in ps]
                # g . (p - w) per element, computed in p, which super() restores from w
                torch._foreach_sub_(ps, rows.views)
                torch._foreach_mul_(ps, grads)
                _add_range_grads(grads, ps, rows)
        super()._descend()


def _add_range_grads(grads: list[torch.Tensor], prods: list[torch.Tensor], rows: Int8Rows) -> None:
    """grad += (g · delta / s) ds/dw for every tensor: delta = v s(w) scales with s = max|W|/127.

    With v held fixed, d L(w + v s(w)) / d s = g · v = g · delta / s, and s depends on w only
    through the largest |w| of the tensor (per output channel with granularity "channel"):
    ds / dw = sign(w) / 127 there. Per tensor/channel: grad[k] += (g · delta) / max|w| sign(w_k)
    at k = the first argmax of |w|, computed as (g · delta) / w_k (|w_k| = max|w|: the same
    float32 result; an all-zero row divides by inf and adds 0). ``prods``: g · delta per element;
    ``rows``: the layout holding w and each row's max (``find_max``).
    """
    for x, dims, d in zip(prods, rows.sum_dims, rows.dot_views):  # g . delta per row
        torch.sum(x, dims, keepdim=d.dim() > 0, out=d)
    rows.range_coefs()  # dot / w_top where s = max|w| / 127 (elsewhere s = 1: no range term)
    for g, k, a in zip(grads, rows.top_views, rows.add_views):  # one position per row: g[k] + a
        if g.is_contiguous():
            g.view(-1).index_add_(0, k, a)  # put_(accumulate=True) takes 2.5x as long
        else:
            g.put_(k, a, accumulate=True)


def _add_range_grad(grad: torch.Tensor, delta: torch.Tensor, w: torch.Tensor, gran: str) -> None:
    """The range gradient of one tensor (``_add_range_grads`` for a single weight)."""
    rows = Int8Rows([w], gran)
    rows.views[0].copy_(w)
    rows.find_max()
    rows.set_t(1.0)
    _add_range_grads([grad], [delta * grad], rows)
