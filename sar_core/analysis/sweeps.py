"""Sweeps of Monte Carlo campaigns: over bit error rates or flip counts (live), bit positions and
layers, and the curves a figure draws from them.

Every level of a sweep reuses the same trial seeds (common random numbers): see
``sar_core.analysis.campaign``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

import numpy as np
from torch import nn

from sar_core import limits
from sar_core.analysis.campaign import check_trials, compare, run_campaign
from sar_core.engine.checks import model_data
from sar_core.engine.montecarlo import MonteCarlo
from sar_core.faults.model import FaultModel, eligible_parameters, parameter_shapes
from sar_core.validate import check_float, check_int


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
            X, y = model_data(models[0], X, y) if models else (X, y)
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
