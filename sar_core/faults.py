"""Fault models, fault patterns (sampling), and functional application to a parameter dict.

A *site* is one stored bit of one eligible parameter element. Under a bit error rate p every
site flips independently with probability p; we sample n ~ Binomial(N_sites, p) and then n
distinct sites uniformly, which is the same distribution at O(n) cost. A pattern depends only on
the parameter shapes, the fault model and the seed, so the same pattern can hit two models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from sar_core import bits as B
from sar_core import limits
from sar_core.validate import check_choice, check_float, check_int

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class FaultModel:
    """Which bits of which parameters flip, in which storage format, and how many.

    Exactly one of ``ber`` (every eligible bit flips independently with probability ber) and
    ``count`` (exactly ``count`` distinct eligible bits flip) is set.
    """

    format: str = "float32"  # float32 | float16 | bfloat16 | int8
    bits: tuple[int, ...] | str | None = None  # positions (bit 0 = LSB), a group name, or None=all
    ber: float | None = None  # bit error rate in (0, 1]
    count: int | None = None  # exact number of flips per trial
    layers: tuple[str, ...] | None = None  # module names (e.g. "fc1"); None = every layer
    include_bias: bool = False  # biases (1-D parameters) are eligible only when True
    granularity: str = "tensor"  # int8 scale: per "tensor" or per output "channel"

    def __post_init__(self) -> None:
        B.get_format(self.format)
        object.__setattr__(self, "bits", B.parse_bits(self.bits, self.format))
        if (self.ber is None) == (self.count is None):
            raise ValueError(
                f"Invalid ber={self.ber}, count={self.count}: give exactly one of ber in (0, 1] "
                "or count >= 1"
            )
        if self.ber is not None:
            object.__setattr__(
                self, "ber", check_float("ber", self.ber, low=0.0, high=1.0, low_open=True)
            )
        if self.count is not None:
            object.__setattr__(
                self, "count", check_int("count", self.count, low=1, high=limits.MAX_FLIP_COUNT)
            )
        if self.layers is not None:
            if not isinstance(self.layers, (str, list, tuple)):
                raise ValueError(
                    f"Invalid layers={self.layers!r}: give layer names (e.g. ['fc1']) or None for all"
                )
            layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
            if not layers:
                raise ValueError("Invalid layers=[]: select at least one layer, or None for all")
            object.__setattr__(self, "layers", layers)
        check_choice("granularity", self.granularity, ("tensor", "channel"))
        if not isinstance(self.include_bias, (bool, np.bool_)):
            raise ValueError(f"Invalid include_bias={self.include_bias!r}: must be True or False")

    def with_rate(self, *, ber: float | None = None, count: int | None = None) -> FaultModel:
        """Same fault model with another BER or flip count."""
        return replace(self, ber=ber, count=count)

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return {
            "format": self.format,
            "bits": list(self.bits),  # type: ignore[arg-type]
            "ber": self.ber,
            "count": self.count,
            "layers": list(self.layers) if self.layers else None,
            "include_bias": self.include_bias,
            "granularity": self.granularity,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> FaultModel:
        """Inverse of ``to_dict``."""
        allowed = set(cls.__dataclass_fields__)
        if not isinstance(d, Mapping) or set(d) - allowed:
            raise ValueError(f"Invalid fault model {d!r}: allowed keys are {sorted(allowed)}")
        d = dict(d)
        if isinstance(d.get("bits"), list):
            d["bits"] = tuple(d["bits"])
        if isinstance(d.get("layers"), list):
            d["layers"] = tuple(d["layers"])
        return cls(**d)


def catastrophic_bits(fmt: str) -> tuple[int, ...]:
    """Bits whose flip sends a typical weight (|w| < 1) to a huge value: the exponent MSB."""
    f = B.get_format(fmt)
    return () if f.kind == "int" else (f.width - 2,)


def parameter_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter."""
    return {n: tuple(p.shape) for n, p in model.named_parameters()}


def eligible_parameters(shapes: Shapes, fm: FaultModel) -> list[str]:
    """Parameters a fault model can hit, in model order."""
    names = list(shapes)
    if fm.layers is not None:
        layers_of = {n.rsplit(".", 1)[0] for n in names}
        unknown = [lay for lay in fm.layers if lay not in layers_of]
        if unknown:
            raise ValueError(
                f"Invalid layers={list(fm.layers)}: {unknown[0]!r} is not a layer of this model; "
                f"available: {', '.join(sorted(layers_of))}"
            )
        names = [n for n in names if n.rsplit(".", 1)[0] in fm.layers]
    if not fm.include_bias:
        names = [n for n in names if len(shapes[n]) >= 2]
    if not names:
        raise ValueError(
            f"Invalid layers={list(fm.layers) if fm.layers else None} with include_bias="
            f"{fm.include_bias}: no parameter is eligible; include biases or pick other layers"
        )
    return names


