"""Trial draws for a whole chunk of trials at once, equal to numpy's per-trial draws.

Trial t of seed s draws its sites as (see ``sar_core.engine.montecarlo``)::

    rng = np.random.default_rng([s, t])
    n = count if count is not None else int(rng.binomial(n_sites, ber))
    ids = rng.choice(n_sites, size=n, replace=False)

That per-trial generator is what makes a trial reproducible on its own and paired across models,
but building it (SeedSequence hashing, PCG64 seeding) and calling ``choice`` cost about 30 µs a
trial, a sixth of a small MLP's whole trial. ``chunk_site_draws`` returns the same arrays for many
trials: the SeedSequence hash and PCG64 seeding run vectorized over the trials; one reused
generator draws each trial's binomial (numpy's own sampler) and then hands over the raw 64-bit
stream that ``choice`` would have consumed; Floyd's algorithm and the final shuffle, as numpy runs
them (Lemire's bounded integers on the 32-bit halves of that stream), are then evaluated for all
trials at once.

Exactness: a trial takes numpy's own path whenever the fast path could differ — a 32-bit word
that numpy's Lemire draw rejects, two Floyd draws that collide, ``choice``'s other branch (large
samples), seeds or trial numbers of 2**32 or more (or not integers: numpy then raises), more
than 2**32 sites — or would not pay (more than ``MAX_FAST_SITES`` sites, likely collisions or
rejected words: see ``_fast_eligible``). The fast path is checked against numpy on first use, on
both of numpy's binomial samplers, counts and collisions: if this numpy draws differently there
(numpy may change Generator streams between feature releases), every trial takes numpy's path.
``tests/test_draws.py`` and ``tests/test_draws_review.py`` compare the two over many seeds,
rates, counts and sizes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

# SeedSequence's hash constants (numpy/random/bit_generator.pyx, after M. O'Neill's seed_seq_fe)
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715
_POOL = 4
_PCG_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier
_M128 = (1 << 128) - 1
_M32 = 0xFFFFFFFF
_U32 = np.uint32


def _hashmix(value: np.ndarray, const: list[int]) -> np.ndarray:
    value = value ^ _U32(const[0])
    const[0] = (const[0] * _MULT_A) & _M32
    value = value * _U32(const[0])
    return value ^ (value >> _U32(16))


def _mix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = x * _U32(_MIX_L) - y * _U32(_MIX_R)
    return r ^ (r >> _U32(16))


def seed_words(seed: int, trials: np.ndarray) -> np.ndarray:
    """``SeedSequence([seed, t]).generate_state(4, np.uint64)`` for every t (seed, t < 2**32):
    (T, 4) uint64, the words PCG64 is seeded with."""
    t = np.asarray(trials, dtype=np.uint32)
    with np.errstate(over="ignore"):
        entropy = [np.full(t.shape, seed, dtype=np.uint32), t]
        const = [_INIT_A]
        zero = np.zeros(t.shape, dtype=np.uint32)
        pool = [_hashmix(entropy[i] if i < 2 else zero, const) for i in range(_POOL)]
        for src in range(_POOL):
            for dst in range(_POOL):
                if src != dst:
                    pool[dst] = _mix(pool[dst], _hashmix(pool[src], const))
        out = np.empty((t.size, 8), dtype=np.uint32)
        h = _INIT_B
        for i in range(8):
            v = pool[i % _POOL] ^ _U32(h)
            h = (h * _MULT_B) & _M32
            v = v * _U32(h)
            out[:, i] = v ^ (v >> _U32(16))
    return out.view("<u8")  # two uint32 words per uint64, little end first


def pcg64_state(w: Sequence[int]) -> dict:
    """The PCG64 state dict of a generator seeded with the words ``w`` (4 uint64, as PCG64 seeds
    from its SeedSequence: state high/low words, then increment high/low)."""
    seed, inc = (w[0] << 64) | w[1], (((w[2] << 64) | w[3]) << 1 | 1) & _M128
    # pcg_setseq_128_srandom_r: state = 0; step (state = inc); state += seed; step
    state = ((inc + seed) * _PCG_MULT + inc) & _M128
    return {
        "bit_generator": "PCG64",
        "state": {"state": state, "inc": inc},
        "has_uint32": 0,
        "uinteger": 0,
    }


def draw_sites(rng: np.random.Generator, n_sites: int, ber: float | None, count: int | None):
    """The sites of one pattern: n ~ Binomial(n_sites, ber) (or n = count), then n distinct sites
    uniformly, in draw order (the definition ``SiteSpace.sample`` and the fast path follow)."""
    n = count if count is not None else int(rng.binomial(n_sites, ber))
    return rng.choice(n_sites, size=n, replace=False) if n else np.empty(0, np.int64)


def numpy_site_draw(seed: int, t: int, n_sites: int, ber: float | None, count: int | None):
    """Trial t's sites drawn by numpy itself (what the fast path must equal)."""
    return draw_sites(np.random.default_rng([seed, t]), n_sites, ber, count)


