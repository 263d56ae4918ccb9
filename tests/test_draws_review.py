"""Review of sar_core.faults.draws: edge cases of ``chunk_site_draws`` against numpy itself.

The reference (``conftest.numpy_trial_draws``) is independent of ``draws.numpy_site_draw``: for
trial t, ``rng = np.random.default_rng([seed, t])``, a binomial (or a count), then
``rng.choice(n_sites, n, replace=False)``. Where equality alone could hold because every trial
fell back to numpy, the tests also count the rows the fast path itself produced."""

import threading
import types

import numpy as np
import pytest
from conftest import assert_same_draws, numpy_trial_draws

from sar_core.faults import draws as D


@pytest.fixture
def fast_rows(monkeypatch):
    """Counts the rows ``_fast`` returned as usable (ok), by trial size."""
    seen: dict[int, int] = {}
    plain = D._fast

    def counting(raw, n, n_sites):
        ids, ok = plain(raw, n, n_sites)
        for k, good in zip(n.tolist(), ok.tolist()):
            seen[k] = seen.get(k, 0) + int(good)
        return ids, ok

    monkeypatch.setattr(D, "_fast", counting)
    return seen


SEEDS = [0, 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1]
NUMPY_SEEDS = [np.int64(5), np.uint32(2**32 - 1), np.uint64(2**32), np.int32(3), np.uint8(0)]


@pytest.mark.parametrize("seed", SEEDS + NUMPY_SEEDS)
def test_seeds_at_word_boundaries_and_numpy_int_types(seed):
    trials = range(25)
    want = numpy_trial_draws(seed, trials, 300_000, ber=1e-4)
    assert_same_draws(D.chunk_site_draws(seed, trials, 300_000, ber=1e-4), want)


@pytest.mark.parametrize(
    "trials",
    [
        [],
        range(0),
        [0],
        [5, 5, 0, 5, 1],  # repeats, unsorted
        [2**32 - 1, 0, 2**32, 2**32 + 1, 3],  # one-word and two-word trials mixed
        [2**63 - 1],
        np.arange(12)[::-1],
        np.array([1, 2, 2**32 - 1], dtype=np.uint64),
        np.array([4, 4, 0], dtype=np.int32),
        (np.int64(3), np.uint8(4), 7),
    ],
)
def test_trial_lists(trials):
    want = numpy_trial_draws(3, [int(t) for t in trials], 50_000, ber=1e-3)
    assert_same_draws(D.chunk_site_draws(3, trials, 50_000, ber=1e-3), want)


@pytest.mark.parametrize("n_sites", [1, 2, 3, 4, 100, 10_000, 10_001, 2**32 - 1, 2**32, 2**32 + 1])
def test_site_counts_and_rates(n_sites):
    trials = range(30)
    for count in {1, 2, 5, 40, n_sites}:
        if count <= min(n_sites, 600):  # count == n_sites: every site
            want = numpy_trial_draws(11, trials, n_sites, count=count)
            assert_same_draws(D.chunk_site_draws(11, trials, n_sites, count=count), want)
    for ber in (1e-9, 1e-6, 0.5, 1 - 1e-9, 1.0, 0.0):
        if n_sites * ber <= 600:
            want = numpy_trial_draws(13, trials, n_sites, ber=ber)
            assert_same_draws(D.chunk_site_draws(13, trials, n_sites, ber=ber), want)


