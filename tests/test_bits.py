"""Bit flips and number formats against numpy's own bit views (independent references)."""

from __future__ import annotations

import numpy as np
import pytest

from sar_core.formats import bits as B


def _random_float32(n: int, seed: int) -> np.ndarray:
    """Random finite float32 values of all magnitudes (from random bit patterns)."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    x = u.view(np.float32)
    return x[np.isfinite(x)]


def _weights(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.3, size=n).astype(np.float32)


# ---------------------------------------------------------------- float32 ---------------------


@pytest.mark.parametrize("bit", range(32))
def test_float32_flip_matches_numpy_view(bit):
    x = np.concatenate([_random_float32(500, bit), _weights(500, bit), [0.0, -0.0, 1.0, 0.1]])
    x = x.astype(np.float32)
    ref = x.view(np.uint32) ^ np.uint32(1 << bit)  # the reference: numpy's own bit view
    codes = B.encode(x, "float32")
    assert np.array_equal(codes, x.view(np.uint32))
    flipped = B.decode(B.flip_codes(codes, bit), "float32")
    assert np.array_equal(flipped.view(np.uint32), ref)  # bit-exact, NaN-safe


def test_flip_value_float32_bit30_of_0_1_is_catastrophic():
    r = B.flip_value(0.1, "float32", 30)
    assert r.field == "exponent"
    assert r.value_after == pytest.approx(3.4028237e37, rel=1e-6)
    ref = (np.float32(0.1).view(np.uint32) ^ np.uint32(1 << 30)).view(np.float32)
    assert r.value_after == float(ref)
    assert r.bits_before == format(int(np.float32(0.1).view(np.uint32)), "032b")
    assert r.bits_after == format(int(ref.view(np.uint32)), "032b")


@pytest.mark.parametrize(
    "value, bit, expected",
    [(1.0, 31, -1.0), (1.0, 23, 0.5), (-2.0, 31, 2.0), (1.0, 22, 1.5), (0.0, 30, 2.0)],
)
def test_flip_value_float32_known_values(value, bit, expected):
    assert B.flip_value(value, "float32", bit).value_after == expected


# ---------------------------------------------------------------- float16 ---------------------


@pytest.mark.parametrize("bit", range(16))
def test_float16_flip_matches_numpy_view(bit):
    rng = np.random.default_rng(100 + bit)
    h = rng.integers(0, 2**16, size=2000, dtype=np.uint32).astype(np.uint16).view(np.float16)
    h = np.concatenate([h[np.isfinite(h)], _weights(300, bit).astype(np.float16)])
    ref = h.view(np.uint16) ^ np.uint16(1 << bit)
    codes = B.encode(h.astype(np.float32), "float16")  # float16 values are exact in float32
    assert np.array_equal(codes, h.view(np.uint16))
    out = B.decode(B.flip_codes(codes, bit), "float16")
    expect = ref.view(np.float16).astype(np.float32)
    assert np.array_equal(out, expect, equal_nan=True)
    # NaN payloads aside, the decoded float16 re-encodes to the reference bits
    finite = np.isfinite(expect)
    assert np.array_equal(out[finite].astype(np.float16).view(np.uint16), ref[finite])


def test_float16_encode_rounds_like_numpy():
    x = _weights(5000, 7) * np.float32(100)
    assert np.array_equal(B.encode(x, "float16"), x.astype(np.float16).view(np.uint16))
    assert np.array_equal(B.round_trip(x, "float16"), x.astype(np.float16).astype(np.float32))


def test_float16_flip_value_exponent_msb_of_one_is_inf():
    r = B.flip_value(1.0, "float16", 14)
    assert r.value_after == float("inf") and r.field == "exponent"
    assert r.bits_before == "0011110000000000" and r.bits_after == "0111110000000000"


# ---------------------------------------------------------------- bfloat16 --------------------


def _bf16_representable(n: int, seed: int) -> np.ndarray:
    """float32 values whose low 16 bits are zero: exactly representable in bfloat16."""
    x = np.concatenate([_random_float32(n, seed), _weights(n, seed)]).astype(np.float32)
    return (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


@pytest.mark.parametrize("bit", range(16))
def test_bfloat16_flip_matches_top_half_of_float32(bit):
    x = _bf16_representable(1000, 200 + bit)
    x = x[np.isfinite(x)]
    u = x.view(np.uint32)
    codes = B.encode(x, "bfloat16")
    assert np.array_equal(codes.astype(np.uint32), u >> 16)  # bf16 = top 16 bits of float32
    ref = (u ^ np.uint32(1 << (bit + 16))).view(np.float32)  # bf16 bit b = float32 bit b + 16
    out = B.decode(B.flip_codes(codes, bit), "bfloat16")
    assert np.array_equal(out.view(np.uint32), ref.view(np.uint32))


def test_bfloat16_round_trip_is_exact_for_representable_values():
    x = _bf16_representable(1000, 3)
    x = x[np.isfinite(x)]
    assert np.array_equal(B.round_trip(x, "bfloat16").view(np.uint32), x.view(np.uint32))


def test_bfloat16_rounds_to_nearest_even():
    # 1 + 2^-8 lies exactly between two bf16 neighbours (1 and 1 + 2^-7): ties go to even (1.0)
    tie = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20], dtype=np.float32)
    assert B.round_trip(tie, "bfloat16").tolist() == [1.0, 1 + 2**-6, 1 + 2**-7]


# ---------------------------------------------------------------- int8 ------------------------


def _manual_int8(w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Reference symmetric quantization: q = clip(round(w / s), -127, 127) as int8."""
    return np.clip(np.rint(w / s), -127, 127).astype(np.int8)


