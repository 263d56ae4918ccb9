"""Chunk draws (sar_core.faults.draws) equal numpy's per-trial draws, element for element.

The reference is numpy itself: ``np.random.default_rng([seed, t])``, a binomial (or a count),
then ``choice(n_sites, n, replace=False)``, one generator per trial."""

import numpy as np
import pytest
import torch
from conftest import assert_same_draws, numpy_trial_draws
from torch import nn

from sar_core.engine.montecarlo import MonteCarlo
from sar_core.faults import draws as D
from sar_core.faults.model import FaultModel, SiteSpace


@pytest.mark.parametrize(
    "seed,n_sites,ber,count",
    [
        (0, 835_904, 1e-4, None),  # the MLP benchmark: ~84 sites a trial, BTPE binomial
        (5, 835_904, 1e-7, None),  # mostly empty trials
        (11, 208_976, 1e-3, None),  # ~209 sites a trial
        (3, 5_000, 1e-2, None),  # small space: Floyd collisions are common
        (9, 100, None, 30),  # tiny space, a count: collisions in most trials
        (2, 20_000, 0.05, None),  # 1000 of 20000 sites: choice's tail-shuffle branch
        (4, 64, None, 64),  # every site
        (8, 300_000, None, 1),
        (2**32 - 1, 50_000, 1e-3, None),  # the largest one-word seed
        (2**32, 50_000, 1e-3, None),  # a two-word seed: numpy's own path
    ],
)
def test_chunk_equals_numpy(seed, n_sites, ber, count):
    trials = list(range(0, 120)) + [7, 3, 10**6, 2**32 - 1, 2**32 + 5]  # any order, repeats
    assert_same_draws(
        D.chunk_site_draws(seed, trials, n_sites, ber=ber, count=count),
        numpy_trial_draws(seed, trials, n_sites, ber, count),
    )


def test_lemire_rejections_take_numpy_path():
    # n_sites just above 2**31: 2**32 mod (bound + 1) is ~2**31, so about half of the 32-bit
    # words are rejected by numpy; the chunk must still equal numpy (those trials fall back)
    n_sites = 2**31 + 5
    trials = range(60)
    want = numpy_trial_draws(1, trials, n_sites, count=3)
    assert_same_draws(D.chunk_site_draws(1, trials, n_sites, count=3), want)
    # and the rejection detector agrees with a scalar re-implementation of numpy's rule
    words = np.random.default_rng(0).integers(0, 2**32, 4000, dtype=np.uint64).astype(np.uint32)
    bound = np.full(words.shape, n_sites - 1, dtype=np.int64)
    draw, reject = D._lemire(words, bound)
    for w, d, r in zip(words.tolist(), draw.tolist(), reject.tolist()):
        m = w * n_sites
        assert d == m >> 32
        assert r == ((m & 0xFFFFFFFF) < (2**32 % n_sites))
    assert 0.3 < reject.mean() < 0.7


def test_seed_words_and_pcg_state_equal_numpy():
    seeds = [0, 1, 7, 123_456_789, 2**32 - 1]
    trials = np.array([0, 1, 2, 99, 65_535, 2**31, 2**32 - 1], dtype=np.int64)
    for s in seeds:
        words = D.seed_words(s, trials)
        for t, w in zip(trials.tolist(), words):
            ref = np.random.SeedSequence([s, t]).generate_state(4, np.uint64)
            np.testing.assert_array_equal(w, ref)
            assert D.pcg64_state(w.tolist()) == np.random.default_rng([s, t]).bit_generator.state


def test_unchecked_numpy_falls_back(monkeypatch):
    """If this numpy drew differently, every trial takes numpy's path: still equal."""
    monkeypatch.setattr(D, "_CHECKED", [False])
    calls = []
    plain = D._fast
    monkeypatch.setattr(D, "_fast", lambda *a: calls.append(1) or plain(*a))
    trials = range(30)
    assert_same_draws(
        D.chunk_site_draws(0, trials, 100_000, ber=1e-3),
        numpy_trial_draws(0, trials, 100_000, 1e-3),
    )
    assert not calls


