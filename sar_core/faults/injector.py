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

from sar_core.faults.model import FaultModel, FaultPattern, SiteSpace, apply_masks
from sar_core.formats import bits as B


@dataclass(frozen=True)
class Delta:
    """What a pattern changes: per parameter, flat indices and their faulty values (O(flips))."""

    values: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(repr=False)  # idx (n,), vals (n,)
    n_changed: int  # stored bits whose value changed


@dataclass(frozen=True)
class ChunkDelta:
    """What K patterns change, computed at once: per parameter, the changed entries of all trials.

    ``values[name] = (trial (n,), flat index (n,), faulty value (n,))``, sorted by trial, then by
    index (the order a per-trial ``Delta`` lists them in); ``n_changed[k]``: stored bits of trial
    k whose value changed. Parameters no trial changes are absent.
    """

    values: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(repr=False)
    n_changed: np.ndarray  # (K,) int64

    @property
    def size(self) -> int:
        """Number of trials K."""
        return len(self.n_changed)

    def trial(self, k: int) -> Delta:
        """Trial k's ``Delta``."""
        out = {}
        for name, (kk, idx, vals) in self.values.items():
            a, b = torch.searchsorted(kk, torch.tensor([k, k + 1], device=kk.device)).tolist()
            if b > a:
                out[name] = (idx[a:b], vals[a:b])
        return Delta(values=out, n_changed=int(self.n_changed[k]))

    def select(self, trials) -> ChunkDelta:
        """The chunk of ``trials`` (distinct positions, in any order), renumbered 0 .. len - 1:
        trial i of the result is trial ``trials[i]`` of this chunk."""
        trials = np.asarray(trials, dtype=np.int64)
        if trials.size == self.size and np.array_equal(trials, np.arange(self.size)):
            return self  # frozen: the same chunk
        pos = torch.full((self.size,), -1, dtype=torch.int64)
        pos[torch.from_numpy(trials)] = torch.arange(trials.size)
        increasing = bool(np.all(np.diff(trials) > 0))
        out = {}
        for name, (kk, idx, vals) in self.values.items():
            new_k = pos.to(kk.device)[kk]
            keep = torch.nonzero(new_k >= 0).view(-1)
            if not increasing:  # back to (trial, index) order; stable keeps the index order
                keep = keep[torch.sort(new_k[keep], stable=True).indices]
            if keep.numel():
                out[name] = (new_k[keep], idx[keep], vals[keep])
        return ChunkDelta(values=out, n_changed=self.n_changed[trials])

    @classmethod
    def stack(cls, deltas: list[Delta]) -> ChunkDelta:
        """The chunk of per-trial deltas (trial k = deltas[k])."""
        parts: dict[str, list] = {}
        for k, d in enumerate(deltas):
            for name, (idx, vals) in d.values.items():
                parts.setdefault(name, []).append((torch.full_like(idx, k), idx, vals))
        values = {n: tuple(torch.cat(c) for c in zip(*ps)) for n, ps in parts.items()}
        return cls(values=values, n_changed=np.array([d.n_changed for d in deltas], np.int64))


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
        return self.chunk_delta([pattern]).trial(0)

    def chunk_delta(self, patterns: list[FaultPattern]) -> ChunkDelta:
        """What each of K patterns changes, at once: one unique, one encode and one decode for
        the hit codes of the whole chunk, O(total flips); trial k's entries equal ``delta``'s."""
        offsets, K = self.space.offsets, len(patterns)
        ids = [p.site_ids(self.space) for p in patterns]
        if all(i is not None for i in ids):  # drawn here: one split for the whole chunk
            counts = np.array([i.size for i in ids], dtype=np.int64)
            if not counts.any():
                return ChunkDelta(values={}, n_changed=np.zeros(K, np.int64))
            elem, start = self.space.elements_and_starts(np.concatenate(ids))
        else:
            sites = [p.global_sites(self.eligible, offsets) for p in patterns]
            counts = np.array([e.size for e, _ in sites], dtype=np.int64)
            if not counts.any():
                return ChunkDelta(values={}, n_changed=np.zeros(K, np.int64))
            elem = np.concatenate([e for e, _ in sites]).astype(np.int64)
            start = np.concatenate([s for _, s in sites])
        n_elem = int(offsets[-1])
        key = np.repeat(np.arange(K, dtype=np.int64), counts) * n_elem + elem
        u, inv = np.unique(key, return_inverse=True)  # sorted by (trial, element)
        masks = np.zeros(u.size, dtype=np.uint64)
        bursts = np.repeat(np.array([p.burst for p in patterns], dtype=np.uint64), counts)
        site_masks = ((np.uint64(1) << bursts) - np.uint64(1)) << start.astype(np.uint64)
        np.bitwise_or.at(masks, inv.reshape(-1), site_masks)  # bursts sharing a word: union
        trial, el = np.divmod(u, n_elem)
        old = self._all_codes[el]
        new = apply_masks(old, masks, self.fm.kind)
        flipped = np.bitwise_count(old ^ new).astype(np.float64)
        n_changed = np.bincount(trial, weights=flipped, minlength=K).astype(np.int64)
        keep = new != old
        trial, el, new = trial[keep], el[keep], new[keep]
        scale = None if self._all_scales is None else self._all_scales[el]
        vals = torch.from_numpy(B.decode(new, self.fm.format, scale)).to(self.device)
        which = np.searchsorted(offsets, el, side="right") - 1
        order = np.argsort(which, kind="stable")  # by parameter; (trial, element) within each
        which, trial, el = which[order], trial[order], el[order]
        idx = torch.from_numpy(el - offsets[which]).to(self.device)
        kk = torch.from_numpy(trial).to(self.device)
        vals = vals[torch.from_numpy(order).to(self.device)]
        bounds = np.searchsorted(which, np.arange(len(self.eligible) + 1)).tolist()
        out = {}
        for j, name in enumerate(self.eligible):
            a, b = bounds[j], bounds[j + 1]
            if b > a:
                out[name] = (kk[a:b], idx[a:b], vals[a:b])
        return ChunkDelta(values=out, n_changed=n_changed)

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