@pytest.mark.parametrize("bit", range(8))
def test_int8_flip_is_twos_complement_times_scale(bit):
    w = _weights(3000, 300 + bit)
    s = np.float32(np.max(np.abs(w)) / np.float32(127))
    q = _manual_int8(w, s)
    assert np.array_equal(B.int8_scale(w), s)
    codes = B.encode(w, "int8", s)
    assert np.array_equal(codes, q.view(np.uint8))
    ref_q = (q.view(np.uint8) ^ np.uint8(1 << bit)).view(np.int8)
    out = B.decode(B.flip_codes(codes, bit), "int8", s)
    assert np.array_equal(out, ref_q.astype(np.float32) * s)
    # the damage is exactly 2^b steps (bit 7: the sign, worth -128)
    dq = ref_q.astype(np.int32) - q.astype(np.int32)
    assert set(np.abs(dq).tolist()) == {2**bit if bit < 7 else 128}


def test_int8_flip_value_sign_bit():
    r = B.flip_value(0.5, "int8", 7)
    s = 0.5 / 127
    assert r.scale == pytest.approx(s)
    assert r.bits_before == "01111111" and r.bits_after == "11111111"  # 127 -> -1
    assert r.value_after == pytest.approx(-1 * s, rel=1e-6)
    r2 = B.flip_value(-0.25, "int8", 0, scale=0.01)  # q = -25 = 0b11100111 -> -26
    assert r2.bits_before == format(np.int8(-25).view(np.uint8), "08b")
    assert r2.value_after == pytest.approx(-0.26, rel=1e-6)


def test_int8_channel_scale_matches_manual():
    w = _weights(6 * 20, 9).reshape(6, 4, 5)
    s = B.int8_scale(w, "channel")
    ref = (np.max(np.abs(w.reshape(6, -1)), axis=1) / np.float32(127)).astype(np.float32)
    assert s.shape == (6, 1, 1)
    assert np.array_equal(s.reshape(-1), ref)
    assert np.array_equal(B.encode(w, "int8", s), _manual_int8(w, s).view(np.uint8))


def test_int8_all_zero_tensor_gets_a_positive_scale():
    assert float(B.int8_scale(np.zeros((3, 3), np.float32))) > 0
    assert np.array_equal(B.round_trip(np.zeros(4), "int8", 1.0), np.zeros(4, np.float32))


# ---------------------------------------------------------------- anatomy & parsing -----------


@pytest.mark.parametrize(
    "fmt, width, mantissa, exponent, integer",
    [
        ("float32", 32, 23, 8, 0),
        ("float16", 16, 10, 5, 0),
        ("bfloat16", 16, 7, 8, 0),
        ("int8", 8, 0, 0, 7),
    ],
)
def test_bit_anatomy(fmt, width, mantissa, exponent, integer):
    fields = B.bit_fields(fmt)
    assert len(fields) == width
    assert fields[-1] == "sign"  # the MSB is the sign in every format
    assert fields.count("mantissa") == mantissa
    assert fields.count("exponent") == exponent
    assert fields.count("integer") == integer
    # index 0 = LSB: mantissa (floats) at the bottom, exponent directly below the sign
    if mantissa:
        assert fields[:mantissa] == ["mantissa"] * mantissa
        assert fields[mantissa : width - 1] == ["exponent"] * exponent
    for b in range(width):
        assert B.bit_field(fmt, b) == fields[b]


def test_float32_anatomy_matches_ieee_masks():
    # IEEE 754 binary32 masks: sign 0x80000000, exponent 0x7F800000, mantissa 0x007FFFFF
    masks = {"sign": 0x80000000, "exponent": 0x7F800000, "mantissa": 0x007FFFFF}
    for b, field in enumerate(B.bit_fields("float32")):
        assert masks[field] & (1 << b)


