"""Monte Carlo fault-injection campaigns: trials, statistics, paired comparisons (sweeps over
rates, bits and layers: ``sar_core.analysis.sweeps``).

Trial t of a campaign with seed s uses the pattern drawn from rng([s, t]); a pattern depends only
on shapes and that seed, so every model of the same architecture is hit by the same faults
(common random numbers), and every BER of a sweep reuses the same trial seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from torch import nn

from sar_core import limits
from sar_core.engine.checks import model_data
from sar_core.engine.montecarlo import MonteCarlo
from sar_core.faults.model import FaultModel
from sar_core.stats.intervals import clamp_unit, summarize
from sar_core.validate import check_int


def check_trials(trials: int) -> int:
    """Validate a trial count against the cap."""
    return check_int("trials", trials, low=1, high=limits.MAX_TRIALS)


@dataclass
class CampaignResult:
    """Per-trial outcomes of one model under one fault model."""

    fault_model: FaultModel
    clean_accuracy: float  # float32 weights, no faults
    deployed_accuracy: float  # weights stored in the format (quantization alone), no faults
    n_sites: int
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # inf when logits were not finite
    flips: list[int] = field(default_factory=list)  # hit sites (flips, stuck sites, bursts)
    changed: list[int] = field(default_factory=list)  # stored bits that changed value

    def summary(self) -> dict:
        """Statistics of the per-trial accuracies and flip counts.

        ``ci95`` is the t-interval of the mean accuracy clipped to [0, 1]: near 0% or 100% the
        symmetric interval would cross the bounds an accuracy cannot leave.
        """
        s = summarize(self.accuracy)
        return {
            "clean_accuracy": self.clean_accuracy,
            "deployed_accuracy": self.deployed_accuracy,
            "mean_accuracy": s["mean"],
            "std": s["std"],
            "ci95": clamp_unit(s["ci95"]),
            "quantiles": s["quantiles"],
            "trials": s["n"],
            "mean_flips": float(np.mean(self.flips)),
            "mean_changed_bits": float(np.mean(self.changed or self.flips)),
            "n_sites": self.n_sites,
            "nonfinite_loss_trials": int(np.sum(~np.isfinite(self.loss))),
            "fault_model": self.fault_model.to_dict(),
        }

    def snapshot(self) -> CampaignResult:
        """A copy whose trial lists later trials do not extend."""
        return replace(
            self,
            accuracy=list(self.accuracy),
            loss=list(self.loss),
            flips=list(self.flips),
            changed=list(self.changed),
        )

    def rows(self) -> list[dict]:
        """One row per trial (for CSV export)."""
        changed = self.changed or self.flips
        return [
            {"trial": i, "accuracy": a, "loss": loss, "flips": f, "changed_bits": c}
            for i, (a, loss, f, c) in enumerate(zip(self.accuracy, self.loss, self.flips, changed))
        ]


def iter_compare(
    models: Sequence[nn.Module],
    X,
    y,
    fm: FaultModel,
    *,
    trials: int = 100,
    seed: int = 0,
    engine: MonteCarlo | None = None,
    **options,
) -> Iterator[list[CampaignResult]]:
    """Run trials on several models with identical patterns; after each trial yield a snapshot.

    A snapshot is a new list of new ``CampaignResult`` objects holding trials 0..t; earlier
    snapshots are never changed. ``options`` go to ``MonteCarlo`` (evaluator, memory_mb,
    calibration). ``engine`` reuses one already built for these same model objects; it runs at
    ``fm`` (``engine.with_rate(fm)``), so ``fm`` may differ from the engine's fault model only in
    its rate (ber / count / ber_01 / ber_10), else ValueError.
    """
    for results in _grow(models, X, y, fm, trials=trials, seed=seed, engine=engine, **options):
        yield [r.snapshot() for r in results]


def _grow(models, X, y, fm, *, trials, seed, engine, **options) -> Iterator[list[CampaignResult]]:
    """``iter_compare``'s trials, yielding the same growing result objects (internal)."""
    trials = check_trials(trials)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    if not models:
        raise ValueError("Invalid models=[]: give at least one model")
    if engine is None:  # MonteCarlo checks the models and the data
        engine = MonteCarlo(models, X, y, fm, **options)
    else:
        engine = _engine_at(engine, models, fm, options)
        _check_engine_data(engine, *model_data(models[0], X, y))
    results = [
        CampaignResult(engine.fm, c[0], d[0], engine.n_sites)
        for c, d in zip(engine.clean, engine.deployed)
    ]
    for trial in engine.run(trials, seed=seed):
        for m, res in enumerate(results):
            res.accuracy.append(trial.accuracy[m])
            res.loss.append(trial.loss[m])
            res.flips.append(trial.n_flips[m])
            res.changed.append(trial.n_changed[m])
        yield results


