"""Fault models, pattern sampling (binomial counts, uniform positions) and functional application."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from sar_core.data.models import ModelSpec, build_model
from sar_core.faults.injector import Injector
from sar_core.faults.model import (
    FaultModel,
    FaultPattern,
    catastrophic_bits,
    count_sites,
    eligible_parameters,
    parameter_shapes,
    sample_pattern,
)
from sar_core.formats import bits as B

SHAPES = {"fc1.weight": (6, 5), "fc1.bias": (6,), "out.weight": (3, 6), "out.bias": (3,)}


def _sites(p: FaultPattern) -> set[tuple[str, int, int]]:
    return {(n, int(i), int(b)) for n, (idx, bits) in p.sites.items() for i, b in zip(idx, bits)}


def _site_index(shapes, fm) -> dict[tuple[str, int, int], int]:
    """Every eligible (name, flat index, bit) site, numbered."""
    keys = [
        (n, i, b)
        for n in eligible_parameters(shapes, fm)
        for i in range(int(np.prod(shapes[n])))
        for b in fm.bits
    ]
    return {k: j for j, k in enumerate(keys)}


# ---------------------------------------------------------------- FaultModel ------------------


def test_fault_model_normalises_bits_and_round_trips():
    fm = FaultModel(format="float32", bits="exponent", ber=0.01, layers=["fc1"])
    assert fm.bits == tuple(range(23, 31)) and fm.layers == ("fc1",)
    assert FaultModel.from_dict(fm.to_dict()) == fm
    assert fm.with_rate(count=3).count == 3 and fm.with_rate(count=3).ber is None
    assert FaultModel(format="int8", bits=None, count=2).bits == tuple(range(8))
    assert catastrophic_bits("float32") == (30,) and catastrophic_bits("int8") == ()


def test_count_sites_is_elements_times_bits():
    fm = FaultModel(format="int8", bits="0-3", ber=0.1)
    assert count_sites(SHAPES, fm) == (30 + 18) * 4
    assert count_sites(SHAPES, FaultModel(format="int8", ber=0.1, include_bias=True)) == 57 * 8
    fm_l = FaultModel(format="float16", ber=0.1, layers=("out",), include_bias=True)
    assert count_sites(SHAPES, fm_l) == 21 * 16


# ---------------------------------------------------------------- sampling statistics ---------


def test_ber_flip_count_is_binomial_in_mean_and_variance():
    fm = FaultModel(format="int8", ber=0.02)
    n_sites = count_sites(SHAPES, fm)  # 48 elements x 8 bits = 384
    p, trials = 0.02, 4000
    rng = np.random.default_rng(123)
    counts = np.array([sample_pattern(SHAPES, fm, rng).n_flips for _ in range(trials)])
    mean, var = n_sites * p, n_sites * p * (1 - p)
    # mean: z-test; variance: chi-square test of the sample variance
    z = (counts.mean() - mean) / np.sqrt(var / trials)
    assert abs(z) < 4
    chi2 = (trials - 1) * counts.var(ddof=1) / var
    assert stats.chi2.sf(chi2, trials - 1) > 1e-4 and stats.chi2.cdf(chi2, trials - 1) > 1e-4
    # and the whole distribution: chi-square goodness of fit against Binomial(N, p)
    ks = np.arange(0, 20)
    observed = np.array([np.sum(counts == k) for k in ks[:-1]] + [np.sum(counts >= ks[-1])])
    pmf = stats.binom.pmf(ks[:-1], n_sites, p)
    expected = trials * np.append(pmf, 1 - pmf.sum())
    assert stats.chisquare(observed, expected).pvalue > 1e-4


def test_every_pattern_has_distinct_sites_matching_n_flips():
    fm = FaultModel(format="float16", ber=0.05, include_bias=True)
    for seed in range(50):
        p = sample_pattern(SHAPES, fm, seed)
        assert len(_sites(p)) == p.n_flips
        assert p.n_sites == count_sites(SHAPES, fm)


@pytest.mark.parametrize("k", [1, 7, 100, 384])
def test_count_mode_gives_exactly_k_distinct_sites(k):
    fm = FaultModel(format="int8", count=k)
    for seed in range(20):
        p = sample_pattern(SHAPES, fm, seed)
        sites = _sites(p)
        assert p.n_flips == k and len(sites) == k
        assert all(b in fm.bits for _, _, b in sites)
        assert all(0 <= i < int(np.prod(SHAPES[n])) for n, i, _ in sites)


def test_positions_are_uniform_over_eligible_sites():
    shapes = {"a.weight": (3, 4), "b.weight": (2, 5), "b.bias": (2,)}
    fm = FaultModel(format="float32", bits=(0, 3, 31), count=5)
    index = _site_index(shapes, fm)
    assert len(index) == (12 + 10) * 3  # biases are not eligible by default
    hits = np.zeros(len(index))
    rng = np.random.default_rng(2024)
    trials = 3000
    for _ in range(trials):
        for site in _sites(sample_pattern(shapes, fm, rng)):
            hits[index[site]] += 1
    assert hits.sum() == trials * 5
    assert stats.chisquare(hits).pvalue > 1e-3  # uniform over the 66 sites


def test_ber_positions_are_uniform_over_bits_and_parameters():
    fm = FaultModel(format="int8", ber=0.05, include_bias=True)
    index = _site_index(SHAPES, fm)
    hits = np.zeros(len(index))
    rng = np.random.default_rng(7)
    for _ in range(2000):
        for site in _sites(sample_pattern(SHAPES, fm, rng)):
            hits[index[site]] += 1
    assert stats.chisquare(hits).pvalue > 1e-3


def test_pattern_depends_only_on_shapes_and_seed():
    spec = ModelSpec(arch="mlp", n_features=8, n_classes=3, widths=(6,))
    m1, m2 = build_model(spec, seed=1), build_model(spec, seed=2)
    assert not torch.equal(m1.fc1.weight, m2.fc1.weight)  # different weights, same shapes
    fm = FaultModel(format="int8", ber=0.05)
    p1 = Injector(m1, fm).sample(np.random.default_rng([5, 0]))
    p2 = Injector(m2, fm).sample(np.random.default_rng([5, 0]))
    p3 = sample_pattern(parameter_shapes(m1), fm, np.random.default_rng([5, 0]))
    assert p1.n_flips > 0
    assert _sites(p1) == _sites(p2) == _sites(p3)
    assert _sites(p1) != _sites(sample_pattern(parameter_shapes(m1), fm, 6))


def test_layer_and_bias_selection():
    fm = FaultModel(format="float32", ber=0.2, layers=("out",))
    assert eligible_parameters(SHAPES, fm) == ["out.weight"]
    fm_b = FaultModel(format="float32", ber=0.2, layers=("out",), include_bias=True)
    assert eligible_parameters(SHAPES, fm_b) == ["out.weight", "out.bias"]
    all_w = eligible_parameters(SHAPES, FaultModel(format="float32", ber=0.2))
    assert all_w == ["fc1.weight", "out.weight"]
    for seed in range(30):
        assert set(sample_pattern(SHAPES, fm, seed).sites) <= {"out.weight"}
        assert set(sample_pattern(SHAPES, fm_b, seed).sites) <= {"out.weight", "out.bias"}
    seen = set()
    for seed in range(30):
        seen |= set(sample_pattern(SHAPES, fm_b, seed).sites)
    assert seen == {"out.weight", "out.bias"}


def test_cnn_layers_are_selectable():
    spec = ModelSpec(arch="cnn", n_features=64, n_classes=10, widths=(4, 8), image_shape=(1, 8, 8))
    shapes = parameter_shapes(build_model(spec, 0))
    fm = FaultModel(format="int8", count=10, layers=("conv2",))
    assert eligible_parameters(shapes, fm) == ["conv2.weight"]
    assert count_sites(shapes, fm) == 8 * 4 * 3 * 3 * 8


# ---------------------------------------------------------------- application -----------------


def _model():
    spec = ModelSpec(arch="mlp", n_features=5, n_classes=3, widths=(6,))
    return build_model(spec, seed=3)


@pytest.mark.parametrize("fmt", ["float32", "float16", "bfloat16"])
def test_apply_equals_manual_numpy_flip_floats(fmt):
    model = _model()
    fm = FaultModel(format=fmt, ber=0.1, include_bias=True)
    inj = Injector(model, fm)
    pattern = inj.sample(11)
    assert pattern.n_flips > 5
    faulty = inj.apply(pattern)
    for name, p in model.named_parameters():
        w = p.detach().numpy().astype(np.float32).reshape(-1)
        if fmt == "float32":
            u = w.view(np.uint32).copy()
        elif fmt == "float16":
            u = w.astype(np.float16).view(np.uint16).copy()
        else:  # bfloat16: round to nearest even by torch, then the top half of the float32
            u = torch.from_numpy(w).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
            u = u.copy()
        if name in pattern.sites:
            idx, bits = pattern.sites[name]
            for i, b in zip(idx, bits):
                u[i] ^= u.dtype.type(1 << int(b))
        if fmt == "float32":
            ref = u.view(np.float32)
        elif fmt == "float16":
            ref = u.view(np.float16).astype(np.float32)
        else:
            ref = (u.astype(np.uint32) << 16).view(np.float32)
        got = faulty[name].numpy().reshape(-1)
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32)), name


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_apply_equals_manual_numpy_flip_int8(granularity):
    model = _model()
    fm = FaultModel(format="int8", count=20, granularity=granularity)
    inj = Injector(model, fm)
    pattern = inj.sample(4)
    faulty = inj.apply(pattern)
    for name, p in model.named_parameters():
        w = p.detach().numpy()
        if w.ndim < 2:  # biases are not eligible: kept as float32
            assert torch.equal(faulty[name], p.detach())
            continue
        if granularity == "tensor":
            s = np.float32(np.max(np.abs(w)) / np.float32(127))
        else:
            s = (np.max(np.abs(w), axis=1) / np.float32(127)).astype(np.float32)[:, None]
        q = np.clip(np.rint(w / s), -127, 127).astype(np.int8)
        deployed = q.astype(np.float32) * s
        assert np.array_equal(inj.deployed()[name].numpy(), deployed)
        u = q.view(np.uint8).reshape(-1).copy()
        idx, bits = pattern.sites.get(name, ([], []))
        for i, b in zip(idx, bits):
            u[i] ^= np.uint8(1 << int(b))
        ref = u.view(np.int8).reshape(q.shape).astype(np.float32) * s
        assert np.array_equal(faulty[name].numpy(), ref)


def _numpy_faulty(model, pattern, fm) -> dict[str, np.ndarray]:
    """float32 faulty weights from numpy bit views: per word, the union of its sites' bursts is
    flipped (each bit once) or stuck."""
    out = {}
    for name, p in model.named_parameters():
        u = p.detach().numpy().reshape(-1).view(np.uint32).copy()
        idx, bits = pattern.sites.get(name, ([], []))
        masks: dict[int, int] = {}
        for i, b in zip(idx.tolist() if len(idx) else [], bits.tolist() if len(bits) else []):
            masks[i] = masks.get(i, 0) | sum(1 << bit for bit in range(b, b + fm.burst))
        for i, m in masks.items():
            m = np.uint32(m)
            if fm.kind == "flip":
                u[i] ^= m
            elif fm.kind == "stuck-at-1":
                u[i] |= m
            else:
                u[i] &= ~m
        out[name] = u.view(np.float32)
    return out


@pytest.mark.parametrize(
    "fm",
    [
        FaultModel(ber=0.02, include_bias=True),
        FaultModel(ber=0.05, burst=3, bits="exponent"),  # bursts on one word may overlap
        FaultModel(count=40, kind="stuck-at-1"),
        FaultModel(ber=0.03, kind="stuck-at-0", include_bias=True),
    ],
)
def test_chunk_delta_equals_per_trial_numpy_reference(fm):
    """A chunk of trials encoded at once: each trial's changed values and changed-bit count equal
    an independent numpy loop over that trial's sites; select() keeps and renumbers trials."""
    model = _model()
    inj = Injector(model, fm)
    pats = [inj.sample(np.random.default_rng([7, t])) for t in range(12)] + [
        FaultPattern(sites={}, n_flips=0, n_sites=inj.n_sites)  # an empty trial in the chunk
    ]
    chunk = inj.chunk_delta(pats)
    deployed = {n: p.detach().numpy().reshape(-1) for n, p in model.named_parameters()}
    for k, pat in enumerate(pats):
        ref = _numpy_faulty(model, pat, fm)
        changed = sum(
            int(np.bitwise_count(ref[n].view(np.uint32) ^ deployed[n].view(np.uint32)).sum())
            for n in ref
        )
        d = chunk.trial(k)
        assert d.n_changed == changed == int(chunk.n_changed[k])
        for name in ref:
            diff = np.flatnonzero(ref[name].view(np.uint32) != deployed[name].view(np.uint32))
            idx, vals = d.values.get(name, (torch.zeros(0, dtype=torch.int64), torch.zeros(0)))
            assert np.array_equal(idx.numpy(), diff), (k, name)  # changed entries, sorted
            assert np.array_equal(vals.numpy().view(np.uint32), ref[name][diff].view(np.uint32))
    sub = chunk.select([1, 4, 12])
    assert sub.n_changed.tolist() == [chunk.n_changed[i] for i in (1, 4, 12)]
    for j, k in enumerate((1, 4, 12)):
        a, b = sub.trial(j).values, chunk.trial(k).values
        assert a.keys() == b.keys()
        assert all(torch.equal(a[n][0], b[n][0]) and torch.equal(a[n][1], b[n][1]) for n in a)


