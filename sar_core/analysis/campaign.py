"""Monte Carlo fault-injection campaigns: trials, statistics, sweeps, paired comparisons.

Trial t of a campaign with seed s uses the pattern drawn from rng([s, t]); a pattern depends only
on shapes and that seed, so every model of the same architecture is hit by the same faults
(common random numbers), and every BER of a sweep reuses the same trial seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from sar_core import limits
from sar_core.engine.evaluate import as_tensors, model_device
from sar_core.engine.montecarlo import MonteCarlo
from sar_core.faults.model import FaultModel, eligible_parameters, parameter_shapes
from sar_core.stats.intervals import clamp_unit, summarize
from sar_core.validate import check_float, check_int


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


def _xy(model: nn.Module, X, y):
    if isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor):
        return X, y
    return as_tensors(X, y, model_device(model))


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
    if engine is None:
        X, y = _xy(models[0], X, y)
        engine = MonteCarlo(models, X, y, fm, **options)
    else:
        engine = _engine_at(engine, models, fm, options)
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


def check_bers(bers: Sequence[float]) -> list[float]:
    """Validate a BER list: 1..MAX_BER_POINTS values, each in (0, 1]."""
    bers = list(bers)
    if not bers or len(bers) > limits.MAX_BER_POINTS:
        raise ValueError(
            f"Invalid ber list of length {len(bers)}: give 1 to {limits.MAX_BER_POINTS} values"
        )
    return [check_float("ber", b, low=0.0, high=1.0, low_open=True) for b in bers]


def iter_sweep(
    models: Sequence[nn.Module],
    X,
    y,
    fm: FaultModel,
    *,
    bers: Sequence[float] | None = None,
    counts: Sequence[int] | None = None,
    trials: int = 50,
    seed: int = 0,
    **options,
) -> Iterator[tuple[float, list[dict]]]:
    """For each BER (or flip count), yield (level, per-model summaries) — a live BER sweep.

    The models are deployed once; every level reuses the same trial seeds (common random numbers).
    """
    if (bers is None) == (counts is None):
        raise ValueError("Invalid sweep: give exactly one of bers or counts")
    levels = (
        check_bers(bers)
        if bers is not None
        else [
            check_int("count", c, low=1, high=limits.MAX_FLIP_COUNT)
            for c in counts  # type: ignore[union-attr]
        ]
    )
    trials = check_trials(trials)
    engine = None
    for level in levels:
        fm_l = fm.with_rate(ber=level) if bers is not None else fm.with_rate(count=int(level))
        if engine is None:
            X, y = _xy(models[0], X, y) if models else (X, y)
            engine = MonteCarlo(models, X, y, fm_l, **options)
        res = compare(models, X, y, fm_l, trials=trials, seed=seed, engine=engine)
        out = []
        for r, d in zip(res["results"], res["paired_difference"]):
            s = r.summary()
            s["paired_difference"] = d
            out.append(s)
        yield level, out


def sweep_curves(points: Iterable[tuple[float, Sequence[dict]]]) -> dict:
    """Sweep points (level, per-model summaries), as ``iter_sweep`` yields them, -> curves.

    Returns ``{"levels": [...], "models": [{"mean_accuracy", "ci95_low", "ci95_high": lists
    over levels, "deployed_accuracy": float or None}]}``; partial sweeps give shorter lists.
    """
    levels: list[float] = []
    models: list[dict] = []
    for level, summaries in points:
        if not models:
            models = [
                {"mean_accuracy": [], "ci95_low": [], "ci95_high": [], "deployed_accuracy": None}
                for _ in summaries
            ]
        levels.append(level)
        for m, s in zip(models, summaries):
            m["mean_accuracy"].append(s["mean_accuracy"])
            m["ci95_low"].append(s["ci95"][0])
            m["ci95_high"].append(s["ci95"][1])
            m["deployed_accuracy"] = s["deployed_accuracy"]
    return {"levels": levels, "models": models}


def _unit(v: float | None) -> float | None:
    """An accuracy bound clamped to [0, 1] (a t-interval can overshoot); None / NaN -> None."""
    if v is None or not np.isfinite(v):
        return None
    return min(max(float(v), 0.0), 1.0)


def figure_curves(
    points: Iterable[tuple[float, Sequence[dict]]],
    *,
    labels: Sequence[str],
    methods: Sequence[str],
    dashed: Sequence[bool] | None = None,
) -> list[dict]:
    """Sweep points -> one curve per model, as ``sar_core.plots.robustness.sweep_figure`` draws.

    Each curve: ``label``, ``method``, ``dash`` ("dash" where ``dashed``), ``x`` (levels),
    ``mean``, ``lo`` / ``hi`` (the 95% CI clamped to [0, 1]; an undefined bound, one trial,
    collapses onto the mean) and ``clean``: the deployed accuracy (no flips), where the curve
    starts at rate 0. Built on ``sweep_curves``; partial sweeps give shorter lists.
    """
    series = sweep_curves(points)
    dashed = list(dashed) if dashed is not None else [False] * len(labels)
    curves = []
    for i, (label, method) in enumerate(zip(labels, methods, strict=True)):
        m = series["models"][i] if series["models"] else {}
        mean = list(m.get("mean_accuracy", []))
        lo = [_unit(v) for v in m.get("ci95_low", [])]
        hi = [_unit(v) for v in m.get("ci95_high", [])]
        curves.append(
            {
                "label": label,
                "method": method,
                "dash": "dash" if dashed[i] else "solid",
                "x": list(series["levels"]),
                "mean": mean,
                "lo": [a if v is None else v for v, a in zip(lo, mean)],
                "hi": [a if v is None else v for v, a in zip(hi, mean)],
                "clean": m.get("deployed_accuracy"),
            }
        )
    return curves


def sweep(
    models: Sequence[nn.Module],
    X,
    y,
    fm: FaultModel,
    *,
    bers: Sequence[float],
    trials: int = 50,
    seed: int = 0,
    **options,
) -> dict:
    """BER sweep: ``ber`` list and, per model, mean accuracy with CI bounds (``sweep_curves``)."""
    curves = sweep_curves(
        iter_sweep(models, X, y, fm, bers=bers, trials=trials, seed=seed, **options)
    )
    return {"ber": curves["levels"], "models": curves["models"]}


def sweep_bits(
    model: nn.Module,
    X,
    y,
    fm: FaultModel,
    *,
    bits: Sequence[int] | None = None,
    trials: int = 20,
    seed: int = 0,
    **options,
) -> list[dict]:
    """Accuracy when only one bit position is eligible, for each position (default: all)."""
    positions = list(bits) if bits is not None else list(fm.bits)  # type: ignore[arg-type]
    out = []
    for b in positions:
        fm_b = replace(fm, bits=(b,))
        s = run_campaign(model, X, y, fm_b, trials=trials, seed=seed, **options).summary()
        out.append({"bit": b, **{k: s[k] for k in ("mean_accuracy", "ci95", "std", "mean_flips")}})
    return out


def sweep_layers(
    model: nn.Module, X, y, fm: FaultModel, *, trials: int = 20, seed: int = 0, **options
) -> list[dict]:
    """Accuracy when faults hit one layer at a time."""
    shapes = parameter_shapes(model)
    layers = []
    for n in eligible_parameters(shapes, fm):
        lay = n.rsplit(".", 1)[0]
        if lay not in layers:
            layers.append(lay)
    out = []
    for lay in layers:
        s = run_campaign(
            model, X, y, replace(fm, layers=(lay,)), trials=trials, seed=seed, **options
        ).summary()
        out.append(
            {
                "layer": lay,
                **{k: s[k] for k in ("mean_accuracy", "ci95", "std", "mean_flips", "n_sites")},
            }
        )
    return out
