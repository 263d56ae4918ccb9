"""Monte Carlo fault-injection campaigns: trials, statistics, sweeps, paired comparisons.

Trial t of a campaign with seed s uses the pattern drawn from rng([s, t]); a pattern depends only
on shapes and that seed, so every model of the same architecture is hit by the same faults
(common random numbers), and every BER of a sweep reuses the same trial seeds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import stats
from torch import nn

from sar_core import limits
from sar_core.evaluate import as_tensors, evaluate, model_device
from sar_core.faults import FaultModel, Injector, parameter_shapes
from sar_core.validate import check_float, check_int


def summarize(values: Sequence[float]) -> dict:
    """Mean, std (ddof=1), 95% t-interval of the mean, and quantiles (std, CI NaN when n < 2)."""
    v = np.asarray(values, dtype=np.float64)
    n = v.size
    if n == 0:
        raise ValueError("Invalid values=[]: need at least one trial to summarise")
    mean = float(v.mean())
    # one trial says nothing about spread: std and the interval are undefined (NaN), not zero
    std = float(v.std(ddof=1)) if n > 1 else float("nan")
    half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95]) if np.isfinite(v).all() else [np.nan] * 5
    return {
        "mean": mean,
        "std": std,
        "ci95": [mean - half, mean + half],
        "n": int(n),
        "quantiles": {k: float(x) for k, x in zip(("q05", "q25", "q50", "q75", "q95"), q)},
    }


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
    flips: list[int] = field(default_factory=list)

    def summary(self) -> dict:
        """Statistics of the per-trial accuracies and flip counts."""
        s = summarize(self.accuracy)
        return {
            "clean_accuracy": self.clean_accuracy,
            "deployed_accuracy": self.deployed_accuracy,
            "mean_accuracy": s["mean"],
            "std": s["std"],
            "ci95": s["ci95"],
            "quantiles": s["quantiles"],
            "trials": s["n"],
            "mean_flips": float(np.mean(self.flips)),
            "n_sites": self.n_sites,
            "nonfinite_loss_trials": int(np.sum(~np.isfinite(self.loss))),
            "fault_model": self.fault_model.to_dict(),
        }

    def rows(self) -> list[dict]:
        """One row per trial (for CSV export)."""
        return [
            {"trial": i, "accuracy": a, "loss": loss, "flips": f}
            for i, (a, loss, f) in enumerate(zip(self.accuracy, self.loss, self.flips))
        ]


def _xy(model: nn.Module, X, y):
    if isinstance(X, torch.Tensor) and isinstance(y, torch.Tensor):
        return X, y
    return as_tensors(X, y, model_device(model))


def iter_compare(
    models: Sequence[nn.Module], X, y, fm: FaultModel, *, trials: int = 100, seed: int = 0
) -> Iterator[list[CampaignResult]]:
    """Run trials on several models with identical patterns; yield the growing results per trial."""
    trials = check_trials(trials)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    if not models:
        raise ValueError("Invalid models=[]: give at least one model")
    shapes = parameter_shapes(models[0])
    for i, m in enumerate(models[1:], start=1):
        if parameter_shapes(m) != shapes:
            raise ValueError(
                f"Invalid models: model {i} has other parameter shapes than model 0; paired "
                "comparison needs the same architecture"
            )
    X, y = _xy(models[0], X, y)
    injectors = [Injector(m, fm) for m in models]
    results = [
        CampaignResult(
            fm, evaluate(m, X, y).accuracy, evaluate(m, X, y, inj.deployed()).accuracy, inj.n_sites
        )
        for m, inj in zip(models, injectors)
    ]
    for t in range(trials):
        pattern = injectors[0].sample(np.random.default_rng([seed, t]))
        for m, inj, res in zip(models, injectors, results):
            s = evaluate(m, X, y, inj.apply(pattern))
            res.accuracy.append(s.accuracy)
            res.loss.append(s.loss)
            res.flips.append(pattern.n_flips)
        yield results


def _last(it):
    out = None
    for out in it:  # noqa: B007
        pass
    return out


def run_campaign(
    model: nn.Module, X, y, fm: FaultModel, *, trials: int = 100, seed: int = 0
) -> CampaignResult:
    """``trials`` independent fault patterns on one model."""
    return _last(iter_compare([model], X, y, fm, trials=trials, seed=seed))[0]


def paired_difference(a: CampaignResult, b: CampaignResult) -> dict:
    """Mean and 95% CI of accuracy(b) - accuracy(a) over shared trials."""
    d = np.asarray(b.accuracy) - np.asarray(a.accuracy)
    s = summarize(d)
    return {"mean": s["mean"], "std": s["std"], "ci95": s["ci95"], "n": s["n"]}


def compare(
    models: Sequence[nn.Module], X, y, fm: FaultModel, *, trials: int = 100, seed: int = 0
) -> dict:
    """Paired comparison: per-model results and each model's difference against the first."""
    results = _last(iter_compare(models, X, y, fm, trials=trials, seed=seed))
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
) -> Iterator[tuple[float, list[dict]]]:
    """For each BER (or flip count), yield (level, per-model summaries) — a live BER sweep."""
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
    for level in levels:
        fm_l = fm.with_rate(ber=level) if bers is not None else fm.with_rate(count=int(level))
        res = compare(models, X, y, fm_l, trials=trials, seed=seed)
        out = []
        for r, d in zip(res["results"], res["paired_difference"]):
            s = r.summary()
            s["paired_difference"] = d
            out.append(s)
        yield level, out