def count_sites(shapes: Shapes, fm: FaultModel) -> int:
    """N_sites = (eligible elements) x (selected bit positions)."""
    n_elem = sum(int(np.prod(shapes[n])) for n in eligible_parameters(shapes, fm))
    return n_elem * len(fm.bits)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FaultPattern:
    """Chosen sites: per parameter name, flat element indices and the bit flipped at each."""

    sites: dict[str, tuple[np.ndarray, np.ndarray]] = field(repr=False)
    n_flips: int
    n_sites: int


def sample_pattern(shapes: Shapes, fm: FaultModel, rng: np.random.Generator | int) -> FaultPattern:
    """Sample one fault pattern: n ~ Binomial(N_sites, ber) (or n = count), then n distinct sites."""
    rng = np.random.default_rng(rng)
    names = eligible_parameters(shapes, fm)
    sizes = np.array([int(np.prod(shapes[n])) for n in names], dtype=np.int64)
    nbits = len(fm.bits)  # type: ignore[arg-type]
    n_sites = int(sizes.sum()) * nbits
    if fm.count is not None:
        if fm.count > n_sites:
            raise ValueError(
                f"Invalid count={fm.count}: only {n_sites} eligible bit sites exist for this "
                f"model and fault model; use count <= {n_sites}"
            )
        n = fm.count
    else:
        n = int(rng.binomial(n_sites, fm.ber))
    site_ids = rng.choice(n_sites, size=n, replace=False) if n else np.empty(0, np.int64)
    elem, bit_slot = np.divmod(site_ids.astype(np.int64), nbits)  # site = elem * nbits + slot
    bit_pos = np.asarray(fm.bits, dtype=np.int64)[bit_slot]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    which = np.searchsorted(offsets, elem, side="right") - 1
    sites = {}
    for k, name in enumerate(names):
        sel = which == k
        if sel.any():
            sites[name] = (elem[sel] - offsets[k], bit_pos[sel])
    return FaultPattern(sites=sites, n_flips=n, n_sites=n_sites)


class Injector:
    """Deploys a model's parameters in a format and applies fault patterns functionally.

    The model's tensors are read once (copied) and never written: every call returns new tensors.
    """

    def __init__(self, model: nn.Module, fm: FaultModel) -> None:
        self.fm = fm
        params = {n: p.detach() for n, p in model.named_parameters()}
        self.shapes = {n: tuple(p.shape) for n, p in params.items()}
        self.device = next(iter(params.values())).device
        self.eligible = eligible_parameters(self.shapes, fm)
        self._codes: dict[str, np.ndarray] = {}
        self._scales: dict[str, np.ndarray | None] = {}
        deployed = dict(params)
        for n in self.eligible:
            w = params[n].cpu().numpy()
            s = B.int8_scale(w, fm.granularity) if fm.format == "int8" else None
            self._codes[n] = B.encode(w, fm.format, s)
            self._scales[n] = s
            deployed[n] = self._to_tensor(B.decode(self._codes[n], fm.format, s))
        self._deployed = deployed

    def _to_tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)

    @property
    def n_sites(self) -> int:
        """Number of eligible bit sites."""
        return count_sites(self.shapes, self.fm)

    def deployed(self) -> dict[str, torch.Tensor]:
        """Parameters as stored in the format, without flips (quantization alone)."""
        return dict(self._deployed)

    def sample(self, rng: np.random.Generator | int) -> FaultPattern:
        """Sample a pattern for this model's shapes."""
        return sample_pattern(self.shapes, self.fm, rng)

    def apply(self, pattern: FaultPattern) -> dict[str, torch.Tensor]:
        """Parameters with the pattern's bits flipped (new tensors; untouched ones shared)."""
        out = dict(self._deployed)
        for name, (idx, bit_pos) in pattern.sites.items():
            if name not in self._codes:
                raise ValueError(f"Invalid pattern: parameter {name!r} is not eligible here")
            codes = self._codes[name].copy()
            flat = codes.reshape(-1)
            masks = np.left_shift(np.ones_like(bit_pos, dtype=np.uint64), bit_pos.astype(np.uint64))
            np.bitwise_xor.at(flat, idx, masks.astype(flat.dtype))  # distinct sites: XOR = OR
            with np.errstate(over="ignore", invalid="ignore"):
                out[name] = self._to_tensor(B.decode(codes, self.fm.format, self._scales[name]))
        return out

    def perturbation(self, pattern: FaultPattern) -> dict[str, torch.Tensor]:
        """w_faulty - w_deployed for every parameter (zeros where nothing flipped)."""
        faulty = self.apply(pattern)
        return {n: faulty[n] - self._deployed[n] for n in faulty}
