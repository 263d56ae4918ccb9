"""SAR v2's geometry from a target fault model: per-weight intensity T, occurrence E[n], summary.

Formulas (also in sar_core.training.optim's docstring): T_i = RMS over the covered bits B' of how far one
flip moves w_i (int8: s*|dq_b|; floats: exact per stored value); E[n] = p * N' (or a count's share);
the exponent MSB of float formats is left out of both and reported (no finite radius covers it).
A float flip that moves w_i farther than ``UNCOVERED_SPAN`` x max|W| of its tensor (the width of
the tensor's range) counts 0 in T_i: an exponent flip of a weight with |w| >= 2 multiplies it by up
to 2^(2^j), a jump no neighbourhood in the weights' own scale covers, and letting it into T put
SAR's whole ascent on those few weights (SAR aimed at float16 collapsed the MNIST-1D CNN, whose
first convolution has weights above 2). Every int8 flip moves a weight by at most 128 s, about
1.01 max|W|, so the int8 geometry is unchanged.
"""

from __future__ import annotations

import math
from itertools import accumulate
from typing import Any

import numpy as np
import torch
from torch import nn

from sar_core.faults.model import FaultModel, catastrophic_bits, eligible_parameters
from sar_core.formats import bits as B
from sar_core.training import float_intensity
from sar_core.training.float_intensity import float_t2
from sar_core.validate import check_float


