"""Property tests (hypothesis) of number formats, flips, statistics and serialisation."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from conftest import ROOT
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sar_core.analysis.campaign import summarize
from sar_core.data.datasets import load_csv
from sar_core.data.io import dumps, load_checkpoint, rows_to_csv
from sar_core.faults.model import FaultModel, count_sites, sample_pattern
from sar_core.formats import bits as B

PROPS = settings(max_examples=100, deadline=None)
QUICK = settings(max_examples=40, deadline=None)  # slow generators (nested JSON, CSV rows)
finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def format_and_bit(draw):
    fmt = draw(st.sampled_from(B.FORMAT_NAMES))
    return fmt, draw(st.integers(0, B.get_format(fmt).width - 1))


@PROPS
@given(fb=format_and_bit(), value=st.floats(-1e4, 1e4, allow_nan=False, width=32))
def test_a_flip_changes_exactly_the_named_bit(fb, value):
    fmt, bit = fb
    if fmt == "int8" and value != 0 and not np.float32(abs(value) / 127.0) > 0:
        # |value| / 127 underflows float32 (a subnormal below ~1.8e-43): no int8 scale exists,
        # and the library says so instead of silently using scale 1
        with pytest.raises(ValueError, match="Invalid scale="):
            B.flip_value(value, fmt, bit)
        return
    r = B.flip_value(value, fmt, bit)
    width = B.get_format(fmt).width
    assert len(r.bits_before) == len(r.bits_after) == width
    diff = [i for i, (a, b) in enumerate(zip(r.bits_before, r.bits_after)) if a != b]
    assert diff == [width - 1 - bit]  # strings are MSB first
    assert r.field == B.bit_fields(fmt)[bit]


@PROPS
@given(value=finite32)
def test_float32_round_trip_is_exact(value):
    x = np.array([value], np.float32)
    assert np.array_equal(B.round_trip(x, "float32").view(np.uint32), x.view(np.uint32))


@PROPS
@given(value=finite32)
def test_sign_flip_negates_exactly(value):
    for fmt in ("float32", "float16", "bfloat16"):
        r = B.flip_value(value, fmt, B.get_format(fmt).width - 1)
        assert r.value_after == -r.value_before or (math.isnan(r.value_after))


@PROPS
@given(
    value=st.floats(2**-100, 2**100, width=32), sign=st.sampled_from([1, -1]), k=st.integers(0, 22)
)
def test_float32_mantissa_bit_k_moves_by_two_to_the_k_minus_23_ulps_of_the_exponent(value, sign, k):
    """Flipping mantissa bit k of w = m 2^e (1 <= m < 2) changes |w| by exactly 2^(k - 23) 2^e."""
    w = np.float32(sign * value)
    r = B.flip_value(float(w), "float32", k)
    e = math.frexp(abs(float(w)))[1] - 1  # w = m 2^e with m in [1, 2)
    assert abs(r.value_after - r.value_before) == 2.0 ** (k - 23 + e)


@PROPS
@given(value=st.floats(2**-20, 2**20, width=32), sign=st.sampled_from([1, -1]), j=st.integers(0, 7))
def test_float32_exponent_bit_scales_by_a_power_of_two(value, sign, j):
    """Flipping exponent bit 23 + j multiplies or divides w by 2^(2^j) when the result is normal."""
    r = B.flip_value(float(np.float32(sign * value)), "float32", 23 + j)
    assume(np.isfinite(r.value_after) and abs(r.value_after) >= np.finfo(np.float32).tiny)
    ratio = r.value_after / r.value_before
    assert ratio in (2.0 ** (2**j), 2.0 ** -(2**j))


@PROPS
@given(
    w=st.lists(st.floats(-3, 3, width=32), min_size=1, max_size=50),
    bit=st.integers(0, 7),
)
def test_int8_quantization_error_and_flip_size(w, bit):
    a = np.array(w, np.float32)
    s = B.int8_scale(a)
    rt = B.round_trip(a, "int8", s)
    assert np.all(np.abs(rt - a) <= s / 2 * (1 + 1e-5) + 1e-12)  # round to nearest step
    codes = B.encode(a, "int8", s)
    dq = codes.view(np.int8).astype(int) - B.flip_codes(codes, bit).view(np.int8).astype(int)
    assert set(np.abs(dq).tolist()) == {2**bit if bit < 7 else 128}


@PROPS
@given(
    spec=st.lists(st.integers(0, 7), min_size=1, max_size=8).map(lambda xs: ",".join(map(str, xs)))
)
def test_parse_bits_is_sorted_unique_and_in_range(spec):
    out = B.parse_bits(spec, "int8")
    assert list(out) == sorted(set(int(x) for x in spec.split(",")))


@PROPS
@given(
    dims=st.lists(st.integers(1, 5), min_size=2, max_size=3),
    k=st.integers(1, 60),
    seed=st.integers(0, 10**9),
)
def test_count_patterns_have_k_distinct_sites_when_possible(dims, k, seed):
    shapes = {"a.weight": tuple(dims)}
    fm = FaultModel(format="int8", bits="0-1", count=k)
    n = count_sites(shapes, fm)
    assume(k <= n)
    p = sample_pattern(shapes, fm, seed)
    idx, bits = p.sites["a.weight"]
    assert len(set(zip(idx.tolist(), bits.tolist()))) == k == p.n_flips


@QUICK
@given(
    fmt=st.sampled_from(B.FORMAT_NAMES),
    ber=st.one_of(st.none(), st.floats(1e-9, 1.0)),
    layers=st.one_of(
        st.none(), st.lists(st.sampled_from(["fc1", "fc2", "out"]), min_size=1, unique=True)
    ),
    include_bias=st.booleans(),
)
def test_fault_model_dict_round_trip(fmt, ber, layers, include_bias):
    fm = FaultModel(
        format=fmt,
        bits="sign",
        ber=ber,
        count=None if ber is not None else 3,
        layers=tuple(layers) if layers else None,
        include_bias=include_bias,
    )
    d = json.loads(dumps(fm.to_dict()))
    assert FaultModel.from_dict(d) == fm


@QUICK
@given(v=st.lists(st.floats(0, 1), min_size=2, max_size=100), seed=st.integers(0, 100))
def test_summary_is_consistent_and_order_free(v, seed):
    s = summarize(v)
    lo, hi = s["ci95"]
    assert lo <= s["mean"] + 1e-12 and s["mean"] <= hi + 1e-12
    assert min(v) - 1e-12 <= s["mean"] <= max(v) + 1e-12
    p = summarize(list(np.random.default_rng(seed).permutation(v)))
    assert math.isclose(p["mean"], s["mean"], rel_tol=1e-12, abs_tol=1e-15)
    assert math.isclose(p["std"], s["std"], rel_tol=1e-9, abs_tol=1e-12)


json_values = st.recursive(
    st.one_of(
        st.floats(), st.integers(-(10**6), 10**6), st.text(max_size=5), st.booleans(), st.none()
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@QUICK
@given(obj=json_values)
def test_dumps_always_gives_strict_json(obj):
    text = dumps({"x": obj})
    json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert dumps({"x": obj}) == text


@QUICK
@given(
    rows=st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c"]),
            st.one_of(st.floats(), st.integers(), st.lists(st.floats(), max_size=3)),
            min_size=1,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_rows_to_csv_never_crashes_on_non_finite_values(rows):
    text = rows_to_csv(rows)
    header = text.splitlines()[0].split(",")
    assert set(header) == set().union(*rows)
    assert len(text.splitlines()) >= len(rows) + 1


# ---------------------------------------------------------------- fuzzing the upload paths -----

_GOOD = (ROOT / "assets" / "digits_cnn_sgd.safetensors").read_bytes()
_N = struct.unpack("<Q", _GOOD[:8])[0]
_HEADER = json.loads(_GOOD[8 : 8 + _N])
_PATHS = [("__metadata__",), ("__metadata__", "sar_lab")]
_PATHS += [
    (k, f) for k in _HEADER if k != "__metadata__" for f in ("dtype", "shape", "data_offsets")
]
_META_KEYS = ["schema", "method", "config", "dataset", "seed", "metrics", "spec"]
_SPEC_KEYS = ["arch", "n_features", "n_classes", "widths", "activation", "image_shape"]


def _only_clean_errors(call) -> None:
    try:
        call()
    except ValueError as e:
        assert str(e).startswith("Invalid "), str(e)


@QUICK
@given(
    where=st.sampled_from(
        _PATHS + [("meta", k) for k in _META_KEYS] + [("spec", k) for k in _SPEC_KEYS]
    ),
    value=json_values,
)
def test_a_mutated_checkpoint_is_loaded_or_cleanly_rejected(where, value):
    """Any one field of the header or metadata replaced by any JSON value: ValueError or a model."""
    header = json.loads(json.dumps(_HEADER))
    meta = json.loads(header["__metadata__"]["sar_lab"])
    if where[0] == "meta":
        meta[where[1]] = value
    elif where[0] == "spec":
        meta["spec"][where[1]] = value
    header["__metadata__"]["sar_lab"] = json.dumps(meta)
    if where[0] not in ("meta", "spec"):
        target = header
        for key in where[:-1]:
            target = target[key]
        target[where[-1]] = value
    raw = json.dumps(header, allow_nan=True).encode()
    _only_clean_errors(lambda: load_checkpoint(struct.pack("<Q", len(raw)) + raw + _GOOD[8 + _N :]))


@QUICK
@given(
    head=st.lists(st.sampled_from(["a", "b", "label", "", "é", '"'])),
    cells=st.lists(
        st.lists(
            st.sampled_from(["1", "0", "2.5", "", "nan", "inf", "x", '"', "1e400", "-3"]),
            max_size=5,
        ),
        max_size=30,
    ),
)
def test_any_csv_is_loaded_or_cleanly_rejected(head, cells):
    text = ",".join(head) + "\n" + "".join(",".join(row) + "\n" for row in cells)
    _only_clean_errors(lambda: load_csv(text.encode()))
    _only_clean_errors(lambda: load_csv(text.encode(), label_column="a"))
