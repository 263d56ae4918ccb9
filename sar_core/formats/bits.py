"""Number formats and bit flips, bit-exact. Bit 0 is the least significant bit, everywhere.

float32 (IEEE 754 binary32): bit 31 sign, bits 30..23 exponent, bits 22..0 mantissa.
float16 (binary16): bit 15 sign, 14..10 exponent, 9..0 mantissa.
bfloat16: bit 15 sign, 14..7 exponent, 6..0 mantissa (the top 16 bits of a float32).
int8: symmetric quantization w ~ q * s, q two's complement in [-128, 127], bit 7 the sign
(weight -128), s = max|w| / 127 per tensor or per output channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sar_core.names import FORMAT_NAMES, GRANULARITIES
from sar_core.validate import check_choice, check_float, check_int


@dataclass(frozen=True)
class NumberFormat:
    """Layout of a storage format: total width and field sizes (integers have no exponent)."""

    name: str
    width: int
    exponent_bits: int  # 0 for int8
    mantissa_bits: int  # 0 for int8
    kind: str  # "float" or "int"


# the names are defined once, in sar_core.names (importable without numpy); the layouts here
FORMATS: dict[str, NumberFormat] = {
    name: NumberFormat(name, *layout)
    for name, layout in zip(
        FORMAT_NAMES,
        ((32, 8, 23, "float"), (16, 5, 10, "float"), (16, 8, 7, "float"), (8, 0, 0, "int")),
        strict=True,
    )
}
BIT_GROUPS = ("all", "sign", "exponent", "mantissa", "msb", "lsb")
_UINT = {32: np.uint32, 16: np.uint16, 8: np.uint8}


def get_format(name: str) -> NumberFormat:
    """Look up a format by name (float32, float16, bfloat16, int8)."""
    check_choice("format", name, FORMAT_NAMES)
    return FORMATS[name]


def bit_fields(fmt: str) -> list[str]:
    """Field of every bit, indexed by bit position (index 0 = LSB): sign/exponent/mantissa/integer."""
    f = get_format(fmt)
    if f.kind == "int":
        return ["integer"] * (f.width - 1) + ["sign"]
    return ["mantissa"] * f.mantissa_bits + ["exponent"] * f.exponent_bits + ["sign"]


def bit_field(fmt: str, bit: int) -> str:
    """Field that bit ``bit`` of format ``fmt`` belongs to."""
    f = get_format(fmt)
    check_int("bit", bit, low=0, high=f.width - 1)
    return bit_fields(fmt)[bit]


def parse_bits(spec: str | int | Iterable[int] | None, fmt: str) -> tuple[int, ...]:
    """Bit positions from a spec: None/"all", a group name, "0-7", "30,31", an int or a list.

    Groups: sign (top bit), exponent, mantissa (floats only), msb (top bit), lsb (bit 0).
    Returns sorted distinct positions; raises ValueError on empty or out-of-range selections.
    """
    f = get_format(fmt)
    top = f.width - 1
    if spec is None:
        return tuple(range(f.width))
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return (check_int("bits", int(spec), low=0, high=top),)
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s == "":
            raise ValueError(f"Invalid bits='': select at least one bit position in 0..{top}")
        fields = bit_fields(fmt)
        if s == "all":
            return tuple(range(f.width))
        if s in ("sign", "msb"):
            return (top,)
        if s == "lsb":
            return (0,)
        if s in ("exponent", "mantissa"):
            if f.kind == "int":
                raise ValueError(
                    f"Invalid bits={spec!r} for format 'int8': int8 has no {s} field; "
                    f"use sign, msb, lsb, all, or positions in 0..{top}"
                )
            return tuple(i for i, name in enumerate(fields) if name == s)
        out: set[int] = set()
        shown = spec if len(spec) <= 80 else spec[:77] + "..."
        for part in s.split(","):
            part = part.strip()
            try:
                if "-" in part[1:]:
                    a, b = part.split("-", 1)
                    lo, hi = sorted((int(a), int(b)))
                else:
                    lo = hi = int(part)
            except ValueError:
                raise ValueError(
                    f"Invalid bits={shown!r}: expected a group ({', '.join(BIT_GROUPS)}), "
                    f"a range like 0-7, or a list like 30,31 with positions in 0..{top}"
                ) from None
            bad = lo if lo < 0 else hi  # check the bounds before building any range
            if lo < 0 or hi > top:
                raise ValueError(
                    f"Invalid bits={shown!r}: position {bad} is outside 0..{top} for {fmt}"
                )
            out.update(range(lo, hi + 1))
        return tuple(sorted(out))
    try:
        items = list(spec)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"Invalid bits={spec!r}: expected bit positions in 0..{top}") from None
    for b in items:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
            raise ValueError(
                f"Invalid bits={items!r}: {b!r} is not an integer bit position in 0..{top}"
            )
        if b < 0 or b > top:
            raise ValueError(f"Invalid bits={items!r}: position {b} is outside 0..{top} for {fmt}")
    positions = sorted({int(b) for b in items})
    if not positions:
        raise ValueError(f"Invalid bits=[]: select at least one bit position in 0..{top}")
    return tuple(positions)


def int8_scale(w, granularity: str = "tensor"):
    """Symmetric int8 scale s = max|w| / 127, per tensor (shape ()) or per output channel (axis 0).

    The one int8 scale of the project (the rule itself: ``int8_scale_of_max``). A numpy array (or
    anything numpy reads) gives a float32 array; a torch tensor gives a float32 tensor on its
    device, differentiable in w (no torch import here: tensor methods only). An all-zero (or NaN)
    range gives 1.0: any scale stores 0; so does a range whose s = max|w| / 127 rounds to 0
    (0 < max|w| <= 63 * 2^-149). Per channel, s has shape (C, 1, ...), broadcastable against w;
    a 1-D tensor (a bias) has no channel axis of its own and takes one scale either way, as the
    training code (SAR's int8 geometry, RandBET) has always stored it.
    """
    check_choice("granularity", granularity, GRANULARITIES)
    if hasattr(w, "masked_fill"):  # a torch tensor
        a = w.abs().float()
        if granularity == "tensor" or a.dim() <= 1:
            return int8_scale_of_max(a.amax() if a.numel() else a.new_zeros(()))
        m = a.reshape(a.shape[0], -1).amax(dim=1)
        return int8_scale_of_max(m).reshape((-1,) + (1,) * (a.dim() - 1))
    w = np.asarray(w, dtype=np.float32)
    if granularity == "tensor" or w.ndim <= 1:
        return int8_scale_of_max(np.max(np.abs(w)) if w.size else np.float32(0))
    m = np.max(np.abs(w.reshape(w.shape[0], -1)), axis=1)
    return int8_scale_of_max(m).reshape((-1,) + (1,) * (w.ndim - 1))


def int8_scale_of_max(m, out=None, kept=None):
    """The int8 scale rule on ranges m = max|w| (>= 0; of a tensor or of each channel).

    s = m / 127, rounded in m's dtype (float32 for the injector), where that is > 0; 1.0 where it
    is not (m = 0, NaN, or 0 < m <= 63 * 2^-149 in float32, where m / 127 rounds to 0): any scale
    stores 0 there. ``int8_scale`` and the training code (SAR's int8 geometry, RandBET) both use
    this rule. A torch tensor gives a tensor, differentiable in m (ds/dm = 1/127 where s = m / 127,
    0 where s = 1); a numpy array (or scalar) a numpy array of m's float dtype (float32 if m is
    not a float). ``out``: write s there (same kind as m, m's shape and dtype); ``kept``: a bool
    array or tensor of m's shape that receives where s = m / 127 (there s follows w).
    """
    if hasattr(m, "masked_fill"):  # a torch tensor (no torch import here)
        s = m / 127.0
        keep = s > 0
        s = s.masked_fill(~keep, 1.0)
        if kept is not None:
            kept.copy_(keep)
        return s if out is None else out.copy_(s)
    if not isinstance(m, np.ndarray) or m.dtype.kind != "f":
        m = np.asarray(m)
        m = m if m.dtype.kind == "f" else m.astype(np.float32)
    s = np.divide(m, m.dtype.type(127.0), out=out)
    s = s if out is not None else np.asarray(s)
    keep = np.greater(s, 0, out=kept)
    np.copyto(s, s.dtype.type(1.0), where=~keep)
    return s


def encode(values: np.ndarray, fmt: str, scale: np.ndarray | float | None = None) -> np.ndarray:
    """Stored bit patterns of ``values`` in ``fmt`` as unsigned integers (always a fresh array).

    Floats round to nearest-even; int8 computes q = clip(round(w / scale), -127, 127).
    """
    f = get_format(fmt)
    x = np.array(values, dtype=np.float32, copy=True)
    if f.name == "float32":
        return x.view(np.uint32).copy()
    if f.name == "float16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).view(np.uint16).copy()
    if f.name == "bfloat16":
        return _bfloat16_codes(x)
    if scale is None:
        raise ValueError("Invalid scale=None: int8 encoding needs a scale (see int8_scale)")
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        r = x / np.asarray(scale, dtype=np.float32)
    # a diverged model's NaN has no int8 code: store 0 (defined, not whatever the cast makes of it);
    # +-inf saturate to +-127 like every other out-of-range value
    r = np.nan_to_num(r, nan=0.0, posinf=127.0, neginf=-127.0)
    q = np.clip(np.rint(r), -127, 127).astype(np.int8)
    return q.view(np.uint8).copy()


def _bfloat16_codes(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 codes, round to nearest even (as torch's .to(bfloat16); NaN -> 0x7FC0)."""
    u = x.view(np.uint32).astype(np.uint64)
    lsb = (u >> 16) & 1  # ties go to the even upper half
    out = ((u + 0x7FFF + lsb) >> 16).astype(np.uint16)
    out[np.isnan(x)] = 0x7FC0  # torch's canonical quiet NaN
    return out


def decode(codes: np.ndarray, fmt: str, scale: np.ndarray | float | None = None) -> np.ndarray:
    """Values (float32) of stored bit patterns ``codes`` in ``fmt``."""
    f = get_format(fmt)
    c = np.ascontiguousarray(codes, dtype=_UINT[f.width])
    if f.name == "float32":
        return c.view(np.float32).copy()
    if f.name == "float16":
        return c.view(np.float16).astype(np.float32)
    if f.name == "bfloat16":
        return (c.astype(np.uint32) << 16).view(np.float32)  # bfloat16 = top half of a float32
    if scale is None:
        raise ValueError("Invalid scale=None: int8 decoding needs a scale (see int8_scale)")
    return (c.view(np.int8).astype(np.float32) * np.asarray(scale, dtype=np.float32)).astype(
        np.float32
    )


def round_trip(values: np.ndarray, fmt: str, scale: np.ndarray | float | None = None) -> np.ndarray:
    """What ``values`` become once stored in ``fmt`` (quantization alone, no flips)."""
    return decode(encode(values, fmt, scale), fmt, scale)


def flip_codes(codes: np.ndarray, bit: int) -> np.ndarray:
    """Flip bit ``bit`` of every code (a new array)."""
    width = codes.dtype.itemsize * 8
    check_int("bit", bit, low=0, high=width - 1)
    return codes ^ codes.dtype.type(1 << bit)


def to_bitstring(code: int, width: int) -> str:
    """Bits of ``code``, most significant first (so bit 0 is the last character)."""
    return format(int(code), f"0{width}b")


@dataclass(frozen=True)
class FlipResult:
    """One bit flip of one value: before/after values and bit strings (MSB first)."""

    format: str
    bit: int | tuple[int, ...]  # the flipped position, or the positions flipped at once
    field: str  # field of the bit ("+"-joined distinct fields when several)
    value_before: float
    value_after: float
    bits_before: str
    bits_after: str
    scale: float | None

    @property
    def abs_change(self) -> float:
        """|after - before| (inf when the result is not finite)."""
        return float(abs(np.float64(self.value_after) - np.float64(self.value_before)))

    @property
    def relative_change(self) -> float:
        """|after - before| / |before| (inf when before is 0 and the value moved)."""
        d = self.abs_change
        b = abs(self.value_before)
        if b == 0:
            return 0.0 if d == 0 else float("inf")
        return d / b

    def to_dict(self) -> dict:
        """JSON-friendly view (non-finite numbers as strings 'inf', '-inf', 'nan')."""
        return {
            "format": self.format,
            "bit": list(self.bit) if isinstance(self.bit, tuple) else self.bit,
            "field": self.field,
            "value_before": _jsonable(self.value_before),
            "value_after": _jsonable(self.value_after),
            "bits_before": self.bits_before,
            "bits_after": self.bits_after,
            "scale": self.scale,
            "relative_change": _jsonable(self.relative_change),
        }


def _jsonable(x: float) -> float | str:
    x = float(x)
    if np.isfinite(x):
        return x
    return "nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")


def overflow_note(value: float, fmt: str) -> str | None:
    """A sentence when a float format stores the finite ``value`` as +-inf, else None."""
    f = get_format(fmt)
    if f.kind != "float" or not np.isfinite(value):
        return None
    e, m = f.exponent_bits, f.mantissa_bits
    top = 2.0 ** (2 ** (e - 1) - 1)
    # round to nearest: from half an ulp above the largest finite value on, the code is inf
    if abs(value) < (2.0 - 2.0 ** -(m + 1)) * top:
        return None
    largest, sign = (2.0 - 2.0**-m) * top, "-" if value < 0 else ""
    return (
        f"{value:g} is beyond {fmt}'s largest finite value {largest:.6g}: it is stored as {sign}inf"
    )


def flip_value(
    value: float, fmt: str, bit: int | Sequence[int], scale: float | None = None
) -> FlipResult:
    """Store ``value`` in ``fmt``, flip bit ``bit`` (or every bit of a list at once), report it.

    Several bits are XORed into the one stored code; an empty list only stores the value. Each
    position is validated like a single bit. For int8 the scale defaults to |value| / 127 (the
    value is then the tensor's maximum).
    """
    f = get_format(fmt)
    value = check_float("value", value)
    positions = _bit_list(bit, f.width)
    s = None
    if f.kind == "int":
        if scale is None:
            scale = abs(value) / 127.0 if value != 0 else 1.0
        s = check_float("scale", scale, low=0.0, low_open=True)
        if not np.float32(s) > 0 or not np.isfinite(np.float32(s)):
            raise ValueError(
                f"Invalid scale={s}: int8 needs a scale that is a positive finite float32 "
                "(>= 1.4e-45); use a larger value or a float format"
            )
    with np.errstate(over="ignore"):  # beyond float32: stored as +-inf (see overflow_note)
        arr = np.array([value], dtype=np.float32)
    before = encode(arr, fmt, s)
    after = before.copy()
    for b in positions:
        after = flip_codes(after, b)
    fields = bit_fields(fmt)
    with np.errstate(over="ignore", invalid="ignore"):
        v0, v1 = float(decode(before, fmt, s)[0]), float(decode(after, fmt, s)[0])
    return FlipResult(
        format=fmt,
        bit=positions[0] if isinstance(bit, (int, np.integer)) else tuple(positions),
        field="+".join(dict.fromkeys(fields[b] for b in positions)),
        value_before=v0,
        value_after=v1,
        bits_before=to_bitstring(before[0], f.width),
        bits_after=to_bitstring(after[0], f.width),
        scale=s,
    )


def _bit_list(bit: int | Sequence[int], width: int) -> list[int]:
    """Distinct sorted bit positions, each checked like a single ``bit`` in 0..width-1."""
    if isinstance(bit, (int, np.integer)) and not isinstance(bit, bool):
        return [check_int("bit", bit, low=0, high=width - 1)]
    if isinstance(bit, (str, bytes, bool)) or not hasattr(bit, "__iter__"):
        raise ValueError(f"Invalid bit={bit!r}: must be an integer in [0, {width - 1}] or a list")
    return sorted({check_int("bit", b, low=0, high=width - 1) for b in bit})


def delta_per_bit(
    weights: np.ndarray | Sequence[np.ndarray], fmt: str, granularity: str = "tensor"
) -> np.ndarray:
    """Median |delta w| from flipping each bit position of every weight; shape (width,).

    ``weights`` is one tensor (an array) or a list of tensors; each tensor is stored as a
    campaign stores it (int8: its own scale, per tensor or per channel), and the |delta w| of all
    tensors are pooled before the median. Non-finite changes count as inf (a catastrophic bit
    shows inf).
    """
    f = get_format(fmt)
    tensors = [weights] if isinstance(weights, np.ndarray) else list(weights)
    per_bit: list[list[np.ndarray]] = [[] for _ in range(f.width)]
    with np.errstate(invalid="ignore", over="ignore"):
        for t in tensors:
            w = np.asarray(t, dtype=np.float32)
            s = int8_scale(w, granularity) if f.kind == "int" else None
            codes = encode(w, fmt, s)
            base = decode(codes, fmt, s).astype(np.float64)
            for b in range(f.width):
                d = np.abs(decode(flip_codes(codes, b), fmt, s).astype(np.float64) - base)
                d[~np.isfinite(d)] = np.inf
                per_bit[b].append(d.ravel())
    out = np.zeros(f.width, dtype=np.float64)
    for b, ds in enumerate(per_bit):
        d = np.concatenate(ds) if ds else np.empty(0)
        out[b] = float(np.median(d)) if d.size else 0.0
    return out
