"""Determinism: flips are involutions, patterns and campaigns are functions of their seed, and no
analysis touches a global random number generator.
"""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sar_core.analysis.campaign import compare, iter_compare, run_campaign
from sar_core.data.models import ModelSpec, build_model
from sar_core.faults.model import FaultModel, count_sites, sample_pattern
from sar_core.formats import bits as B
from sar_core.training.loop import TrainConfig, spec_for, train

FAST = settings(max_examples=100, deadline=None)
SLOW = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def format_and_bit(draw):
    fmt = draw(st.sampled_from(B.FORMAT_NAMES))
    return fmt, draw(st.integers(0, B.get_format(fmt).width - 1))


@FAST
@given(
    fb=format_and_bit(),
    raw=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20),
)
def test_flipping_twice_restores_every_code(fb, raw):
    """Any stored code (NaN and Inf patterns included) comes back bit-exactly."""
    fmt, bit = fb
    width = B.get_format(fmt).width
    codes = np.array([r % 2**width for r in raw], dtype=np.uint64).astype(B._UINT[width])
    twice = B.flip_codes(B.flip_codes(codes, bit), bit)
    assert twice.dtype == codes.dtype and np.array_equal(twice, codes)
    s = np.float32(0.01) if fmt == "int8" else None
    a = B.decode(codes, fmt, s)
    b = B.decode(twice, fmt, s)
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


@FAST
@given(fb=format_and_bit(), value=st.floats(-1e4, 1e4, allow_nan=False, width=32))
def test_flip_value_twice_restores_the_stored_value(fb, value):
    fmt, bit = fb
    scale = 0.05 if fmt == "int8" else None
    once = B.flip_value(value, fmt, bit, scale)
    assert once.bits_before != once.bits_after
    # int8 stores q in [-127, 127] (symmetric); a flip can reach the code -128, which no value
    # encodes to, so only the codes can go back from there (test_flipping_twice_restores_every_code)
    unreachable = fmt == "int8" and once.bits_after == "10000000"
    if np.isfinite(once.value_after) and not unreachable:
        back = B.flip_value(once.value_after, fmt, bit, scale)
        assert back.bits_after == once.bits_before
        assert back.value_after == once.value_before


@st.composite
def shapes_and_fault_model(draw):
    n = draw(st.integers(1, 3))
    shapes = {}
    for i in range(n):
        shapes[f"l{i}.weight"] = tuple(draw(st.lists(st.integers(1, 6), min_size=2, max_size=4)))
        shapes[f"l{i}.bias"] = (draw(st.integers(1, 6)),)
    fmt = draw(st.sampled_from(B.FORMAT_NAMES))
    bits = draw(st.sampled_from(["all", "sign", "lsb", "msb"]))
    include_bias = draw(st.booleans())
    if draw(st.booleans()):
        fm = FaultModel(
            format=fmt, bits=bits, ber=draw(st.floats(1e-4, 1.0)), include_bias=include_bias
        )
    else:
        fm = FaultModel(
            format=fmt, bits=bits, count=draw(st.integers(1, 3)), include_bias=include_bias
        )
    return shapes, fm


def _as_lists(p):
    return p.n_flips, p.n_sites, {k: (i.tolist(), b.tolist()) for k, (i, b) in p.sites.items()}


@FAST
@given(sf=shapes_and_fault_model(), seed=st.integers(0, 2**63 - 1))
def test_pattern_is_a_function_of_shapes_fault_model_and_seed(sf, seed):
    shapes, fm = sf
    assume(fm.count is None or fm.count <= count_sites(shapes, fm))
    a = sample_pattern(shapes, fm, seed)
    b = sample_pattern(
        dict(shapes), FaultModel.from_dict(fm.to_dict()), np.random.default_rng(seed)
    )
    assert _as_lists(a) == _as_lists(b)
    for name, (idx, bits) in a.sites.items():
        assert np.all(idx < np.prod(shapes[name])) and set(bits.tolist()) <= set(fm.bits)


@pytest.fixture(scope="module")
def small_models():
    spec = ModelSpec(arch="mlp", n_features=64, n_classes=10, widths=(12,))
    return build_model(spec, 0), build_model(spec, 1)


@SLOW
@given(seed=st.integers(0, 2**32), fmt=st.sampled_from(B.FORMAT_NAMES))
def test_campaign_with_the_same_seed_is_identical(small_models, digits_small, seed, fmt):
    X, y = digits_small
    fm = FaultModel(format=fmt, ber=0.01)
    a = compare(list(small_models), X, y, fm, trials=4, seed=seed)
    b = compare(list(small_models), X, y, fm, trials=4, seed=seed)
    for ra, rb in zip(a["results"], b["results"]):
        assert (ra.accuracy, ra.flips) == (rb.accuracy, rb.flips)
        assert np.array_equal(ra.loss, rb.loss)  # inf == inf; no NaN losses are recorded
    assert a["paired_difference"] == b["paired_difference"]


def test_trial_t_does_not_depend_on_the_number_of_trials(small_models, digits_small):
    """Streaming: the first k trials of a longer campaign are the k trials of a shorter one."""
    X, y = digits_small
    fm = FaultModel(format="int8", ber=0.02)
    short = run_campaign(small_models[0], X, y, fm, trials=5, seed=3)
    long = run_campaign(small_models[0], X, y, fm, trials=12, seed=3)
    assert long.accuracy[:5] == short.accuracy and long.flips[:5] == short.flips
    other = run_campaign(small_models[0], X, y, fm, trials=12, seed=4)
    assert other.flips != long.flips


def test_iter_compare_prefix_equals_final(small_models, digits_small):
    X, y = digits_small
    steps = [
        [list(r.accuracy) for r in res]
        for res in iter_compare(
            list(small_models), X, y, FaultModel(format="float16", count=40), trials=3
        )
    ]
    assert steps[0][0] == steps[-1][0][:1] and steps[1][1] == steps[-1][1][:2]


def _global_rng_state():
    return (
        torch.get_rng_state().clone(),
        np.random.get_state()[1].copy(),
        random.getstate(),
    )


def test_no_global_random_state_is_used(digits, digits_small, small_models):
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    before = _global_rng_state()
    X, y = digits_small
    run_campaign(small_models[0], X, y, FaultModel(format="int8", ber=0.01), trials=3)
    build_model(
        ModelSpec(arch="cnn", n_features=64, n_classes=10, widths=(2,), image_shape=(1, 8, 8)), 5
    )
    small = replace(digits, X_train=digits.X_train[:128], y_train=digits.y_train[:128])
    for method in ("sgd", "sar", "fat"):
        train(spec_for(small, "mlp", (8,)), small, TrainConfig(method=method, epochs=1))
    try:
        from sar_core.analysis import landscape as L
        from sar_core.analysis import sharpness as S
    except ImportError:  # pragma: no cover - analysis modules not present
        L = S = None
    if L is not None:
        L.slice_1d(small_models[0], X, y, L.random_direction(small_models[0], 0), steps=3)
        S.hessian_trace(small_models[0], X, y, samples=2)
        S.average_sharpness(small_models[0], X, y, samples=2)
    after = _global_rng_state()
    assert torch.equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])
    assert before[2] == after[2]


def test_landscape_directions_are_seeded(small_models):
    from sar_core.analysis import landscape as L

    a = L.random_direction(small_models[0], 7)
    b = L.random_direction(small_models[0], 7)
    assert all(torch.equal(a[k], b[k]) for k in a)