def covered_bits(fm: FaultModel) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(bits SAR's geometry covers, catastrophic bits left out) of a fault model's selection.

    SAR's fault geometry is defined for independent flips of stored weight bits at a rate or a
    count; other fault kinds are refused here with a clear error (train them with geometry
    'elementwise', or fault-aware training, which samples any weight fault kind).
    """
    if fm.kind != "flip" or fm.burst != 1 or fm.target != "weights" or fm.asymmetric:
        raise ValueError(
            f"Invalid target fault model (kind={fm.kind!r}, burst={fm.burst}, target={fm.target!r}"
            f", asymmetric={fm.asymmetric}) for SAR's fault geometry: it is defined for independent "
            "flips of weight bits (kind='flip', burst=1, target='weights', a ber or a count); use "
            "geometry 'elementwise' or method 'fat' for other fault kinds"
        )
    bad = set(catastrophic_bits(fm.format))
    kept = tuple(b for b in fm.bits if b not in bad)  # type: ignore[union-attr]
    excluded = tuple(b for b in fm.bits if b in bad)  # type: ignore[union-attr]
    if not kept:
        raise ValueError(
            f"Invalid bits={list(fm.bits)} for SAR's fault geometry: only the catastrophic "  # type: ignore[arg-type]
            f"exponent MSB {list(excluded)} is selected, which no finite radius covers; select "
            "other bits or use geometry 'elementwise'"
        )
    return kept, excluded


def expected_flips(fm: FaultModel, n_elements: int) -> tuple[float, float]:
    """(E[flips at covered sites], E[flips at catastrophic sites]) for ``n_elements`` eligible weights."""
    kept, excluded = covered_bits(fm)
    if fm.ber is not None:
        return fm.ber * n_elements * len(kept), fm.ber * n_elements * len(excluded)
    share = fm.count / (len(kept) + len(excluded))  # type: ignore[operator]
    return share * len(kept), share * len(excluded)


def fault_intensities(ws: list[torch.Tensor], fm: FaultModel) -> list[torch.Tensor]:
    """T of each tensor of ``ws`` (see ``fault_intensity``), float formats in one pass."""
    return _intensities(ws, fm)[0]


def _intensities(
    ws: list[torch.Tensor], fm: FaultModel, *, count: bool = False
) -> tuple[list[torch.Tensor], list[int] | None]:
    """(T of each tensor; with ``count``, its covered sites left out of T, 0 for int8)."""
    if fm.format == "int8" or not ws:
        return [fault_intensity(w, fm) for w in ws], [0] * len(ws) if count else None
    kept, _ = covered_bits(fm)
    t2, n_out = float_t2(ws, fm, kept, count=count)
    t = t2.clamp_(max=torch.finfo(torch.float32).max).sqrt_()
    return [part.view(w.shape) for part, w in zip(t.split([w.numel() for w in ws]), ws)], n_out


def fault_intensity(w: torch.Tensor, fm: FaultModel) -> torch.Tensor:
    """T: RMS displacement of each element of ``w`` per flip of one covered bit (same shape).

    Float formats: a flip that moves the element farther than ``UNCOVERED_SPAN`` x max|W| counts
    0 (see the module doc); ``describe_sar`` reports how many such sites there are."""
    kept, _ = covered_bits(fm)
    if fm.format == "int8":
        dq2 = sum((128.0 if b == 7 else 2.0**b) ** 2 for b in kept) / len(kept)  # mean |dq|^2
        s = B.int8_scale(w, fm.granularity).to(w.dtype)  # the injector's scale (float32)
        return (s * math.sqrt(dq2)).expand_as(w).clone()
    return fault_intensities([w], fm)[0]


def describe_sar(
    model: nn.Module | Any, fault_model: FaultModel, *, rho: float = 1.0, seed: int = 0
) -> dict:
    """What SAR v2 derives from a target fault model, at ``model``'s current weights.

    ``model`` may be a ``ModelSpec``: it is then described at its initial weights for ``seed``
    (what training starts from; T follows the weights during training). Returns the covered and
    excluded bits, expected flips, the fault radius sqrt(E[n]) and the effective radius
    rho * sqrt(E[n]), the expected fault-perturbation norm in weight units, for float targets
    the covered sites left out of T at these weights (``uncovered_sites``, see the module doc),
    and per parameter the intensity T (mean, min, max) and the int8 scale when relevant.
    """
    from sar_core.data.models import ModelSpec, build_model

    if isinstance(model, ModelSpec):
        model = build_model(model, seed)
    if not isinstance(model, nn.Module):
        raise ValueError(f"Invalid model={model!r}: expected a torch module or a ModelSpec")
    if not isinstance(fault_model, FaultModel):
        raise ValueError(f"Invalid fault_model={fault_model!r}: expected a FaultModel")
    rho = check_float("rho", rho, low=0.0)
    kept, excluded = covered_bits(fault_model)
    named = {n: p.detach() for n, p in model.named_parameters()}
    elig = eligible_parameters({n: tuple(p.shape) for n, p in named.items()}, fault_model)
    n_elem = sum(named[n].numel() for n in elig)
    e_n, e_bad = expected_flips(fault_model, n_elem)
    ts, outs = _intensities([named[n] for n in elig], fault_model, count=True)
    t_of, out_of = dict(zip(elig, ts)), dict(zip(elig, outs or []))
    layers, sq = [], 0.0
    for n, p in named.items():
        row: dict[str, Any] = {"name": n, "shape": list(p.shape), "eligible": n in elig}
        if n in elig:
            t = t_of[n]
            sq += float((t.double() ** 2).sum())
            if fault_model.format != "int8":
                row["uncovered_sites"] = out_of[n]
            row.update(t_mean=float(t.mean()), t_min=float(t.min()), t_max=float(t.max()))
            row["abs_w_mean"] = float(p.abs().mean())
            if fault_model.format == "int8":
                row["int8_scale_max"] = float(
                    B.int8_scale(p.numpy(), fault_model.granularity).max()
                )
        layers.append(row)
    # E||D||^2 = p * sum_i sum_b d_ib^2 = E[n] * sum_i T_i^2 / n_elem (sites drawn uniformly)
    per_site = sq / max(n_elem, 1)
    p_bad = (
        1.0 - (1.0 - fault_model.ber) ** (n_elem * len(excluded))
        if fault_model.ber is not None
        else float(bool(excluded))
    )
    return {
        "fault_model": fault_model.to_dict(),
        "geometry": "fault",
        "covered_bits": list(kept),
        "excluded_bits": list(excluded),
        "eligible_weights": int(n_elem),
        "covered_sites": int(n_elem * len(kept)),
        # covered bits whose flip moves its weight farther than UNCOVERED_SPAN x max|W| (floats)
        "uncovered_sites": sum(outs or []),
        "uncovered_span": float_intensity.UNCOVERED_SPAN,
        "expected_flips": e_n,
        "expected_excluded_flips": e_bad,
        "p_any_excluded_flip": p_bad if fault_model.ber is not None and excluded else None,
        "fault_radius": math.sqrt(e_n),
        "multiplier": rho,
        "rho": rho * math.sqrt(e_n),
        "expected_perturbation_norm": math.sqrt(e_n * per_site),
        "layers": layers,
        "formula": "e = rho*sqrt(E[n]) * T^2 g / ||T g||, T_i = RMS_b |dw_ib|, E[n] = p*N'",
    }


class Int8Rows:
    """Weights laid out as the rows of zero-padded (R, L) buffers: one row per tensor or channel.

    SAR's int8 geometry needs, every step, max|w| of every row (the step s = max|w| / 127, per
    tensor or per output channel) and the first position of that max (where the range gradient
    enters). With the weights in such buffers, one ``abs`` and one ``argmax`` per buffer give both
    for all rows, instead of a few ops per tensor. The zero padding leaves every row's max and first
    argmax unchanged (|w| >= 0, and a tie goes to the first, real, element). ``views[i]`` is
    ``params[i]`` inside its buffer (SAR keeps w there during a step: its restore copies). The
    per-row quantities of a step live in (R, 1) vectors reused across steps, with views per tensor
    prepared once. Tensors (one dtype, one device) are packed in order; a buffer is closed before
    padding would make it larger than twice its content plus 4096 elements.

    On the CPU the row work runs in NumPy on the same memory (zero-copy views): its SIMD argmax is
    about ten times torch's ``max(dim)``, and a NumPy call on an (R, 1) vector costs a fraction of
    a torch op. Every value is the same IEEE operation either way (abs, max, first argmax, one
    division, one product), so both paths give the same bits; ``host=False`` (or the class
    attribute ``use_numpy = False``) forces torch's.
    """

    use_numpy = True  # the default of ``host``: NumPy row work on the CPU

    def __init__(
        self, ps: list[torch.Tensor], granularity: str, *, host: bool | None = None
    ) -> None:
        if len({(p.dtype, p.device) for p in ps}) != 1:
            raise ValueError("Invalid ps: Int8Rows lays out tensors of one dtype on one device")
        by_row = [granularity == "channel" and p.dim() > 1 for p in ps]
        self.params = list(ps)
        self.rows = [p.shape[0] if c else 1 for p, c in zip(ps, by_row)]
        self.one_row_each = not any(by_row)  # granularity "tensor"
        cols = [p.numel() // r for p, r in zip(ps, self.rows)]
        self.buffers: list[torch.Tensor] = []  # (R_b, L_b): w, zero padded
        self.scratch: list[torch.Tensor] = []  # (R_b, L_b): |w|
        self.views: list[torch.Tensor] = []
        self._scratch_views: list[torch.Tensor] = []
        start = 0
        while start < len(ps):
            end, width, content = start + 1, cols[start], ps[start].numel()
            while end < len(ps):
                w2, c2 = max(width, cols[end]), content + ps[end].numel()
                if sum(self.rows[start : end + 1]) * w2 > 2 * c2 + 4096:
                    break
                end, width, content = end + 1, w2, c2
            buf = ps[start].new_zeros(sum(self.rows[start:end]), width)
            scratch = torch.zeros_like(buf)
            r0 = 0
            for i in range(start, end):
                rows_i = slice(r0, r0 + self.rows[i])
                self.views.append(buf[rows_i, : cols[i]].view(ps[i].shape))
                self._scratch_views.append(scratch[rows_i, : cols[i]].view(ps[i].shape))
                r0 += self.rows[i]
            self.buffers.append(buf)
            self.scratch.append(scratch)
            start = end
        starts = list(accumulate((b.shape[0] for b in self.buffers), initial=0))
        self._buffer_rows = [slice(a, b) for a, b in zip(starts[:-1], starts[1:])]
        n = sum(self.rows)
        dev = ps[0].device

        def vec(dtype: torch.dtype = ps[0].dtype) -> torch.Tensor:
            return torch.zeros(n, 1, dtype=dtype, device=dev)

        self.amax, self.first = vec(), vec(torch.long)  # max|w| per row, its first position
        self.pos = vec(torch.bool)  # s = max|w| / 127 > 0: s follows w (``set_t``)
        self.scale, self.t = vec(), vec()  # s and T per row (``set_t``)
        self.w_top, self.dot, self.add = vec(), vec(), vec()  # for the range gradient
        self.inf = torch.tensor(math.inf, dtype=ps[0].dtype, device=dev)
        # each buffer's rows of amax, first and w_top
        self._by_buffer = [(self.amax[k], self.first[k], self.w_top[k]) for k in self._buffer_rows]
        # position of each row's max in its tensor's flat order (rows of C > 1 start at r * cols)
        row_start = torch.cat([torch.arange(r, device=dev) * c for r, c in zip(self.rows, cols)])
        self._row_start = None if self.one_row_each else row_start.view(-1, 1)
        self.top = self.first if self.one_row_each else vec(torch.long)
        edges = list(accumulate(self.rows, initial=0))
        pieces = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
        shapes = [
            (r,) + (1,) * (p.dim() - 1) if c else () for p, r, c in zip(ps, self.rows, by_row)
        ]
        # per tensor: s and T shaped to broadcast against it, its rows of the other vectors
        self.scale_views = [self.scale[k].view(s) for k, s in zip(pieces, shapes)]
        self.t_views = [self.t[k].view(s) for k, s in zip(pieces, shapes)]
        self.dot_views = [self.dot[k].view(s) for k, s in zip(pieces, shapes)]
        # dims summed for a per-row total: all (per tensor), all but the first (per channel)
        self.sum_dims = [tuple(range(int(c), p.dim())) for p, c in zip(ps, by_row)]
        self.add_views = [self.add[k].view(-1) for k in pieces]  # flat: for index_add_
        self.top_views = [self.top[k].view(-1) for k in pieces]
        self.host = bool(self.use_numpy if host is None else host) and dev.type == "cpu"
        if self.host:  # NumPy views of the same memory
            self._np = {
                k: getattr(self, k).numpy()
                for k in ("amax", "first", "pos", "scale", "t", "w_top", "dot", "add", "top")
            }
            # per buffer: |w|, w (flat), its rows of amax, first, w_top and of the flat index
            # of each row's first max in the buffer (row offset + first)
            self._flat = torch.zeros(n, 1, dtype=torch.long).numpy()
            self._np_buffers = [
                (
                    a.numpy(),
                    b.numpy(),
                    b.numpy().reshape(-1),
                    self._np["amax"][k],
                    self._np["first"][k],
                    self._np["w_top"][k],
                    self._flat[k],
                    (torch.arange(b.shape[0]) * b.shape[1]).view(-1, 1).numpy(),
                )
                for a, b, k in zip(self.scratch, self.buffers, self._buffer_rows)
            ]
            self._np_row_start = None if self._row_start is None else self._row_start.numpy()
        self._w_top_ready = False

    def find_max(self, ps: list[torch.Tensor] | None = None, *, first: bool = True) -> None:
        """``amax`` and (``first``) ``first`` / ``top`` of every row at the current w.

        w is read from the buffers (``views``), or copied from ``ps`` into the scratch first.
        """
        if ps is not None:
            torch._foreach_copy_(self._scratch_views, ps)
        self._w_top_ready = False
        if self.host:
            for a, b, b_flat, m, k, w, flat, base in self._np_buffers:
                np.abs(a if ps is not None else b, out=a)
                if first:
                    a.argmax(axis=1, out=k, keepdims=True)  # the first max of each row
                    np.add(base, k, out=flat)
                    a.take(flat, out=m, mode="clip")
                    if ps is None:
                        b_flat.take(flat, out=w, mode="clip")  # w there (|w| = max|w|)
                else:
                    a.max(axis=1, out=m, keepdims=True)
            self._w_top_ready = first and ps is None
            if first and self._np_row_start is not None:
                np.add(self._np_row_start, self._np["first"], out=self._np["top"])
            return
        for b, a, (m, k, _) in zip(self.buffers, self.scratch, self._by_buffer):
            torch.abs(a if ps is not None else b, out=a)
            if first:
                torch.max(a, dim=1, keepdim=True, out=(m, k))
            else:
                torch.amax(a, dim=1, keepdim=True, out=m)
        if first and self._row_start is not None:
            torch.add(self._row_start, self.first, out=self.top)

    def set_t(self, rms_dq: float) -> None:
        """``scale`` s of every row by the project's int8 rule (``bits.int8_scale_of_max``: s =
        max|w| / 127, 1 where that is not > 0), ``pos`` where s = max|w| / 127 (s follows w
        there), and ``t`` = s * rms_dq, from ``amax`` (``find_max``)."""
        if self.host:
            x = self._np
            B.int8_scale_of_max(x["amax"], out=x["scale"], kept=x["pos"])
            np.multiply(x["scale"], x["scale"].dtype.type(rms_dq), out=x["t"])
            return
        B.int8_scale_of_max(self.amax, out=self.scale, kept=self.pos)
        torch.mul(self.scale, rms_dq, out=self.t)

    def mean_fault(self, c: float) -> list[torch.Tensor]:
        """Per tensor, c * sum over all 8 bits of E[dq_b] * s = -c (2q + 1) s, q = clip(round(w /
        s), -127, 127) (``randbet.expected_int8_fault`` with every bit, rate c), computed on
        whole buffers into the scratch (free after ``set_t`` until the next ``find_max``); views
        in ``params`` order. The same IEEE operations in the same order as the per-tensor
        function, so the same bits."""
        for buf, scratch, k in zip(self.buffers, self.scratch, self._buffer_rows):
            s = self.scale[k]  # (R_b, 1): one step per row
            torch.div(buf, s, out=scratch).round_().clamp_(-127, 127)  # q
            scratch.mul_(-2.0).sub_(1.0).mul_(c).mul_(s)  # -(2q + 1) exactly, then c, then s
        return self._scratch_views

    def gather_top(self) -> torch.Tensor:
        """``w_top``: w at every row's first argmax of |w| (read from the buffers)."""
        if self.host:
            if not self._w_top_ready:  # find_max read w from the buffers: w_top is there
                for _, _, b_flat, _, _, w, flat, _ in self._np_buffers:
                    b_flat.take(flat, out=w, mode="clip")
            return self.w_top
        for b, (_, k, w) in zip(self.buffers, self._by_buffer):
            torch.gather(b, 1, k, out=w)
        return self.w_top

    def range_coefs(self) -> torch.Tensor:
        """``add`` = dot / w_top where s follows w (``pos``), dot / inf elsewhere, per row.

        ``dot`` (g . delta per row) is written by the caller; w_top is w at the row's first max
        (|w_top| = max|w|), read from the buffers, which must still hold w (``find_max``).
        """
        self.gather_top()
        self._w_top_ready = False  # masked below
        if self.host:
            x = self._np
            np.copyto(x["w_top"], x["w_top"].dtype.type(np.inf), where=~x["pos"])
            np.divide(x["dot"], x["w_top"], out=x["add"])
            return self.add
        torch.where(self.pos, self.w_top, self.inf, out=self.w_top)
        return torch.div(self.dot, self.w_top, out=self.add)
