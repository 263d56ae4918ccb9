"""Inference-time mitigations with their exact cost: activation range restriction, protected bits.

**Range restriction** (Ranger, Chen et al., DSN 2021): the output of every activation layer is
clamped to [lo, hi], the smallest and largest value it took on profiling data. A faulty weight
that drives an activation far outside its usual range is cut back. Cost: one min and one max per
clamped activation element per inference (2 ops each), and 2 float32 bounds (64 bits) per
clamped layer. The restricted model is a fresh deep copy with ``Clamp`` modules inserted; its
parameter names are unchanged, so campaigns hit it with exactly the plain model's patterns.

**Protected bits**: chosen bit positions of every covered weight are stored with redundancy.
- TMR: two extra copies of each protected bit (extra = 2 · n_protected); a majority vote of the
  three copies corrects the bit unless two copies failed.
- SECDED (extended Hamming): the protected bits are packed, in parameter/element/bit order, into
  codewords of ``block`` data bits; a codeword of k data bits carries r + 1 check bits, r the
  smallest integer with 2^r >= k + r + 1 (Hamming) plus one overall parity bit. One error per
  codeword (data or check bits) is corrected; two or more leave the data bits as they are.
Under a BER p the redundant bits (TMR copies, SECDED check bits) fail at the same rate, sampled
per trial from a generator seeded by the trial (see ``filter_pattern``); under an exact flip
count only the data bits fail.
"""

from __future__ import annotations

import copy
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sar_core.data.models import ACTIVATIONS
from sar_core.faults.chain import sequence
from sar_core.faults.model import FaultModel, FaultPattern, eligible_parameters
from sar_core.formats import bits as B
from sar_core.validate import check_choice, check_int

SCHEMES = ("tmr", "secded")
_ACTIVATION_TYPES = tuple(ACTIVATIONS.values())


# ------------------------------------------------------------------ range restriction ---------


@dataclass(frozen=True)
class ActivationBounds:
    """Per clamped activation module: its name and the profiled [low, high] of its output."""

    layers: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return {"layers": list(self.layers), "low": list(self.low), "high": list(self.high)}


class Clamp(nn.Module):
    """y = min(max(x, low), high): two ops per element, no parameters, no buffers."""

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low, self.high = float(low), float(high)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.low, self.high)

    def extra_repr(self) -> str:
        return f"low={self.low:.4g}, high={self.high:.4g}"


def _sequential(model: nn.Module) -> nn.Sequential:
    if not isinstance(model, nn.Sequential):
        raise ValueError(
            f"Invalid model of type {type(model).__name__}: range restriction needs an "
            "nn.Sequential (the models built by sar_core.data.models)"
        )
    return model


def _copy_with(model: nn.Module, params: dict[str, torch.Tensor] | None) -> nn.Sequential:
    """A deep copy (the caller's model is never touched), optionally with other parameters."""
    twin = copy.deepcopy(_sequential(model)).eval()
    if params is not None:
        with torch.no_grad():
            for n, p in twin.named_parameters():
                p.copy_(params[n])
    return twin


def profile_bounds(
    model: nn.Module, X, params: dict[str, torch.Tensor] | None = None, batch_size: int = 4096
) -> ActivationBounds:
    """Smallest and largest output of every activation module on X (with ``params`` if given)."""
    twin = _copy_with(model, params)
    X = torch.as_tensor(np.asarray(X, dtype=np.float32))
    names = [n for n, m in sequence(twin) if isinstance(m, _ACTIVATION_TYPES)]
    if not names:
        raise ValueError("Invalid model: it has no activation module (ReLU/Tanh/GELU) to clamp")
    low = {n: math.inf for n in names}
    high = {n: -math.inf for n in names}
    with torch.no_grad():
        for i in range(0, X.shape[0], batch_size):
            h = X[i : i + batch_size]
            for n, m in sequence(twin):
                h = m(h)
                if n in low:
                    low[n] = min(low[n], float(h.min()))
                    high[n] = max(high[n], float(h.max()))
    return ActivationBounds(
        tuple(names), tuple(low[n] for n in names), tuple(high[n] for n in names)
    )


def range_restricted(model: nn.Module, bounds: ActivationBounds) -> nn.Sequential:
    """A fresh copy of ``model`` with a Clamp after each profiled activation (same param names)."""
    twin = _copy_with(model, None)
    lookup = dict(zip(bounds.layers, zip(bounds.low, bounds.high)))
    layers: list[tuple[str, nn.Module]] = []
    for n, m in sequence(twin):
        layers.append((n, m))
        if n in lookup:
            layers.append((f"{n}_clamp", Clamp(*lookup[n])))
    missing = set(lookup) - {n for n, _ in layers}
    if missing:
        raise ValueError(f"Invalid bounds: layers {sorted(missing)} are not modules of this model")
    return nn.Sequential(OrderedDict(layers)).eval()


