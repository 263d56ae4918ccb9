"""sar_core.stats against independent references: scipy's t intervals, closed forms, numpy."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from scipy import stats as sps

from sar_core.stats.intervals import (
    fault_level_interval,
    seed_level_interval,
    summarize,
    t_interval,
)
from sar_core.stats.verdicts import symbol, verdict


def test_t_interval_equals_scipy():
    rng = np.random.default_rng(7)
    for n in (2, 3, 5, 17, 200):
        v = rng.normal(0.3, 2.0, size=n)
        s = t_interval(v, level=0.9)
        lo, hi = sps.t.interval(0.9, n - 1, loc=v.mean(), scale=sps.sem(v))
        assert (s.lo, s.hi) == pytest.approx((lo, hi), rel=1e-10)
        assert s.n == n and s.kind == "fault"


def test_seed_level_interval_is_t_over_seed_means_and_wider_than_pooled():
    """Two seeds far apart, each with tight fault noise: the pooled (fault-only) interval is
    narrow, the seed-level one (t over the 5 seed means, df = 4) is wide and contains both."""
    rng = np.random.default_rng(0)
    offsets = [8.6, 3.5, 6.0, 1.0, 5.0]
    per_seed = [o + rng.normal(0, 0.5, size=60) for o in offsets]
    seed = seed_level_interval(per_seed)
    means = np.array([p.mean() for p in per_seed])
    half = sps.t.ppf(0.975, 4) * means.std(ddof=1) / math.sqrt(5)
    assert (seed.lo, seed.hi) == pytest.approx((means.mean() - half, means.mean() + half))
    assert seed.kind == "seed" and seed.n == 5
    pooled = fault_level_interval(per_seed)
    assert pooled.kind == "fault" and pooled.n == 300
    assert (pooled.hi - pooled.lo) < (seed.hi - seed.lo) / 3
    assert seed_level_interval(list(means)) == seed  # seed means in, same interval


def test_degenerate_inputs():
    one = t_interval([0.5])
    assert one.mean == 0.5 and math.isnan(one.lo) and math.isnan(one.hi)
    with pytest.raises(ValueError, match="values=\\[\\]"):
        t_interval([])
    with pytest.raises(ValueError, match="kind='pooled'"):
        t_interval([1, 2], kind="pooled")
    with pytest.raises(ValueError, match="level=1.5"):
        t_interval([1, 2], level=1.5)
    with pytest.raises(ValueError, match="per_seed"):
        seed_level_interval([])


def test_identical_seed_means_give_no_interval_and_no_verdict():
    """Two seeds that land on the same delta (coarse accuracies): scipy's t.interval is NaN, and
    so is the seed-level interval, so no win is declared; over fault trials identical values
    keep their zero-width interval."""
    same = [0.125, 0.125]
    lo, hi = sps.t.interval(0.95, 1, loc=0.125, scale=sps.sem(same))
    assert math.isnan(lo) and math.isnan(hi)
    seed = seed_level_interval(same)
    assert seed.mean == 0.125 and math.isnan(seed.lo) and math.isnan(seed.hi)
    assert verdict(seed.lo, seed.hi) == "tie"
    fault = t_interval([0.9] * 50)
    assert (fault.lo, fault.hi) == (0.9, 0.9)
    assert math.isnan(t_interval([1.0, float("nan"), 2.0]).lo)


def test_summarize_agrees_with_t_interval():
    v = [0.1, 0.4, 0.35, 0.2]
    s, t = summarize(v), t_interval(v)
    assert s["ci95"] == pytest.approx([t.lo, t.hi]) and s["mean"] == pytest.approx(t.mean)


@pytest.mark.parametrize(
    ("lo", "hi", "want"),
    [(0.1, 2.0, "win"), (-2.0, -0.1, "loss"), (-0.1, 0.1, "tie"), (0.0, 1.0, "tie"),
     (math.nan, math.nan, "tie"), (-math.inf, -1.0, "loss")],
)  # fmt: skip
def test_verdict_rule(lo, hi, want):
    assert verdict(lo, hi) == want
    assert symbol(want) in "\u25b2\u25bc\u00b7"


def test_summary_scaled_and_dict():
    s = t_interval([0.01, 0.03]).scaled(100)
    assert s.mean == pytest.approx(2.0) and s.to_dict()["kind"] == "fault"


def test_stats_imports_neither_torch_nor_scipy():
    code = (
        "import sys, sar_core.stats.intervals, sar_core.stats.verdicts; "
        "print(sorted(m for m in ('torch', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
