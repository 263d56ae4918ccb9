"""Deploying a model's parameters in a storage format and applying fault patterns to them.

The model's tensors are read once (copied) and never written; a pattern's effect is computed on
the hit codes only (encode / change / decode those elements: O(flips)).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from sar_core.faults.model import FaultModel, FaultPattern, SiteSpace, apply_masks, burst_masks
from sar_core.formats import bits as B


@dataclass(frozen=True)
class Delta:
    """What a pattern changes: per parameter, flat indices and their faulty values (O(flips))."""

    values: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(repr=False)  # idx (n,), vals (n,)
    n_changed: int  # stored bits whose value changed


class Injector:
    """Deploys a model's parameters in a format and applies fault patterns functionally.

    The model's tensors are read once (copied) and never written. Every tensor handed out
    (``deployed``, ``apply``, ``perturbation``) is a fresh tensor: in-place operations on it touch
    neither the model nor this injector.
    """

    def __init__(self, model: nn.Module, fm: FaultModel) -> None:
        if fm.target != "weights":
            raise ValueError(
                f"Invalid target={fm.target!r} for an Injector: it deploys stored weights; "
                "activation faults run through sar_core.engine.montecarlo"
            )
        self.fm = fm
        params = {n: p.detach() for n, p in model.named_parameters()}
        self.shapes = {n: tuple(p.shape) for n, p in params.items()}
        self.device = next(iter(params.values())).device
        self.space = SiteSpace(self.shapes, fm)
        self.eligible = self.space.names
        self._codes: dict[str, np.ndarray] = {}  # flat stored codes
        self._scales: dict[str, np.ndarray | None] = {}  # int8: per-element scale (flat)
        self._deployed: dict[str, torch.Tensor] = {}  # own copies, never handed out
        self._site_bits: tuple[np.ndarray, np.ndarray] | None = None
        for n, p in params.items():
            if n not in self.eligible:
                self._deployed[n] = p.clone()
                continue
            w = p.cpu().numpy()
            s = B.int8_scale(w, fm.granularity) if fm.format == "int8" else None
            codes = B.encode(w, fm.format, s)
            self._deployed[n] = self._to_tensor(B.decode(codes, fm.format, s))
            self._codes[n] = codes.reshape(-1)
            self._scales[n] = None if s is None else np.broadcast_to(s, w.shape).reshape(-1)
        # all eligible codes in one flat array, numbered like the SiteSpace's elements
        self._all_codes = np.concatenate([self._codes[n] for n in self.eligible])
        self._all_scales = (
            np.concatenate([self._scales[n] for n in self.eligible])
            if fm.format == "int8"
            else None
        )

    def _to_tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(a, dtype=np.float32, copy=True)).to(self.device)

    @property
    def n_sites(self) -> int:
        """Number of eligible sites (bits; start bits of a burst)."""
        return self.space.n_sites

    def with_rate(self, fm: FaultModel) -> Injector:
        """This deployment (codes, scales) under ``fm``, which may differ only in its rate."""
        new = copy.copy(self)
        new.fm, new.space = fm, self.space.with_fault_model(fm)
        return new

    def deployed(self) -> dict[str, torch.Tensor]:
        """Parameters as stored in the format, without flips (quantization alone); fresh tensors."""
        return {n: t.clone() for n, t in self._deployed.items()}

    def sample(self, rng: np.random.Generator | int) -> FaultPattern:
        """Sample a pattern for this model (asymmetric rates read the deployed bits)."""
        rng = np.random.default_rng(rng)
        return self._sample_asymmetric(rng) if self.fm.asymmetric else self.space.sample(rng)

    def _sample_asymmetric(self, rng: np.random.Generator) -> FaultPattern:
        # Binomial over the sites holding a 1 (1->0 at ber_10), then over those holding a 0
        if self._site_bits is None:
            held = np.concatenate(
                [
                    (
                        self._codes[n][:, None].astype(np.uint64)
                        >> self.space.starts.astype(np.uint64)
                    )
                    & np.uint64(1)
                    for n in self.eligible
                ]
            ).reshape(-1)  # site = element * n_bits + slot, as SiteSpace numbers them
            self._site_bits = (np.flatnonzero(held == 1), np.flatnonzero(held == 0))
        ones, zeros = self._site_bits
        n10 = int(rng.binomial(ones.size, self.fm.ber_10))
        n01 = int(rng.binomial(zeros.size, self.fm.ber_01))
        ids = np.concatenate(
            [
                ones[rng.choice(ones.size, size=n10, replace=False)] if n10 else ones[:0],
                zeros[rng.choice(zeros.size, size=n01, replace=False)] if n01 else zeros[:0],
            ]
        )
        return self.space.split(ids, n10 + n01)

    def delta(self, pattern: FaultPattern) -> Delta:
        """Faulty values of the elements the pattern changes (encode/flip/decode those codes only)."""
        offsets = self.space.offsets
        elem, start = pattern.global_sites(self.eligible, offsets)
        if elem.size == 0:
            return Delta(values={}, n_changed=0)
        u, inv = np.unique(elem, return_inverse=True)  # sorted: one slice per parameter
        m = np.zeros(u.size, dtype=np.uint64)
        np.bitwise_or.at(m, inv, burst_masks(start, pattern.burst))  # bursts sharing a word: union
        old = self._all_codes[u]
        new = apply_masks(old, m, self.fm.kind)
        changed = int(np.bitwise_count(old ^ new).sum())
        keep = new != old
        u, new = u[keep], new[keep]
        scale = None if self._all_scales is None else self._all_scales[u]
        vals = torch.from_numpy(B.decode(new, self.fm.format, scale)).to(self.device)
        idx = torch.from_numpy(u).to(self.device)
        bounds = np.searchsorted(u, offsets).tolist()
        out = {}
        for k, name in enumerate(self.eligible):
            a, b = bounds[k], bounds[k + 1]
            if b > a:
                out[name] = (idx[a:b] - int(offsets[k]), vals[a:b])
        return Delta(values=out, n_changed=changed)

    def apply(self, pattern: FaultPattern) -> dict[str, torch.Tensor]:
        """Parameters with the pattern applied; fresh tensors (only changed elements recomputed)."""
        return self.apply_delta(self.delta(pattern))

    def apply_delta(self, delta: Delta) -> dict[str, torch.Tensor]:
        """Deployed parameters with a delta's values scattered in; fresh tensors."""
        out = self.deployed()
        for name, (idx, vals) in delta.values.items():
            out[name].view(-1)[idx] = vals
        return out

    def perturbation(self, pattern: FaultPattern) -> dict[str, torch.Tensor]:
        """w_faulty - w_deployed for every parameter (zeros where nothing changed)."""
        faulty = self.apply(pattern)
        return {n: faulty[n] - self._deployed[n] for n in faulty}