def inference_ops(model: nn.Module, n_features: int) -> dict:
    """Per-sample multiply-accumulates of Linear/Conv layers and clamp ops (2 per element)."""
    seq = _sequential(model)
    h = torch.zeros(1, n_features)
    macs, clamp_ops = 0, 0
    with torch.no_grad():
        for m in seq.children():
            out = m(h)
            if isinstance(m, nn.Linear):
                macs += m.in_features * m.out_features
            elif isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                k = math.prod(m.kernel_size) * m.in_channels // m.groups
                macs += out[0].numel() * k
            elif isinstance(m, Clamp):
                clamp_ops += 2 * out[0].numel()
            h = out
    return {"macs": int(macs), "clamp_ops": int(clamp_ops)}


def timed_against(
    fn: Callable[[], object], reference: Callable[[], object], *, rounds: int = 15, inner: int = 5
) -> dict:
    """Interleaved timing: ``ms`` (median per call of fn) and ``ratio`` (median over rounds of
    time(fn) / time(reference), each round ``inner`` calls of each, after one warm-up call)."""
    check_int("rounds", rounds, low=1, high=10_000)
    check_int("inner", inner, low=1, high=10_000)
    fn(), reference()  # warm-up
    ms, ratios = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(inner):
            reference()
        t1 = time.perf_counter()
        for _ in range(inner):
            fn()
        t2 = time.perf_counter()
        ms.append(1000 * (t2 - t1) / inner)
        ratios.append((t2 - t1) / max(t1 - t0, 1e-12))
    return {"ms": float(np.median(ms)), "ratio": float(np.median(ratios))}


def latency_ratio(
    fn: Callable[[], object], reference: Callable[[], object], *, rounds: int = 15, inner: int = 5
) -> float:
    """Median over interleaved rounds of time(fn) / time(reference) (``timed_against``)."""
    return timed_against(fn, reference, rounds=rounds, inner=inner)["ratio"]


# ------------------------------------------------------------------ protected bits ------------


def secded_check_bits(k: int) -> int:
    """Check bits of an extended Hamming (SECDED) code for k data bits: r + 1, 2^r >= k + r + 1."""
    k = check_int("block", k, low=1, high=1 << 20)
    r = 1
    while (1 << r) < k + r + 1:
        r += 1
    return r + 1


@dataclass(frozen=True)
class Protection:
    """Which bit positions of the covered weights are stored with redundancy, and how."""

    bits: tuple[int, ...] | str  # positions (bit 0 = LSB) or a group name, as in FaultModel
    scheme: str = "tmr"  # tmr | secded
    block: int = 64  # secded: data bits per codeword (SECDED(72, 64) by default)

    def __post_init__(self) -> None:
        check_choice("scheme", self.scheme, SCHEMES)
        check_int("block", self.block, low=1, high=1 << 20)

    def positions(self, fmt: str) -> tuple[int, ...]:
        """Protected positions in format ``fmt``."""
        return B.parse_bits(self.bits, fmt)

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return {"bits": self.bits, "scheme": self.scheme, "block": self.block}


def default_protection(fmt: str, scheme: str = "tmr") -> Protection:
    """int8: the sign bit 7; floats: the sign and the exponent MSB (the catastrophic bit)."""
    width = B.get_format(fmt).width
    return Protection(bits=(width - 1,) if width == 8 else (width - 2, width - 1), scheme=scheme)


def _covered(shapes, fm: FaultModel) -> tuple[list[str], np.ndarray]:
    names = eligible_parameters(shapes, fm)
    sizes = np.array([math.prod(shapes[n]) for n in names], dtype=np.int64)
    return names, np.concatenate([[0], np.cumsum(sizes)])


def protected_bit_count(shapes, fm: FaultModel, protection: Protection) -> int:
    """Data bits under protection: covered weights x protected positions."""
    _, offsets = _covered(shapes, fm)
    return int(offsets[-1]) * len(protection.positions(fm.format))


def extra_bits(shapes, fm: FaultModel, protection: Protection) -> int:
    """Exact storage overhead in bits (TMR: 2 per protected bit; SECDED: r + 1 per codeword)."""
    n = protected_bit_count(shapes, fm, protection)
    if protection.scheme == "tmr":
        return 2 * n
    full, rest = divmod(n, protection.block)
    return full * secded_check_bits(protection.block) + (secded_check_bits(rest) if rest else 0)


def _check_flip_model(fm: FaultModel) -> None:
    for name, plain in (("kind", "flip"), ("burst", 1), ("target", "weights")):
        if getattr(fm, name, plain) != plain:
            raise ValueError(
                f"Invalid {name}={getattr(fm, name)!r}: protected bits are modelled for single-bit "
                f"flips of stored weights ({name}={plain!r})"
            )
    if getattr(fm, "ber_01", None) is not None or getattr(fm, "ber_10", None) is not None:
        raise ValueError("Invalid ber_01/ber_10: protected bits are modelled for a symmetric ber")


