"""Weight clipping and random bit error training (RandBET; Stutz et al., MLSys 2021).

clip: every weight tensor (parameters with >= 2 dims; biases stay free) is clamped to
[-w_max, w_max] after each optimizer step. RandBET: each training forward pass sees the weights
int8-quantized (symmetric, s = max|W| / 127 per tensor or channel: ``bits.int8_scale``, the
injector's), once clean and once with every selected bit of every code flipped independently with
probability p; the mean of the two losses is differentiated with the straight-through estimator
(the quantized and faulty weights pass their gradient to the float weights unchanged), then the
step is clipped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sar_core.faults.model import FaultModel, eligible_parameters
from sar_core.formats import bits as B


def clip_bounds(model: nn.Module, w_max: float | None, w_max_rel: float) -> dict[str, float]:
    """Per weight tensor (>= 2 dims) its clamp: ``w_max``, or ``w_max_rel`` x its current max|w|.

    Called at initialisation, the relative bound is scale-free: it follows each layer's own
    initial range (fan-in dependent), so one default fits an MLP and a CNN alike.
    """
    return {
        n: float(w_max) if w_max is not None else w_max_rel * float(p.detach().abs().max())
        for n, p in model.named_parameters()
        if p.dim() >= 2
    }


def clip_weights(model: nn.Module, w_max: float | dict[str, float]) -> None:
    """Clamp every weight tensor (>= 2 dims; biases stay free) to [-w_max, w_max] (or per name)."""
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() >= 2:
                b = w_max[n] if isinstance(w_max, dict) else w_max
                p.clamp_(-b, b)


def int8_codes(w: torch.Tensor, granularity: str = "tensor") -> tuple[torch.Tensor, torch.Tensor]:
    """(q int8, s) with q = clip(round(w / s), -127, 127), s = bits.int8_scale(w) (the injector's
    float32 scale: max|w| / 127, per tensor or output channel; one for a 1-D tensor), as
    bits.encode."""
    s = B.int8_scale(w.detach(), granularity)
    return int8_quantize(w, s), s


def int8_quantize(w: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """int8 codes q = clip(round(w / s), -127, 127) of ``w`` at step ``s`` (broadcastable)."""
    return torch.round(w.detach() / s).clamp_(-127, 127).to(torch.int8)


def random_bit_errors(
    q: torch.Tensor, bits: tuple[int, ...], ber: float, gen: torch.Generator
) -> tuple[torch.Tensor, int]:
    """Flip every selected bit of every int8 code independently with probability ``ber``."""
    hits = torch.rand((len(bits),) + tuple(q.shape), generator=gen) < ber  # (|B|, *q.shape)
    weights = torch.tensor([1 << b for b in bits], dtype=torch.int32).reshape(
        (-1,) + (1,) * q.dim()
    )
    mask = (hits.to(torch.int32) * weights).sum(0).to(torch.uint8)  # distinct bits: sum = OR
    flipped = (q.view(torch.uint8) ^ mask).view(torch.int8)
    return flipped, int(hits.sum())


class RandBET:
    """Per-step RandBET forward: losses at the quantized and at the bit-error weights (STE)."""

    def __init__(self, model: nn.Module, fm: FaultModel, seed: int) -> None:
        shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
        self.names = eligible_parameters(shapes, fm)
        self.fm = fm
        self.gen = torch.Generator().manual_seed(seed)
        self.flips = 0
        self.sites = 0

    def loss(self, model: nn.Module, xb, yb) -> tuple[torch.Tensor, torch.Tensor]:
        params = dict(model.named_parameters())
        clean, faulty = dict(params), dict(params)
        for n in self.names:
            w = params[n]
            q, s = int8_codes(w, self.fm.granularity)
            qf, k = random_bit_errors(q, self.fm.bits, self.fm.ber, self.gen)  # type: ignore[arg-type]
            self.flips += k
            self.sites += q.numel() * len(self.fm.bits)  # type: ignore[arg-type]
            # straight-through: forward uses the stored value, the gradient flows to w as is
            clean[n] = w + (q.float() * s - w).detach()
            faulty[n] = w + (qf.float() * s - w).detach()
        out = functional_call(model, clean, (xb,))
        out_f = functional_call(model, faulty, (xb,))
        finite = torch.isfinite(out_f).all(dim=1)
        loss_f = F.cross_entropy(out_f[finite], yb[finite]) if finite.any() else out_f.sum() * 0
        return 0.5 * (F.cross_entropy(out, yb) + loss_f), out


def expected_int8_fault(w: torch.Tensor, s: torch.Tensor, bits, rate: float) -> torch.Tensor:
    """E[D | w] = rate * sum_b dq_b(q) * s: the mean change of int8-stored weights when each bit
    of ``bits`` flips independently at ``rate`` (dq_b = +2^b where bit b is 0, -2^b where it is
    1; the sign bit weighs -128). Over all 8 bits the sum is -(2q + 1): every code shrinks by
    1 - 2 rate on average."""
    q = int8_quantize(w, s)
    if len(set(bits)) == 8:
        dq = q.to(w.dtype).mul_(-2.0).sub_(1.0)
    else:
        u, dq = q.to(torch.int16) & 0xFF, torch.zeros_like(w)
        for b in bits:
            ub = ((u >> b) & 1).to(w.dtype)
            dq += (-128.0 if b == 7 else 2.0**b) * (1 - 2 * ub)
    return dq.mul_(rate) * s
