"""Fault models, fault patterns (sampling), and functional application to a parameter dict.

A *site* is one place a fault can start: one stored word (element) of an eligible parameter and
one start bit. For ``burst=1`` a site is one stored bit. Under a rate p every site is hit
independently with probability p; we sample n ~ Binomial(N_sites, p) and then n distinct sites
uniformly, which is the same distribution at O(n) cost. A hit site

- ``kind="flip"``: flips the ``burst`` adjacent bits start..start+burst-1 (never past the word's
  top bit; two bursts on one word flip the union of their bits once);
- ``kind="stuck-at-0"`` / ``"stuck-at-1"``: forces those bits to 0 / 1, so a bit that already
  holds the value does not change (patterns report hit sites; ``Injector`` counts changed bits).

Asymmetric rates (``ber_10`` for 1->0, ``ber_01`` for 0->1) sample the sites holding a 1 and
those holding a 0 separately (exactly Binomial(N_1, p_10) and Binomial(N_0, p_01)): such a pattern
depends on the deployed bits, so only ``Injector.sample`` draws it. Every other pattern depends
only on the parameter shapes, the fault model and the seed, so the same pattern can hit two
models of one architecture (common random numbers).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from torch import nn

from sar_core import limits
from sar_core.faults.draws import chunk_site_draws, draw_sites
from sar_core.formats import bits as B
from sar_core.names import FAULT_KINDS, FAULT_TARGETS, GRANULARITIES
from sar_core.validate import check_choice, check_float, check_int

Shapes = Mapping[str, tuple[int, ...]]
KINDS = FAULT_KINDS  # what a hit site does (defined once in sar_core.names)
TARGETS = FAULT_TARGETS  # where the faults land


@dataclass(frozen=True)
class FaultModel:
    """Which bits of which parameters (or layer outputs) fail, how, in which format, how often.

    Exactly one rate is set: ``ber`` (every site is hit independently with probability ber),
    ``count`` (exactly ``count`` distinct sites), or the asymmetric pair ``ber_01`` / ``ber_10``
    (flips only; a missing one of the pair is 0).
    """

    format: str = "float32"  # float32 | float16 | bfloat16 | int8
    bits: tuple[int, ...] | str | None = None  # positions (bit 0 = LSB), a group name, or None=all
    ber: float | None = None  # rate per site in (0, 1]
    count: int | None = None  # exact number of hit sites per trial
    layers: tuple[str, ...] | None = None  # module names (e.g. "fc1"); None = every layer
    include_bias: bool = False  # biases (1-D parameters) are eligible only when True
    granularity: str = "tensor"  # int8 scale: per "tensor" or per output "channel"
    kind: str = "flip"  # flip | stuck-at-0 | stuck-at-1
    burst: int = 1  # adjacent bits hit together in one word, starting at a selected bit
    target: str = "weights"  # weights (stored parameters) | activations (layer outputs)
    ber_01: float | None = None  # asymmetric: probability that a stored 0 becomes 1
    ber_10: float | None = None  # asymmetric: probability that a stored 1 becomes 0

    def __post_init__(self) -> None:
        fmt = B.get_format(self.format)
        object.__setattr__(self, "bits", B.parse_bits(self.bits, self.format))
        check_choice("kind", self.kind, KINDS)
        check_choice("target", self.target, TARGETS)
        object.__setattr__(self, "burst", check_int("burst", self.burst, low=1, high=fmt.width))
        if not self.starts:
            raise ValueError(
                f"Invalid burst={self.burst} with bits={list(self.bits)}: a burst starting at a "
                f"selected bit must end by bit {fmt.width - 1} of the {fmt.width}-bit word; "
                "select lower bits or a shorter burst"
            )
        self._check_rates()
        if self.layers is not None:
            if not isinstance(self.layers, (str, list, tuple)):
                raise ValueError(
                    f"Invalid layers={self.layers!r}: give layer names (e.g. ['fc1']) or None for all"
                )
            layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
            if not layers:
                raise ValueError("Invalid layers=[]: select at least one layer, or None for all")
            bad = [lay for lay in layers if not isinstance(lay, str) or not lay.strip()]
            if bad:
                raise ValueError(
                    f"Invalid layers={list(layers)}: {bad[0]!r} is not a layer name (e.g. 'fc1')"
                )
            layers = tuple(dict.fromkeys(layers))  # each layer once, in the order given
            object.__setattr__(self, "layers", layers)
        check_choice("granularity", self.granularity, GRANULARITIES)
        if not isinstance(self.include_bias, (bool, np.bool_)):
            raise ValueError(f"Invalid include_bias={self.include_bias!r}: must be True or False")

    def _check_rates(self) -> None:
        asym = self.ber_01 is not None or self.ber_10 is not None
        given = [n for n, v in (("ber", self.ber), ("count", self.count)) if v is not None]
        if asym and given:
            raise ValueError(
                f"Invalid {given[0]}={getattr(self, given[0])} with ber_01={self.ber_01}, "
                f"ber_10={self.ber_10}: asymmetric rates replace ber/count; give only one kind"
            )
        if not asym and len(given) != 1:
            raise ValueError(
                f"Invalid ber={self.ber}, count={self.count}: give exactly one of ber in (0, 1] "
                "or count >= 1"
            )
        if self.ber is not None:
            ber = check_float("ber", self.ber, low=0.0, high=1.0, low_open=True)
            object.__setattr__(self, "ber", ber)
        if self.count is not None:
            count = check_int("count", self.count, low=1, high=limits.MAX_FLIP_COUNT)
            object.__setattr__(self, "count", count)
        if asym:
            for name in ("ber_01", "ber_10"):
                v = getattr(self, name)
                object.__setattr__(
                    self, name, check_float(name, 0.0 if v is None else v, low=0.0, high=1.0)
                )
            if self.ber_01 == 0 and self.ber_10 == 0:
                raise ValueError("Invalid ber_01=0, ber_10=0: at least one rate must be > 0")
            for what, bad in (
                (f"kind={self.kind!r}", self.kind != "flip"),
                (f"burst={self.burst}", self.burst != 1),
                (f"target={self.target!r}", self.target != "weights"),
            ):
                if bad:
                    raise ValueError(
                        f"Invalid {what} with ber_01/ber_10: asymmetric rates apply to single-bit "
                        "flips of stored weights (kind='flip', burst=1, target='weights')"
                    )

    @property
    def asymmetric(self) -> bool:
        """True when the rates are the per-direction pair ber_01 / ber_10."""
        return self.ber_01 is not None

    @property
    def starts(self) -> tuple[int, ...]:
        """Selected bits at which a burst fits inside the word (all selected bits for burst=1)."""
        width = B.get_format(self.format).width
        return tuple(b for b in self.bits if b + self.burst <= width)  # type: ignore[union-attr]

    def with_rate(self, *, ber: float | None = None, count: int | None = None) -> FaultModel:
        """Same fault model with another BER or flip count (asymmetric rates dropped)."""
        return replace(self, ber=ber, count=count, ber_01=None, ber_10=None)

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
            "kind": self.kind,
            "burst": self.burst,
            "target": self.target,
            "ber_01": self.ber_01,
            "ber_10": self.ber_10,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> FaultModel:
        """Inverse of ``to_dict`` (dicts written before kind/burst/target existed still load)."""
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
    """N_sites = (eligible elements) x (start bits; the selected bits when burst = 1)."""
    n_elem = sum(int(np.prod(shapes[n])) for n in eligible_parameters(shapes, fm))
    return n_elem * len(fm.starts)


class FaultPattern:
    """Hit sites: per parameter name, flat element indices and the (start) bit at each.

    Site i covers bits bit[i] .. bit[i] + burst - 1 of element idx[i]. Patterns drawn by a
    ``SiteSpace`` keep its global site ids (``flat=(space, site ids)``) and build the element ids,
    start bits and the per-name ``sites`` dict only on demand.
    """

    def __init__(
        self,
        sites: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
        n_flips: int = 0,
        n_sites: int = 0,
        burst: int = 1,
        *,
        flat: tuple[SiteSpace, np.ndarray] | None = None,
    ) -> None:
        if (sites is None) == (flat is None):
            raise ValueError("Invalid FaultPattern: give exactly one of sites or flat")
        self._sites, self._flat = sites, flat
        self._elem_start: tuple[np.ndarray, np.ndarray] | None = None
        self.n_flips, self.n_sites, self.burst = int(n_flips), int(n_sites), int(burst)

    def __repr__(self) -> str:
        return f"FaultPattern(n_flips={self.n_flips}, n_sites={self.n_sites}, burst={self.burst})"

    @property
    def sites(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Parameter name -> (flat element indices, start bits)."""
        if self._sites is None:
            space = self._flat[0]  # type: ignore[index]
            elem, start = self._split()
            which = np.searchsorted(space.offsets, elem, side="right") - 1
            sites = {}
            for k, name in enumerate(space.names):
                sel = which == k
                if sel.any():
                    sites[name] = (elem[sel] - space.offsets[k], start[sel])
            self._sites = sites
        return self._sites

    def _split(self) -> tuple[np.ndarray, np.ndarray]:
        """(global element ids, start bits) of a pattern drawn by a SiteSpace (computed once)."""
        if self._elem_start is None:
            space, ids = self._flat  # type: ignore[misc]
            self._elem_start = space.elements_and_starts(ids)
        return self._elem_start

    def site_ids(self, space: SiteSpace) -> np.ndarray | None:
        """The global site ids, when the pattern was drawn by a SiteSpace that numbers its sites
        like ``space`` (same parameters, offsets and start bits); else None."""
        if self._flat is None:
            return None
        own, ids = self._flat
        if (own.offsets is space.offsets and own.starts is space.starts) or (
            own.names == space.names
            and np.array_equal(own.offsets, space.offsets)
            and np.array_equal(own.starts, space.starts)
        ):
            return ids
        return None

    def global_sites(self, names: list[str], offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(element ids in the concatenation of ``names`` at ``offsets``, start bits)."""
        if self._flat is not None:
            space = self._flat[0]
            if space.offsets is offsets or (
                space.names == names and np.array_equal(space.offsets, offsets)
            ):
                return self._split()
        pos = {n: k for k, n in enumerate(names)}
        elems, starts = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
        for name, (idx, start) in self.sites.items():
            if name not in pos:
                raise ValueError(f"Invalid pattern: parameter {name!r} is not eligible here")
            elems.append(np.asarray(idx, dtype=np.int64) + offsets[pos[name]])
            starts.append(np.asarray(start, dtype=np.int64))
        return np.concatenate(elems), np.concatenate(starts)


def burst_masks(start: np.ndarray, burst: int) -> np.ndarray:
    """uint64 masks with bits start .. start + burst - 1 set."""
    return np.left_shift(np.uint64((1 << burst) - 1), np.asarray(start).astype(np.uint64))


class SiteSpace:
    """The eligible sites of one fault model on one set of shapes, precomputed for fast sampling."""

    def __init__(self, shapes: Shapes, fm: FaultModel) -> None:
        self.fm = fm
        self.names = eligible_parameters(shapes, fm)
        sizes = np.array([int(np.prod(shapes[n])) for n in self.names], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])
        self.starts = np.asarray(fm.starts, dtype=np.int64)
        self.n_sites = int(sizes.sum()) * len(self.starts)

    def with_fault_model(self, fm: FaultModel) -> SiteSpace:
        """The same sites under ``fm`` (which must select the same sites: only its rate differs)."""
        new = copy.copy(self)
        new.fm = fm
        return new

    def split(self, site_ids: np.ndarray, n: int) -> FaultPattern:
        """Pattern from global site ids (site = element * n_starts + start slot)."""
        ids = np.asarray(site_ids, dtype=np.int64)
        return FaultPattern(n_flips=n, n_sites=self.n_sites, burst=self.fm.burst, flat=(self, ids))

    def elements_and_starts(self, site_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(global element ids, start bits) of global site ids."""
        elem, slot = np.divmod(site_ids, len(self.starts))
        return elem, self.starts[slot]

    def _check_rate(self) -> None:
        """ValueError for a rate this space cannot sample: asymmetric rates, or a count above
        the number of sites."""
        fm = self.fm
        if fm.asymmetric:
            raise ValueError(
                "Invalid fault model: asymmetric rates (ber_01/ber_10) depend on the stored "
                "bits; sample with Injector(model, fm).sample(rng)"
            )
        if fm.count is not None and fm.count > self.n_sites:
            raise ValueError(
                f"Invalid count={fm.count}: only {self.n_sites} eligible bit sites exist for "
                f"this model and fault model; use count <= {self.n_sites}"
            )

    def sample(self, rng: np.random.Generator | int) -> FaultPattern:
        """n ~ Binomial(N_sites, ber) (or n = count), then n distinct sites uniformly."""
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self._check_rate()
        ids = draw_sites(rng, self.n_sites, self.fm.ber, self.fm.count)
        return self.split(ids, ids.size)

    def sample_trials(self, seed: int, trials: Sequence[int]) -> list[FaultPattern]:
        """The patterns of ``trials``, trial t drawn from ``np.random.default_rng([seed, t])``:
        exactly ``[self.sample(np.random.default_rng([seed, t])) for t in trials]``, drawn for
        all trials at once (``sar_core.faults.draws``; benchmarks/draws_bench.py times it)."""
        self._check_rate()
        ids = chunk_site_draws(seed, trials, self.n_sites, ber=self.fm.ber, count=self.fm.count)
        return [self.split(i, i.size) for i in ids]


def sample_pattern(shapes: Shapes, fm: FaultModel, rng: np.random.Generator | int) -> FaultPattern:
    """Sample one fault pattern: n ~ Binomial(N_sites, ber) (or n = count), then n distinct sites."""
    return SiteSpace(shapes, fm).sample(np.random.default_rng(rng))


def apply_masks(codes: np.ndarray, masks: np.ndarray, kind: str) -> np.ndarray:
    """Codes after the masked bits are flipped (XOR) or stuck at 0 / 1 (a new array)."""
    m = masks.astype(codes.dtype)
    if kind == "flip":
        return codes ^ m
    if kind == "stuck-at-1":
        return codes | m
    return codes & ~m  # stuck-at-0