def _complement_sample(n_total: int, excluded: np.ndarray, m: int, rng) -> np.ndarray:
    """m distinct integers of [0, n_total) outside the sorted array ``excluded``, uniformly."""
    ranks = np.sort(rng.choice(n_total - excluded.size, size=m, replace=False))
    shifted = excluded - np.arange(excluded.size)  # rank r maps to r + #{e : e - pos(e) <= r}
    return ranks + np.searchsorted(shifted, ranks, side="right")


def filter_pattern(
    pattern: FaultPattern, shapes, fm: FaultModel, protection: Protection, rng
) -> FaultPattern:
    """The bits still wrong after correction: corrected protected sites removed (module doc).

    Under a BER the redundant bits fail too, drawn from ``rng``: TMR keeps a flipped protected
    bit when one of its 2 copies also failed and adds bits whose 2 copies both failed
    (Binomial(n, p^2)); SECDED corrects a codeword's data flip only when it is the codeword's one
    error (its r + 1 check bits all intact). Under an exact count the redundancy never fails.
    """
    _check_flip_model(fm)
    rng = np.random.default_rng(rng)
    names, offsets = _covered(shapes, fm)
    pos = np.asarray(protection.positions(fm.format), dtype=np.int64)
    slot = np.full(B.get_format(fm.format).width, -1, dtype=np.int64)
    slot[pos] = np.arange(pos.size)
    kept, hit = {}, []  # unprotected sites; global ids of hit protected bits
    for name, (idx, bit) in pattern.sites.items():
        s = slot[bit]
        kept[name] = (idx[s < 0], bit[s < 0])
        hit.append((offsets[names.index(name)] + idx[s >= 0]) * pos.size + s[s >= 0])
    g = np.sort(np.concatenate(hit)) if hit else np.empty(0, np.int64)
    wrong = _still_wrong(g, int(offsets[-1]) * pos.size, fm.ber, protection, rng)
    elem, s = np.divmod(wrong, pos.size)
    which = np.searchsorted(offsets, elem, side="right") - 1
    for k, name in enumerate(names):
        sel = which == k
        if sel.any():
            idx0, bit0 = kept.get(name, (np.empty(0, np.int64), np.empty(0, np.int64)))
            kept[name] = (np.append(idx0, elem[sel] - offsets[k]), np.append(bit0, pos[s[sel]]))
    sites = {n: v for n, v in kept.items() if v[0].size}
    n = sum(v[0].size for v in sites.values())
    return FaultPattern(sites=sites, n_flips=int(n), n_sites=pattern.n_sites)


def _still_wrong(g: np.ndarray, n_prot: int, ber, protection: Protection, rng) -> np.ndarray:
    """Global ids of protected bits wrong after correction, given the hit ids ``g`` (sorted)."""
    if protection.scheme == "tmr":
        if ber is None:
            return np.empty(0, np.int64)
        keep = g[rng.random(g.size) < 1.0 - (1.0 - ber) ** 2]  # a copy failed as well
        m = int(rng.binomial(n_prot - g.size, ber**2))  # both copies failed, data bit intact
        return np.sort(np.concatenate([keep, _complement_sample(n_prot, g, m, rng)]))
    words, d = np.unique(g // protection.block, return_counts=True)
    if ber is None:
        bad = words[d >= 2]
    else:
        sizes = np.minimum(protection.block, n_prot - words * protection.block)
        checks = np.array([secded_check_bits(int(k)) for k in sizes], dtype=np.int64)
        e = rng.binomial(checks, ber) if words.size else np.empty(0, np.int64)
        bad = words[d + e >= 2]
    return g[np.isin(g // protection.block, bad)]


def filtered_campaign(
    model: nn.Module,
    X,
    y,
    fm: FaultModel,
    pattern_filter: Callable[[FaultPattern, np.random.Generator], FaultPattern] | None = None,
    *,
    trials: int = 100,
    seed: int = 0,
):
    """A campaign whose trial t draws the campaign's pattern (rng([seed, t])), then filters it.

    Runs through the Monte Carlo core (``MonteCarlo(pattern_filter=...)``); with
    ``pattern_filter=None`` it is ``campaign.run_campaign`` itself, so a filtered run is paired
    with the plain model's run trial by trial. The filter gets its own generator rng([seed, t, 1]).
    """
    from sar_core.analysis.campaign import run_campaign

    return run_campaign(model, X, y, fm, trials=trials, seed=seed, pattern_filter=pattern_filter)


def protected_campaign(
    model: nn.Module, X, y, fm: FaultModel, protection: Protection, *, trials=100, seed=0
):
    """Campaign on ``model`` with ``protection``: the plain campaign's faults, then correction."""
    from sar_core.faults.model import parameter_shapes

    shapes = parameter_shapes(model)
    protection.positions(fm.format)  # validate against the format before any trial
    _check_flip_model(fm)
    return filtered_campaign(
        model,
        X,
        y,
        fm,
        lambda p, rng: filter_pattern(p, shapes, fm, protection, rng),
        trials=trials,
        seed=seed,
    )