def _engine_at(
    engine: MonteCarlo, models: Sequence[nn.Module], fm: FaultModel, options
) -> MonteCarlo:
    """``engine`` at ``fm``'s rate, after checking it was built for ``models`` and nothing else."""
    if options:
        raise ValueError(
            f"Invalid options {sorted(options)} with engine=: they configure a new MonteCarlo; "
            "build the engine with them, or pass engine=None"
        )
    if len(engine.models) != len(models) or any(a is not b for a, b in zip(engine.models, models)):
        raise ValueError(
            "Invalid engine: it was built for other model objects; pass the same models in the "
            "same order, or engine=None"
        )
    if engine.fm == fm:
        return engine
    try:
        return engine.with_rate(fm)
    except ValueError as e:
        raise ValueError(
            f"Invalid fm={fm}: the engine's fault model {engine.fm} differs in more than the rate "
            "(ber / count / ber_01 / ber_10); build a new engine (engine=None)"
        ) from e


def _check_engine_data(engine: MonteCarlo, X, y) -> None:
    """ValueError unless (X, y) hold the data the engine was built on (its clean scores)."""
    same = (
        X.shape == engine.X.shape
        and y.shape == engine.y.shape
        and bool((X == engine.X).all())
        and bool((y == engine.y).all())
    )
    if not same:
        raise ValueError(
            f"Invalid X, y with engine=: the engine was built on {engine.X.shape[0]} other rows "
            f"(shape {tuple(engine.X.shape)}), got shape {tuple(X.shape)}; pass the engine's own "
            "X and y, or engine=None to build one on these"
        )


def _last(it, progress: Callable[[int], None] | None = None):
    """The last item of ``it``; ``progress(i)`` after the i-th (from 1)."""
    out = None
    for i, out in enumerate(it, 1):  # noqa: B007
        if progress is not None:
            progress(i)
    return out


def run_campaign(
    model: nn.Module,
    X,
    y,
    fm: FaultModel,
    *,
    trials: int = 100,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    **options,
) -> CampaignResult:
    """``trials`` independent fault patterns on one model (options: see ``iter_compare``).

    ``progress(done)`` is called after each trial (a progress bar: unlike ``iter_compare`` it
    copies nothing, so a long campaign stays linear in its trials)."""
    engine = options.pop("engine", None)
    grow = _grow([model], X, y, fm, trials=trials, seed=seed, engine=engine, **options)
    return _last(grow, progress)[0]


def paired_difference(a: CampaignResult, b: CampaignResult) -> dict:
    """Mean and 95% CI of accuracy(b) - accuracy(a) over shared trials."""
    d = np.asarray(b.accuracy) - np.asarray(a.accuracy)
    s = summarize(d)
    return {"mean": s["mean"], "std": s["std"], "ci95": s["ci95"], "n": s["n"]}


def compare(
    models: Sequence[nn.Module],
    X,
    y,
    fm: FaultModel,
    *,
    trials: int = 100,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    **options,
) -> dict:
    """Paired comparison: per-model results and each model's difference against the first.

    ``options``: ``engine`` (see ``iter_compare``) or the ``MonteCarlo`` options;
    ``progress(done)`` is called after each trial (see ``run_campaign``)."""
    engine = options.pop("engine", None)
    grow = _grow(models, X, y, fm, trials=trials, seed=seed, engine=engine, **options)
    results = _last(grow, progress)
    return {
        "results": results,
        "paired_difference": [paired_difference(results[0], r) for r in results],
    }