def test_fast_path_is_taken_and_checked():
    D._fast_path_matches_numpy()
    assert D._CHECKED == [True]  # this numpy draws as the fast path assumes


def test_site_space_sample_trials_equals_sample():
    shapes = {"0.weight": (16, 8), "0.bias": (16,), "2.weight": (4, 16), "2.bias": (4,)}
    for fm in (
        FaultModel(format="float32", ber=3e-3, include_bias=True),
        FaultModel(format="int8", bits=(6, 7), count=5),
        FaultModel(format="float16", ber=1e-2, burst=2, kind="stuck-at-1"),
    ):
        space = SiteSpace(shapes, fm)
        trials = [0, 1, 2, 5, 40, 41]
        chunk = space.sample_trials(4, trials)
        for t, p in zip(trials, chunk):
            q = space.sample(np.random.default_rng([4, t]))
            assert (p.n_flips, p.n_sites, p.burst) == (q.n_flips, q.n_sites, q.burst)
            assert p.sites.keys() == q.sites.keys()
            for k in p.sites:
                for a, b in zip(p.sites[k], q.sites[k]):
                    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="count"):
        SiteSpace(shapes, FaultModel(format="int8", count=10**6)).sample_trials(0, [0])
    with pytest.raises(ValueError, match="asymmetric"):
        SiteSpace(shapes, FaultModel(format="int8", ber_01=1e-3)).sample_trials(0, [0])


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


@pytest.mark.parametrize(
    "fm",
    [
        FaultModel(format="float32", ber=2e-3, include_bias=True),
        FaultModel(format="int8", ber_10=5e-3),  # asymmetric: per-trial path
        FaultModel(format="int8", ber=1e-2, target="activations"),
    ],
)
def test_montecarlo_chunk_patterns_equal_patterns(fm):
    X = torch.randn(20, 8)
    y = torch.randint(0, 3, (20,))
    models = [_mlp(), _mlp()]

    def drop_half(p, rng):  # a filter that uses its own generator
        return p if rng.random() < 0.5 else p

    kw = {} if fm.target == "activations" else {"pattern_filter": drop_half}
    mc = MonteCarlo(models, X, y, fm, calibration=X, **kw)
    trials = list(range(3, 25))
    for t, pats in zip(trials, mc.chunk_patterns(9, trials)):
        ref = mc.patterns(9, t)
        assert len(pats) == len(ref) == 2
        for p, q in zip(pats, ref):
            assert p.n_flips == q.n_flips
            assert {k: [a.tolist() for a in v] for k, v in p.sites.items()} == {
                k: [a.tolist() for a in v] for k, v in q.sites.items()
            }


def test_deployed_equals_a_full_pass_when_storing_changes_bits_and_reuses_clean_otherwise():
    """float32 stores every weight unchanged: the deployed score is the clean one (no second
    pass); a -0.0 weight differs from +0.0 bit for bit; int8 always gets its own pass."""
    from sar_core.engine import montecarlo as M
    from sar_core.engine.evaluate import logits_of, score_logits

    X = torch.randn(30, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(2))
    model = _mlp()
    for fmt in ("float32", "int8", "float16"):
        mc = MonteCarlo([model], X, y, FaultModel(format=fmt, ber=1e-3))
        s = score_logits(logits_of(model, mc.injectors[0]._deployed, X), y)
        assert mc.deployed[0] == (s.accuracy, s.loss)
        assert (mc.deployed[0] == mc.clean[0]) or fmt != "float32"
    p = dict(model.named_parameters())
    q = {k: v.detach().clone() for k, v in p.items()}
    assert M._same_bits(q, p)
    q["0.bias"][0] = 0.0
    r = {k: v.clone() for k, v in q.items()}
    r["0.bias"][0] = -0.0  # equal as numbers, other bits
    assert M._same_bits(q, {k: v.clone() for k, v in q.items()}) and not M._same_bits(q, r)
    q = {k: v.detach().clone() for k, v in p.items()}
    w = q["0.weight"]
    w[0, 0] = torch.nextafter(w[0, 0], torch.tensor(10.0))  # one ulp
    assert not M._same_bits(q, p)