@pytest.mark.parametrize(
    "spec, fmt, expected",
    [
        ("0-7", "int8", tuple(range(8))),
        ("30,31", "float32", (30, 31)),
        ("sign", "float16", (15,)),
        ("msb", "int8", (7,)),
        ("lsb", "float32", (0,)),
        ("exponent", "float32", tuple(range(23, 31))),
        ("mantissa", "bfloat16", tuple(range(7))),
        ("exponent", "float16", tuple(range(10, 15))),
        ("all", "int8", tuple(range(8))),
        (None, "float16", tuple(range(16))),
        (5, "int8", (5,)),
        ([3, 1, 3], "int8", (1, 3)),
        (" 7 - 5 , 0 ", "int8", (0, 5, 6, 7)),
    ],
)
def test_parse_bits(spec, fmt, expected):
    assert B.parse_bits(spec, fmt) == expected


def test_to_bitstring_is_msb_first():
    assert B.to_bitstring(1, 8) == "00000001"
    assert B.to_bitstring(0x80, 8) == "10000000"
    assert B.to_bitstring(np.uint32(0x3F800000), 32) == "0" + "01111111" + "0" * 23


# ---------------------------------------------------------------- invariants ------------------


@pytest.mark.parametrize("fmt", B.FORMAT_NAMES)
def test_flip_twice_restores_bits(fmt):
    w = _weights(1000, 11)
    s = B.int8_scale(w) if fmt == "int8" else None
    codes = B.encode(w, fmt, s)
    for b in range(B.get_format(fmt).width):
        once = B.flip_codes(codes, b)
        assert np.count_nonzero(once != codes) == codes.size  # every code changed
        assert np.array_equal(B.flip_codes(once, b), codes)


def test_encode_and_flip_never_alias_their_input():
    w = _weights(10, 1)
    keep = w.copy()
    codes = B.encode(w, "float32")
    codes[:] = 0
    B.flip_codes(B.encode(w, "float32"), 3)
    assert np.array_equal(w, keep)


def _reference_flips(w: np.ndarray, fmt: str, bit: int) -> tuple[np.ndarray, np.ndarray]:
    """(stored value, value after flipping ``bit``) from numpy bit views alone, as float64."""
    if fmt == "float32":
        u = w.view(np.uint32)
        return w.astype(np.float64), (u ^ np.uint32(1 << bit)).view(np.float32).astype(np.float64)
    if fmt == "float16":
        h = w.astype(np.float16)
        f = (h.view(np.uint16) ^ np.uint16(1 << bit)).view(np.float16)
        return h.astype(np.float64), f.astype(np.float64)
    if fmt == "bfloat16":  # w is bf16-representable: flip bit + 16 of the float32
        u = w.view(np.uint32)
        return w.astype(np.float64), (u ^ np.uint32(1 << (bit + 16))).view(np.float32).astype(
            np.float64
        )
    s = np.float32(np.max(np.abs(w)) / np.float32(127))
    q = _manual_int8(w, s)
    f = (q.view(np.uint8) ^ np.uint8(1 << bit)).view(np.int8)
    return (q.astype(np.float32) * s).astype(np.float64), (f.astype(np.float32) * s).astype(
        np.float64
    )


@pytest.mark.parametrize("fmt", B.FORMAT_NAMES)
def test_delta_per_bit_matches_numpy_reference(fmt):
    w = _weights(400, 5)
    if fmt == "bfloat16":
        w = (w.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)
    out = B.delta_per_bit(w, fmt)
    width = B.get_format(fmt).width
    assert out.shape == (width,)
    for b in range(width):
        before, after = _reference_flips(w, fmt, b)
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(after - before)
        d[~np.isfinite(d)] = np.inf
        assert out[b] == pytest.approx(np.median(d), rel=1e-12)
    if fmt != "int8":
        mant = B.get_format(fmt).mantissa_bits
        assert out[width - 2] > 1e3 * np.median(np.abs(w))  # the exponent MSB is catastrophic
        assert np.all(np.diff(out[:mant]) > 0)  # each mantissa bit is worth twice the last
    else:
        s = np.max(np.abs(w)) / 127
        assert out[:7] == pytest.approx([2**b * s for b in range(7)], rel=1e-5)


def test_flip_result_to_dict_is_json_safe():
    import json

    d = B.flip_value(1.0, "float16", 14).to_dict()
    json.dumps(d, allow_nan=False)
    assert d["value_after"] == "inf"
    assert B.flip_value(0.0, "float32", 3).relative_change == float("inf")
    z = B.flip_value(0.0, "int8", 3)  # q = 0 -> 8; a zero value gets scale 1
    assert (z.value_after, z.relative_change) == (8.0, float("inf"))


