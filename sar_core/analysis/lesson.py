"""The lesson's measurements: several models of one architecture under the same sampled faults.

Everything is seeded: trial t of every level uses rng([seed, t]) (sar_core.engine.montecarlo), so
every model and every rate of a curve is hit by the same patterns, and a shared link recomputes
the same numbers. The fault drawn along the fault direction and for "the flip that hurt most" is
trial 0. :func:`build_bundle` precomputes the quick numbers of every fault choice at seed 0, so
the dashboard can answer a slider move by reading, not computing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from torch import nn

from sar_core.analysis.landscape import fault_direction_slice, random_direction, slice_1d
from sar_core.analysis.lesson_summary import (
    BERS,
    BUNDLE_SCHEMA,
    FAULTS,
    QUICK_TRIALS,
    STEPS,
    WORST_CANDIDATES,
    digest,
    int8_steps,
    summarize_level,
    useful_rates,
)
from sar_core.engine.evaluate import as_tensors, evaluate, model_device
from sar_core.engine.montecarlo import MonteCarlo
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel, FaultPattern
from sar_core.formats.bits import decode, encode, flip_codes, get_format, int8_scale, to_bitstring
from sar_core.validate import check_choice, check_int


def fault_model(key: str, ber: float) -> FaultModel:
    """The FaultModel of a choice at a rate (weights only, biases excluded, as everywhere)."""
    check_choice("fault", key, tuple(FAULTS))
    f = FAULTS[key]
    return FaultModel(format=f.format, bits=f.bits, ber=ber)


def _xy(models, X, y):
    return as_tensors(X, y, model_device(models[0]))


# --- campaigns ------------------------------------------------------------------------------


def iter_measure(
    models: Sequence[nn.Module],
    X,
    y,
    fm: FaultModel,
    *,
    trials: int,
    seed: int,
    chunk: int = 25,
) -> Iterator[dict]:
    """A paired campaign that yields its growing raw level every ``chunk`` trials (streaming).

    Trial t uses rng([seed, t]); stopping early leaves the first trials of the full campaign.
    """
    trials = check_int("trials", trials, low=1, high=100_000)
    chunk = check_int("chunk", chunk, low=1, high=100_000)
    X, y = _xy(models, X, y)
    # "full" (dense forward passes): for the digits MLP at int8 3 % it measured ~10x faster than
    # the "batched" evaluator that "auto" picks (thousands of changed weights per trial)
    mc = MonteCarlo(list(models), X, y, fm, evaluator="full")
    raw = {
        "level": fm.ber,
        "n_sites": mc.n_sites,
        "models": [
            {
                "clean_accuracy": c[0],
                "deployed_accuracy": d[0],
                "deployed_loss": d[1],
                "accuracy": [],
                "loss": [],
                "flips": [],
                "changed": [],
            }
            for c, d in zip(mc.clean, mc.deployed)
        ],
    }
    for start in range(0, trials, chunk):
        for t in mc.run(min(chunk, trials - start), seed=seed, start=start):
            for i, m in enumerate(raw["models"]):
                m["accuracy"].append(float(t.accuracy[i]))
                m["loss"].append(float(t.loss[i]) if math.isfinite(t.loss[i]) else math.inf)
                m["flips"].append(int(t.n_flips[i]))
                m["changed"].append(int(t.n_changed[i]))
        yield raw


def measure(models: Sequence[nn.Module], X, y, fm: FaultModel, *, trials: int, seed: int) -> dict:
    """The raw level of a paired campaign (see sar_core.analysis.lesson_summary)."""
    out = None
    for out in iter_measure(models, X, y, fm, trials=trials, seed=seed, chunk=trials):  # noqa: B007
        pass
    return out


# --- loss curves -----------------------------------------------------------------------------

_SLICE_KEYS = ("alphas", "loss", "fault_loss", "deployed_loss", "n_flips", "nonfinite")


def fault_slices(models: Sequence[nn.Module], X, y, fm: FaultModel, *, seed: int) -> list[dict]:
    """Loss along each model's real sampled fault (trial 0: the same sites in every model)."""
    X, y = _xy(models, X, y)
    out = []
    for m in models:
        s = fault_direction_slice(m, X, y, fm, seed=seed, steps=STEPS)
        out.append({k: s[k] for k in _SLICE_KEYS})
    return out


def random_slices(models: Sequence[nn.Module], X, y, *, seed: int) -> list[dict]:
    """Loss along one seeded filter-normalized random direction (the same raw draw for each)."""
    X, y = _xy(models, X, y)
    return [
        {"alphas": s["alphas"], "loss": s["loss"]}
        for s in (
            slice_1d(m, X, y, random_direction(m, seed), steps=STEPS, span=1.0) for m in models
        )
    ]


# --- the flip that hurt most -----------------------------------------------------------------


def _stored(model: nn.Module, name: str, fm: FaultModel):
    """One parameter's stored codes (flat) and int8 scales (flat, or None), as Injector stores
    them: the scale comes from the model's own weights."""
    w = dict(model.named_parameters())[name].detach().cpu().numpy()
    s = int8_scale(w, fm.granularity) if fm.format == "int8" else None
    codes = encode(w, fm.format, s).reshape(-1)
    return codes, None if s is None else np.broadcast_to(s, w.shape).reshape(-1)


def _flip_one(codes, scale, fm: FaultModel, i: int, bit: int) -> tuple[float, float, int, int]:
    """(before, after, code before, code after) of flipping ``bit`` of element ``i``."""
    c0 = codes[i : i + 1]
    c1 = flip_codes(c0, bit)
    sc = None if scale is None else scale[i : i + 1]
    with np.errstate(over="ignore", invalid="ignore"):
        v0, v1 = float(decode(c0, fm.format, sc)[0]), float(decode(c1, fm.format, sc)[0])
    return v0, v1, int(c0[0]), int(c1[0])