def _floyd_branch(n_sites: int, n: int) -> bool:
    """True where numpy's ``choice(replace=False, shuffle=True)`` runs Floyd's algorithm."""
    return not (n_sites > 10000 and n > n_sites // 50)


def _lemire(u32: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lemire's draw in [0, bound] from 32-bit words (numpy's ``buffered_bounded_lemire_uint32``)
    and where numpy rejects the word (leftover < 2**32 mod (bound + 1)) and draws again: a trial
    with a rejected word takes numpy's own path."""
    excl = bound.astype(np.uint64)
    excl += np.uint64(1)
    m = u32.astype(np.uint64)
    m *= excl
    low = m & np.uint64(_M32)
    maybe = low < excl  # the threshold 2**32 mod excl is below excl: only these can be rejected
    reject = np.zeros(m.shape, dtype=bool)
    if maybe.any():
        reject[maybe] = low[maybe] < np.uint64(1 << 32) % excl[maybe]
    m >>= np.uint64(32)
    return m.view(np.int64), reject


def _fast(raw: np.ndarray, n: np.ndarray, n_sites: int) -> tuple[np.ndarray, np.ndarray]:
    """Floyd + shuffle for trials with n sites each from their raw streams (T, max n) uint64:
    (ids (T, max n), ok (T,)); rows with ok False must take numpy's path."""
    T, width = raw.shape
    u32 = raw.view(np.uint32).reshape(T, 2 * width)  # the 32-bit halves, low half first
    col = np.arange(width)
    live = col[None, :] < n[:, None]
    # Floyd: draw i in [0, n_sites - n + i]; distinct draws are the sample in draw order
    ids, reject = _lemire(u32[:, :width], (n_sites - n)[:, None] + col[None, :])
    ok = ~(reject & live).any(axis=1)
    srt = np.sort(np.where(live, ids, -1 - col[None, :]), axis=1)  # pads distinct and negative
    ok &= ~(srt[:, 1:] == srt[:, :-1]).any(axis=1)
    # shuffle: for i = n-1 .. 1 swap ids[i] and ids[j_i], j_i in [0, i] from word n + (n-1-i)
    # = 2n-1-i; every j_i of every trial from one vectorized draw, then one swap per i
    use = (col[None, :] >= 1) & live
    words = np.take_along_axis(u32, np.clip(2 * n[:, None] - 1 - col[None, :], 0, None), axis=1)
    j, reject = _lemire(words, np.broadcast_to(col, words.shape))
    ok &= ~(reject & use).any(axis=1)
    J = np.where(use, j, col[None, :])  # J[:, i]: the partner of position i (itself: no swap)
    rows = np.arange(T)
    for i in range(width - 1, 0, -1):
        ji = J[:, i]
        a = ids[:, i].copy()
        ids[:, i] = ids[rows, ji]
        ids[rows, ji] = a
    return ids, ok


_CHECKED: list[bool] = []  # [True] once the fast path matched numpy, [False] if it did not
_CHECK_LOCK = threading.Lock()
# (seed, n_sites, ber, count): numpy's inversion binomial (n p <= 30), its BTPE binomial (n p > 30,
# as in the MLP benchmark), a count with a two-word-range seed, and a small space with collisions
_CHECK_CASES = (
    (7, 300_000, 1e-4, None),
    (5, 300_000, 3e-4, None),
    (2**31, 80_000, None, 40),
    (123, 5000, 2e-3, None),
)


def _fast_path_matches_numpy() -> bool:
    """Whether this numpy draws as ``_fast`` assumes (checked once per process, 40 trials of each
    of ``_CHECK_CASES``, about 20-30 ms)."""
    if not _CHECKED:
        with _CHECK_LOCK:
            if not _CHECKED:
                good = True
                for seed, n_sites, ber, count in _CHECK_CASES:
                    trials = np.arange(0, 40)
                    got = _chunk(seed, trials, n_sites, ber, count, fast=True)
                    want = [numpy_site_draw(seed, int(t), n_sites, ber, count) for t in trials]
                    good &= all(np.array_equal(g, w) for g, w in zip(got, want))
                _CHECKED.append(bool(good))
    return _CHECKED[0]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def chunk_site_draws(
    seed: int, trials: Sequence[int], n_sites: int, *, ber: float | None = None,
    count: int | None = None,
) -> list[np.ndarray]:  # fmt: skip
    """Sites (int64, in draw order) of each trial in ``trials``: exactly
    ``numpy_site_draw(seed, t, n_sites, ber, count)`` for every t (see the module doc). Anything
    but integers (a float trial, seed or n_sites) goes to numpy as given, which raises."""
    arr = trials if isinstance(trials, np.ndarray) else np.asarray(trials)
    plain = _is_int(seed) and _is_int(n_sites) and (count is None or _is_int(count))
    plain = plain and arr.ndim == 1 and (arr.size == 0 or arr.dtype.kind in "iu")
    if not plain or (arr.size and not (arr.min() >= 0 and arr.max() <= _M32)):
        return [numpy_site_draw(seed, t, n_sites, ber, count) for t in trials]  # numpy's checks
    fast = _fast_path_matches_numpy()
    return _chunk(int(seed), arr.astype(np.int64), int(n_sites), ber, count, fast=fast)


MAX_FAST_SITES = 512  # the shuffle runs one vectorized step per site of the largest trial


def _fast_eligible(n_sites: int, k: int) -> bool:
    """Whether a trial of k sites goes through ``_fast``: Floyd's branch, a short shuffle, and
    few trials sent back to numpy: collisions (k**2 <= n_sites) and rejected Lemire words (each
    of the 2k words is rejected with probability below n_sites / 2**32: 2k n_sites <= 2**28)."""
    return (
        0 < k <= MAX_FAST_SITES
        and k * k <= n_sites
        and 2 * k * n_sites <= 2**28
        and _floyd_branch(n_sites, k)
    )


def _chunk(seed, trials: np.ndarray, n_sites, ber, count, *, fast: bool) -> list[np.ndarray]:
    # trials are in [0, 2**32) (chunk_site_draws); a larger seed or space: numpy's path
    if not (fast and 0 <= seed <= _M32 and 0 < n_sites <= _M32 + 1):
        return [numpy_site_draw(seed, int(t), n_sites, ber, count) for t in trials]
    words = seed_words(seed, trials).tolist()
    bg = np.random.PCG64()
    gen = np.random.Generator(bg)  # at trial t's state, it is default_rng([seed, t]) exactly
    out: list[np.ndarray] = [np.empty(0, np.int64)] * trials.size
    todo, sizes, raws = [], [], []  # trials for _fast: position, number of sites, raw stream
    for i in range(trials.size):
        bg.state = pcg64_state(words[i])
        k = count if count is not None else int(gen.binomial(n_sites, ber))
        if _fast_eligible(n_sites, k):
            todo.append(i)
            sizes.append(k)
            raws.append(bg.random_raw(k))  # k 64-bit words: the 2k - 1 halves choice reads
        elif k:
            out[i] = gen.choice(n_sites, size=k, replace=False)  # numpy's own path, here
    if todo:
        n = np.array(sizes, dtype=np.int64)
        raw = np.zeros((n.size, int(n.max())), dtype=np.uint64)
        for r, (k, words_r) in enumerate(zip(sizes, raws)):
            raw[r, :k] = words_r
        ids, ok = _fast(raw, n, n_sites)
        for r, (i, k) in enumerate(zip(todo, sizes)):
            out[i] = (
                ids[r, :k].copy()
                if ok[r]
                else numpy_site_draw(seed, int(trials[i]), n_sites, ber, count)  # rare
            )
    return out