def test_apply_twice_the_same_pattern_is_the_same_and_deployed_is_unflipped():
    model = _model()
    inj = Injector(model, FaultModel(format="float32", count=3))
    pattern = inj.sample(0)
    a, b = inj.apply(pattern), inj.apply(pattern)
    assert all(torch.equal(a[n], b[n]) for n in a)
    dep = inj.deployed()
    for n, p in model.named_parameters():
        assert torch.equal(dep[n], p.detach())  # float32 storage is exact
    pert = inj.perturbation(pattern)
    changed = sum(int((pert[n] != 0).sum()) for n in pert)
    assert changed == 3  # three distinct sites -> three changed elements at most (here: distinct)


def test_perturbation_is_faulty_minus_deployed():
    model = _model()
    inj = Injector(model, FaultModel(format="int8", ber=0.05))
    pattern = inj.sample(1)
    faulty, dep, pert = inj.apply(pattern), inj.deployed(), inj.perturbation(pattern)
    for n in pert:
        assert torch.equal(pert[n], faulty[n] - dep[n])


def test_empty_pattern_applies_as_deployed():
    model = _model()
    inj = Injector(model, FaultModel(format="int8", ber=1e-9))
    pattern = inj.sample(0)
    assert pattern.n_flips == 0 and pattern.sites == {}
    faulty = inj.apply(pattern)
    assert all(torch.equal(faulty[n], t) for n, t in inj.deployed().items())