def sweep(
    models: Sequence[nn.Module],
    X,
    y,
    fm: FaultModel,
    *,
    bers: Sequence[float],
    trials: int = 50,
    seed: int = 0,
) -> dict:
    """BER sweep: ``ber`` list and, per model, mean accuracy with CI bounds."""
    levels, per = [], [[] for _ in models]
    for level, summaries in iter_sweep(models, X, y, fm, bers=bers, trials=trials, seed=seed):
        levels.append(level)
        for lst, s in zip(per, summaries):
            lst.append(s)
    return {
        "ber": levels,
        "models": [
            {
                "mean_accuracy": [s["mean_accuracy"] for s in lst],
                "ci95_low": [s["ci95"][0] for s in lst],
                "ci95_high": [s["ci95"][1] for s in lst],
                "deployed_accuracy": lst[0]["deployed_accuracy"],
            }
            for lst in per
        ],
    }


def sweep_bits(
    model: nn.Module,
    X,
    y,
    fm: FaultModel,
    *,
    bits: Sequence[int] | None = None,
    trials: int = 20,
    seed: int = 0,
) -> list[dict]:
    """Accuracy when only one bit position is eligible, for each position (default: all)."""
    from dataclasses import replace

    positions = list(bits) if bits is not None else list(fm.bits)  # type: ignore[arg-type]
    out = []
    for b in positions:
        s = run_campaign(model, X, y, replace(fm, bits=(b,)), trials=trials, seed=seed).summary()
        out.append({"bit": b, **{k: s[k] for k in ("mean_accuracy", "ci95", "std", "mean_flips")}})
    return out


def sweep_layers(
    model: nn.Module, X, y, fm: FaultModel, *, trials: int = 20, seed: int = 0
) -> list[dict]:
    """Accuracy when faults hit one layer at a time."""
    from dataclasses import replace

    from sar_core.faults import eligible_parameters

    shapes = parameter_shapes(model)
    layers = []
    for n in eligible_parameters(shapes, fm):
        lay = n.rsplit(".", 1)[0]
        if lay not in layers:
            layers.append(lay)
    out = []
    for lay in layers:
        s = run_campaign(
            model, X, y, replace(fm, layers=(lay,)), trials=trials, seed=seed
        ).summary()
        out.append(
            {
                "layer": lay,
                **{k: s[k] for k in ("mean_accuracy", "ci95", "std", "mean_flips", "n_sites")},
            }
        )
    return out