def test_choice_branch_boundary():
    """numpy's choice switches to its tail shuffle when n_sites > 10000 and n > n_sites // 50."""
    for n_sites in (10_000, 10_001, 10_050, 10_100, 20_050):
        for count in {n_sites // 50 - 1, n_sites // 50, n_sites // 50 + 1, 100, 101}:
            want = numpy_trial_draws(17, range(20), n_sites, count=count)
            assert_same_draws(D.chunk_site_draws(17, range(20), n_sites, count=count), want)


def test_fast_path_edges_are_taken_and_exact(fast_rows):
    """k**2 == n_sites, k == MAX_FAST_SITES and 2 k n_sites == 2**28 (the rejection limit) go
    through the fast path and still equal numpy; k == 1 of 1 site too. Beyond the rejection
    limit (10**7 sites with k == MAX_FAST_SITES; 2**32 sites, where numpy's bound 2**32 - 1 skips
    Lemire) numpy's path, equal by construction."""
    kmax = D.MAX_FAST_SITES
    fast = [(kmax**2, kmax), (2**20, 128), (2**24, 8)]
    cases = [(1, 1), (4, 2), (100, 10), *fast, (10**7, kmax), (2**32, 7)]
    for n_sites, k in cases:
        want = numpy_trial_draws(19, range(30), n_sites, count=k)
        assert_same_draws(D.chunk_site_draws(19, range(30), n_sites, count=k), want)
    for n_sites, k in fast:
        assert fast_rows.get(k, 0) > 0, (n_sites, k)
    assert fast_rows.get(1, 0) > 0
    # one past the limits: numpy's path for every trial, still equal
    fast_rows.clear()
    for n_sites, k in [(10**7, kmax + 1), (kmax**2 - 1, kmax), (2**32 + 1, 7)]:
        want = numpy_trial_draws(19, range(10), n_sites, count=k)
        assert_same_draws(D.chunk_site_draws(19, range(10), n_sites, count=k), want)
    assert not fast_rows


@pytest.mark.parametrize("n_sites", [2**31 + 1, 2**31 + 2**30, 2**32 - 5])
def test_rejection_heavy_sizes(n_sites):
    """Just above 2**31 about half of numpy's 32-bit words are rejected and redrawn."""
    for kw in ({"count": 7}, {"ber": 20 / n_sites}):
        want = numpy_trial_draws(31, range(60), n_sites, **kw)
        assert_same_draws(D.chunk_site_draws(31, range(60), n_sites, **kw), want)


@pytest.mark.parametrize(
    "kw", [{"count": -1}, {"count": 1001}, {"ber": -0.1}, {"ber": 1.5}, {"ber": float("nan")}]
)
def test_bad_input_raises_as_numpy_does(kw):
    with pytest.raises(ValueError) as want:
        numpy_trial_draws(1, range(3), 1000, **kw)
    with pytest.raises(type(want.value)):
        D.chunk_site_draws(1, range(3), 1000, **kw)


def test_two_threads_on_first_use(monkeypatch):
    """Concurrent first calls (each runs the self-check) give numpy's draws in every thread."""
    monkeypatch.setattr(D, "_CHECKED", [])
    cases = [(1, 835_904, 1e-4, None), (2, 5000, None, 20), (3, 2**31 + 7, None, 4)]
    want = {c: numpy_trial_draws(c[0], range(60), c[1], c[2], c[3]) for c in cases}
    barrier, errors = threading.Barrier(3), []

    def work(shift):
        barrier.wait()
        for _ in range(2):
            for c in cases[shift:] + cases[:shift]:
                got = D.chunk_site_draws(c[0], range(60), c[1], ber=c[2], count=c[3])
                if not all(np.array_equal(g, w) for g, w in zip(got, want[c])):
                    errors.append(c)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert D._CHECKED and all(D._CHECKED)


@pytest.mark.parametrize("trials", [[2**63], np.array([2**64 - 1], dtype=np.uint64)])
def test_trials_of_2_63_or_more(trials):
    want = numpy_trial_draws(3, [int(t) for t in trials], 50_000, ber=1e-3)
    assert_same_draws(D.chunk_site_draws(3, trials, 50_000, ber=1e-3), want)


@pytest.mark.parametrize(
    "seed,trials,n_sites", [(3, [1.5], 1000), (3.0, [1], 1000), (3, [1], 1000.0)]
)
def test_non_integer_inputs_raise_as_numpy_does(seed, trials, n_sites):
    with pytest.raises((TypeError, ValueError)):
        numpy_trial_draws(seed, trials, n_sites, count=3)
    with pytest.raises((TypeError, ValueError)):
        D.chunk_site_draws(seed, trials, n_sites, count=3)


class _BufferingBinomial(np.random.Generator):
    """A numpy whose BTPE binomial (n * p > 30) ends on a 32-bit draw, leaving the high half of
    a 64-bit word buffered for the next 32-bit draw (choice's Lemire draws would read it)."""

    def binomial(self, n, p, size=None):
        k = super().binomial(n, p, size)
        if n * p > 30:
            self.integers(0, 2**32, dtype=np.uint32)
        return k


def test_self_check_catches_a_numpy_that_differs_after_btpe(monkeypatch):
    rnd = types.SimpleNamespace(**vars(np.random))
    rnd.Generator = _BufferingBinomial
    rnd.default_rng = lambda s: _BufferingBinomial(np.random.PCG64(s))
    names = [k for k in dir(np) if not k.startswith("__") and k != "random"]
    fake_np = types.SimpleNamespace(**{k: getattr(np, k) for k in names})
    fake_np.random = rnd
    monkeypatch.setattr(D, "np", fake_np)
    monkeypatch.setattr(D, "_CHECKED", [])
    trials = range(20)
    want = [D.numpy_site_draw(0, t, 835_904, 1e-4, None) for t in trials]  # the changed numpy
    want_plain = numpy_trial_draws(0, trials, 835_904, ber=1e-4)
    assert sum(not np.array_equal(a, b) for a, b in zip(want, want_plain)) > 10  # it differs
    assert_same_draws(D.chunk_site_draws(0, trials, 835_904, ber=1e-4), want)