# ---------------------------------------------------------------- several bits at once --------


@pytest.mark.parametrize("fmt", ["float32", "float16", "bfloat16", "int8"])
def test_flip_value_list_xors_every_bit_into_the_code(fmt):
    rng = np.random.default_rng(5)
    width = B.get_format(fmt).width
    for _ in range(40):
        bits = sorted(rng.choice(width, size=int(rng.integers(1, 4)), replace=False).tolist())
        v = float(np.float32(rng.normal(0, 0.5)))
        r = B.flip_value(v, fmt, bits)
        one = B.flip_value(v, fmt, bits[0])  # the single-bit path is the reference for the code
        before = int(one.bits_before, 2)
        mask = sum(1 << b for b in bits)
        assert r.bits_before == one.bits_before
        assert int(r.bits_after, 2) == before ^ mask
        assert r.bit == tuple(bits) and r.to_dict()["bit"] == bits
        assert r.field == "+".join(dict.fromkeys(B.bit_fields(fmt)[b] for b in bits))


def test_flip_value_list_validates_like_a_single_bit():
    with pytest.raises(ValueError, match=r"bit=8.*\[0, 7\]"):
        B.flip_value(0.5, "int8", [3, 8])
    with pytest.raises(ValueError, match=r"scale="):
        B.flip_value(0.5, "int8", [3, 4], 1e-46)  # the UI copy returned 0.0 silently here
    with pytest.raises(ValueError, match="bit="):
        B.flip_value(0.5, "float32", "3")
    assert B.flip_value(0.5, "float32", 3).bit == 3  # one int still works
    assert B.flip_value(0.5, "float32", []).value_after == 0.5  # nothing flipped: stored only


def test_bits_module_imports_no_torch():
    import subprocess
    import sys

    code = "import sys, sar_core.formats.bits; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bfloat16_encode_matches_torch_rounding():
    import torch

    x = np.concatenate([_random_float32(5000, 11), _weights(3000, 12), [np.nan, -np.inf, np.inf]])
    x = x.astype(np.float32)
    ref = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    got = B.encode(x, "bfloat16")
    nan = np.isnan(x)
    assert np.array_equal(got[~nan], ref[~nan])
    assert np.all(np.isnan(B.decode(got[nan], "bfloat16")))


def test_int8_encode_defines_non_finite_values():
    """NaN stores code 0 and +-inf saturate to +-127, with no warning (a diverged model)."""
    import warnings

    from sar_core.formats.bits import decode, encode

    x = np.array([np.nan, np.inf, -np.inf, 0.5], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codes = encode(x, "int8", 0.5 / 127)
    assert codes.view(np.int8).tolist() == [0, 127, -127, 127]
    assert decode(codes, "int8", 0.5 / 127)[0] == 0.0


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
@pytest.mark.parametrize("shape", [(5,), (4, 6), (3, 2, 2, 2), ()])
def test_int8_scale_of_a_torch_tensor_equals_the_numpy_scale_and_a_python_reference(
    granularity, shape
):
    """One int8 scale for numpy and torch: both equal float32(max|w|) / 127 rounded to float32."""
    import torch

    rng = np.random.default_rng(len(shape))
    w = (rng.normal(0, 0.7, size=shape) * rng.choice([1e-3, 1, 40], size=shape)).astype(np.float32)
    if len(shape) > 1:
        w[1] = 0.0  # an all-zero channel gets 1.0
    got_np = B.int8_scale(w, granularity)
    t = torch.tensor(w, requires_grad=True)
    got_t = B.int8_scale(t, granularity)
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float32
    assert np.array_equal(got_t.detach().numpy(), got_np)
    rows = [w] if granularity == "tensor" or w.ndim <= 1 else list(w)  # channels: axis 0 (2-D up)
    ref = [np.float32(max(abs(float(v)) for v in np.ravel(r)) / 127.0) for r in rows]
    ref = [v if v > 0 else np.float32(1.0) for v in ref]  # float64 division, rounded once
    assert np.array_equal(np.ravel(got_np), np.asarray(ref, dtype=np.float32))
    got_t.sum().backward()  # differentiable in w: d s / d max|w| = 1/127 per nonzero range
    nonzero = sum(1 for r in rows if np.abs(r).max() > 0)
    assert float(t.grad.abs().sum()) == pytest.approx(nonzero / 127, rel=1e-6)


def test_format_names_are_defined_once():
    from sar_core import names

    assert B.FORMAT_NAMES is names.FORMAT_NAMES
    assert tuple(B.FORMATS) == names.FORMAT_NAMES
