"""Intervals: fault-level (over the trials of one model) and seed-level (over training seeds).

Two sources of noise sit in every robustness number. *Fault noise*: which bits a trial's pattern
hits. *Seed noise*: which minimum a training run lands in. A method - SGD difference measured on
one training seed carries only the first; a claim about a *method* must carry both. The
seed-level interval is Student's t over the per-seed mean differences (each seed's mean over its
own fault patterns): with S seeds it has S - 1 degrees of freedom, and its width includes the
seed-to-seed spread (the fault noise is inside each seed's mean, so it is counted too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from sar_core.stats.quantiles import t_quantile

LEVEL = 0.95


@dataclass(frozen=True)
class Summary:
    """A mean with its interval, and what the interval counts.

    kind: "fault" (trials of one model: fault-pattern noise only) or "seed" (per-seed means:
    training-seed spread included). n: the number of values the interval is over.
    """

    mean: float
    lo: float
    hi: float
    n: int
    kind: str = "fault"  # "fault" | "seed"
    level: float = LEVEL

    @property
    def ci(self) -> tuple[float, float]:
        return (self.lo, self.hi)

    def scaled(self, factor: float) -> Summary:
        """The same summary in other units (e.g. x100 for points)."""
        return Summary(
            self.mean * factor, self.lo * factor, self.hi * factor, self.n, self.kind, self.level
        )

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(values: Sequence[float]) -> dict:
    """Mean, std (ddof=1), 95% t-interval of the mean, and quantiles (std, CI NaN when n < 2)."""
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n == 0:
        raise ValueError("Invalid values=[]: need at least one trial to summarise")
    mean = float(v.mean())
    # one trial says nothing about spread: std and the interval are undefined (NaN), not zero
    std = float(v.std(ddof=1)) if n > 1 else float("nan")
    half = float(t_quantile(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95]) if np.isfinite(v).all() else [np.nan] * 5
    return {
        "mean": mean,
        "std": std,
        "ci95": [mean - half, mean + half],
        "n": int(n),
        "quantiles": {k: float(x) for k, x in zip(("q05", "q25", "q50", "q75", "q95"), q)},
    }


def clamp_unit(ci: Sequence[float]) -> list[float]:
    """A CI of an accuracy clipped to [0, 1] (NaN bounds stay NaN)."""
    return [x if np.isnan(x) else min(1.0, max(0.0, x)) for x in ci]


def t_interval(values: Sequence[float], *, kind: str = "fault", level: float = LEVEL) -> Summary:
    """Student-t interval of the mean of ``values`` (NaN bounds when fewer than 2 values).

    ``kind="seed"``: NaN bounds too when every value is the same. Seed means of accuracies on a
    small test set come in coarse steps, and two or three seeds can land on one value by chance;
    a zero-width interval would then call a one-step difference certain (scipy's t.interval is
    NaN there as well). Over fault trials identical values are what the faults did (say, none
    changed a prediction), and the interval stays [mean, mean]."""
    if kind not in ("fault", "seed"):
        raise ValueError(f"Invalid kind={kind!r}: must be 'fault' or 'seed'")
    if not 0.0 < level < 1.0:
        raise ValueError(f"Invalid level={level}: must be in (0, 1)")
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("Invalid values=[]: need at least one value for an interval")
    mean = float(v.mean())
    if v.size < 2 or not np.isfinite(v).all():
        return Summary(mean, math.nan, math.nan, int(v.size), kind, level)
    std = float(v.std(ddof=1))
    if kind == "seed" and std == 0.0:
        return Summary(mean, math.nan, math.nan, int(v.size), kind, level)
    half = t_quantile(0.5 + level / 2, v.size - 1) * std / math.sqrt(v.size)
    return Summary(mean, mean - half, mean + half, int(v.size), kind, level)


def seed_level_interval(
    per_seed: Sequence[Sequence[float]] | Sequence[float], *, level: float = LEVEL
) -> Summary:
    """Interval of a mean difference over training seeds.

    ``per_seed``: one entry per training seed, either that seed's mean difference or the array of
    its paired per-trial differences (then its mean is taken). Student t over the S seed means,
    S - 1 degrees of freedom: the seed-to-seed spread is inside the width.
    """
    means = [float(np.mean(np.asarray(s, dtype=np.float64))) for s in per_seed]
    if not means:
        raise ValueError("Invalid per_seed=[]: need at least one training seed")
    return t_interval(means, kind="seed", level=level)


def fault_level_interval(per_seed: Sequence[Sequence[float]], *, level: float = LEVEL) -> Summary:
    """Interval over all pooled per-trial differences (fault-pattern noise only; labelled so)."""
    pooled = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in per_seed])
    return t_interval(pooled, kind="fault", level=level)