def test_pattern_for_another_parameter_is_rejected():
    model = _model()
    inj = Injector(model, FaultModel(format="int8", ber=0.1, layers=("out",)))
    bad = FaultPattern(sites={"fc1.weight": (np.array([0]), np.array([1]))}, n_flips=1, n_sites=1)
    with pytest.raises(ValueError, match="fc1.weight"):
        inj.apply(bad)


def test_ber_one_flips_every_eligible_bit():
    model = _model()
    fm = FaultModel(format="int8", ber=1.0)
    inj = Injector(model, fm)
    p = inj.sample(0)
    assert p.n_flips == inj.n_sites
    faulty = inj.apply(p)
    for n in inj.eligible:
        w = model.get_parameter(n).detach().numpy()
        s = np.float32(np.max(np.abs(w)) / np.float32(127))
        q = np.clip(np.rint(w / s), -127, 127).astype(np.int8)
        assert np.array_equal(faulty[n].numpy(), (~q).astype(np.float32) * s)  # every bit: NOT


def test_bit_codes_roundtrip_via_module():
    # the format used by the injector is the one documented in bits (bit 0 = LSB)
    w = np.array([1.0], np.float32)
    assert B.decode(B.flip_codes(B.encode(w, "float32"), 0), "float32")[0] == np.nextafter(
        np.float32(1.0), np.float32(2.0)
    )