def worst_flip(models: Sequence[nn.Module], X, y, fm: FaultModel, *, seed: int) -> dict | None:
    """The single flip of the trial-0 pattern that raised model 0's test loss most (among the
    WORST_CANDIDATES flips that moved its weight furthest), and the same site in every model.
    None when the pattern flips nothing."""
    X, y = _xy(models, X, y)
    injectors = [Injector(m, fm) for m in models]
    pattern = injectors[0].sample(np.random.default_rng([seed, 0]))  # the fault-direction draw
    if pattern.n_flips == 0:
        return None
    moves = []
    for name, (idx, bits) in pattern.sites.items():
        codes, scale = _stored(models[0], name, fm)
        for i, b in zip(idx, bits):
            v0, v1, _, _ = _flip_one(codes, scale, fm, int(i), int(b))
            d = abs(v1 - v0)
            moves.append((d if math.isfinite(d) else math.inf, name, int(i), int(b)))
    moves.sort(key=lambda t: -t[0])
    best = None
    for _, n, i, b in moves[:WORST_CANDIDATES]:
        single = FaultPattern({n: (np.array([i]), np.array([b]))}, 1, pattern.n_sites)
        loss = evaluate(models[0], X, y, injectors[0].apply(single)).loss
        score = loss if math.isfinite(loss) else math.inf
        if best is None or score > best[0]:
            best = (score, n, i, b, single)
    _, n, i, b, single = best
    width = get_format(fm.format).width
    per_model = []
    for m, inj in zip(models, injectors):
        v0, v1, c0, c1 = _flip_one(*_stored(m, n, fm), fm, i, b)
        per_model.append(
            {
                "before": v0,
                "after": v1,
                "bits_before": to_bitstring(c0, width),
                "bits_after": to_bitstring(c1, width),
                "loss_deployed": evaluate(m, X, y, inj.deployed()).loss,
                "loss_after": evaluate(m, X, y, inj.apply(single)).loss,
            }
        )
    return {
        "param": n,
        "index": i,
        "bit": b,
        "flips": pattern.n_flips,
        "format": fm.format,
        "models": per_model,
    }


# --- per-model facts -------------------------------------------------------------------------


def weight_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The weight tensors a lesson fault can hit (biases excluded, as in every fault model)."""
    return {n: p.detach().cpu().numpy() for n, p in model.named_parameters() if p.ndim >= 2}


def lambda_max(model: nn.Module, X, y) -> float:
    """Top Hessian eigenvalue of the test loss (Lanczos, sar_core.analysis.sharpness)."""
    from sar_core.analysis.sharpness import hessian_eigenvalues

    X, y = _xy([model], X, y)
    return float(hessian_eigenvalues(model, X, y, iters=100, seed=0)[0])


def static(models: Sequence[nn.Module], X, y, *, seed: int) -> dict:
    """Per-model facts that do not depend on the fault: int8 steps, the random-direction
    slices, and the top Hessian eigenvalue."""
    return {
        "int8": [int8_steps(weight_arrays(m)) for m in models],
        "random_slices": random_slices(models, X, y, seed=seed),
        "lambda_max": [lambda_max(m, X, y) for m in models],
    }


def setting(models: Sequence[nn.Module], X, y, fault: str, ber: float, *, seed: int) -> dict:
    """What the lesson draws for one (fault, rate) besides the curve: the loss along the real
    fault for each model and the flip that hurt model 0 most."""
    fm = fault_model(fault, ber)
    return {
        "fault_slices": fault_slices(models, X, y, fm, seed=seed),
        "worst": worst_flip(models, X, y, fm, seed=seed),
    }


def build_bundle(paths: Sequence[str | Path], *, seed: int = 0, trials: int = QUICK_TRIALS) -> dict:
    """The lesson's quick numbers for every fault choice, precomputed at ``seed``.

    levels[fault][ber]: the raw level at every rate of BERS; rates[fault]: the rates offered
    (useful_rates); settings[fault][ber]: fault slices and the worst flip at each offered rate;
    static: per-model int8 steps and the random-direction slices. ``digests`` names the
    checkpoints (content digests, in LESSON_METHODS order): a reader ignores the bundle when they
    differ from the files it has.
    """
    from sar_core.data.datasets import load_dataset
    from sar_core.data.io import load_checkpoint

    raws = [Path(p).read_bytes() for p in paths]
    cks = [load_checkpoint(r) for r in raws]
    models = [c.model for c in cks]
    data = load_dataset(
        str(cks[0].meta["dataset"]["name"]), seed=int(cks[0].meta["dataset"]["seed"])
    )
    X, y = _xy(models, data.X_test, data.y_test)
    levels, rates, settings = {}, {}, {}
    for key in FAULTS:
        raw = {
            b: measure(models, X, y, fault_model(key, b), trials=trials, seed=seed) for b in BERS
        }
        levels[key] = {repr(b): r for b, r in raw.items()}
        rates[key] = useful_rates([summarize_level(r) for r in raw.values()])
        settings[key] = {repr(b): setting(models, X, y, key, b, seed=seed) for b in rates[key]}
    return {
        "schema": BUNDLE_SCHEMA,
        "seed": seed,
        "trials": trials,
        "digests": [digest(r) for r in raws],
        "methods": [c.method for c in cks],
        "levels": levels,
        "rates": rates,
        "settings": settings,
        "static": static(models, X, y, seed=seed),
    }
