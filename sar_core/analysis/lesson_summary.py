"""The lesson's readings of its raw numbers: accuracy lost, paired verdicts, flatness over many
patterns, noise, the rates worth offering, and the int8 step of each model.

NumPy only (no torch): the dashboard reads a precomputed bundle through these functions without
loading torch. Every interval and verdict comes from :mod:`sar_core.stats` (one t quantile, one
win / tie / loss rule).

A *raw level* (what :func:`sar_core.analysis.lesson.measure` returns and the bundle stores) is::

    {"level": ber, "n_sites": int,
     "models": [{"clean_accuracy", "deployed_accuracy", "deployed_loss",
                 "accuracy": [per trial], "loss": [per trial, inf when not finite],
                 "flips": [hit sites per trial], "changed": [stored bits changed per trial]}]}

Model 0 is the reference (SGD); every model is hit by the same patterns (common random numbers).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sar_core.formats.bits import decode, encode, flip_codes, int8_scale
from sar_core.stats.intervals import clamp_unit, t_interval
from sar_core.stats.verdicts import verdict


@dataclass(frozen=True)
class Fault:
    """One entry of the lesson's format / bits choice."""

    label: str
    format: str
    bits: str | tuple[int, ...]


FAULTS = {  # the keys are what a shared link holds (?fault=float32-bit30)
    "int8": Fault("int8: all bits", "int8", "all"),
    "int8-sign": Fault("int8: sign bit", "int8", (7,)),
    "float32": Fault("float32: all bits", "float32", "all"),
    "float32-exponent": Fault("float32: exponent bits", "float32", "exponent"),
    "float32-bit30": Fault("float32: bit 30 only", "float32", (30,)),
    "float32-mantissa": Fault("float32: mantissa bits", "float32", "mantissa"),
    "float16": Fault("float16: all bits", "float16", "all"),
}
# every rate the lesson can measure: 1, 2, 3, 5 per decade from 1e-7 to 0.5
BERS = tuple(float(f"{m}e{e}") for e in range(-7, 0) for m in (1, 2, 3, 5))
QUICK_TRIALS = 20  # recomputed (or read from the bundle) on every change
PRECISE_TRIALS = 300  # the Precise run, streamed
STEPS = 41  # points of the loss curves
WORST_CANDIDATES = 12  # flips of the trial-0 pattern measured one at a time
LESSON_METHODS = ("sgd", "sar", "clip", "randbet", "asam")  # model 0 is the reference
BUNDLE_SCHEMA = 1


def lesson_paths(assets: str | Path) -> list[Path]:
    """The lesson's checkpoints in LESSON_METHODS order: the demo MLPs (assets/) and the
    defenses (assets/lesson/)."""
    a = Path(assets)
    out = []
    for m in LESSON_METHODS:
        p = a / f"digits_mlp_{m}.safetensors"
        out.append(p if p.is_file() else a / "lesson" / f"digits_mlp_{m}.safetensors")
    return out


def digest(data: bytes) -> str:
    """Short content digest of checkpoint bytes (the dashboard's cache key of a model)."""
    return hashlib.sha256(data).hexdigest()[:20]


CHANCE = 0.1  # ten digit classes
USEFUL_LOSS_PT = 0.5  # a rate is worth offering when some model loses at least this much...
USEFUL_FLIPS = 0.5  # ...at least half a flip per network lands on average...
USEFUL_ABOVE_CHANCE = 0.05  # ...and some model still beats chance by this much
WIGGLE_PT = 0.5  # a rise of a mean accuracy curve with the rate that a reader can see (points)


def _pt(s) -> dict:
    """A stats.Summary in percentage points, as a JSON-friendly dict."""
    return s.scaled(100.0).to_dict()


def _lost(m: Mapping) -> np.ndarray:
    """Per-trial accuracy lost to the faults: faulty - fault-free (deployed), as fractions."""
    return np.asarray(m["accuracy"], dtype=np.float64) - float(m["deployed_accuracy"])


def _rise(m: Mapping) -> np.ndarray:
    """Per-trial test-loss rise under the faults (inf when the faulty loss was not finite)."""
    loss = np.asarray(m["loss"], dtype=np.float64)
    return np.where(np.isfinite(loss), loss - float(m["deployed_loss"]), np.inf)


def compare_lost(a: Mapping, b: Mapping, *, no_flips: bool) -> dict:
    """Paired comparison of accuracy LOST by model b vs model a over the same patterns.

    ``state``: "no bits flipped" (no trial changed a stored bit), "too few trials",
    "no measurable difference" (the paired 95% interval spans 0), "loses less" / "loses more".
    The difference is in points; positive means b lost less than a.
    """
    d = _lost(b) - _lost(a)  # (trials,)
    s = t_interval(d)
    if no_flips:
        state = "no bits flipped"
    elif s.n < 2:
        state = "too few trials"
    else:
        state = {"win": "loses less", "loss": "loses more", "tie": "no measurable difference"}[
            verdict(s.lo, s.hi)
        ]
    return {"diff": _pt(s), "state": state}


def compare_rise(a: Mapping, b: Mapping, *, no_flips: bool) -> dict:
    """Paired comparison of the loss rise of b vs a over the same patterns (flatness along the
    moves faults make). ``state``: "no bits flipped", "too few trials", "infinite" (a trial's
    loss overflowed in either model), "no measurable difference", "flatter" / "sharper" (b's
    loss rose less / more, the whole paired 95% interval on one side of 0)."""
    ra, rb = _rise(a), _rise(b)
    finite = np.isfinite(ra) & np.isfinite(rb)
    d = rb[finite] - ra[finite]
    s = t_interval(d) if d.size else None
    if no_flips:
        state = "no bits flipped"
    elif not finite.all():
        state = "infinite"
    elif s is None or s.n < 2:
        state = "too few trials"
    else:
        v = verdict(s.lo, s.hi)
        state = {"win": "sharper", "loss": "flatter", "tie": "no measurable difference"}[v]
    return {
        "diff": None if s is None else s.to_dict(),
        "state": state,
        "nonfinite_trials": int((~finite).sum()),
        "trials": int(ra.size),
    }


def summarize_level(raw: Mapping) -> dict:
    """Per-model accuracy (mean, 95% CI), accuracy lost (points, 95% CI), loss rise, and each
    model's paired comparison with model 0 (accuracy lost, and flatness over the patterns)."""
    models = raw["models"]
    changed = np.asarray([m["changed"] for m in models], dtype=np.float64)  # (models, trials)
    no_flips = bool(changed.sum() == 0)
    out = []
    for i, m in enumerate(models):
        acc = t_interval(m["accuracy"])
        lost = t_interval(_lost(m))
        rise = _rise(m)
        out.append(
            {
                "clean_accuracy": float(m["clean_accuracy"]),
                "deployed_accuracy": float(m["deployed_accuracy"]),
                "mean_accuracy": acc.mean,
                "ci95": clamp_unit([acc.lo, acc.hi]),
                "lost": _pt(lost),
                "mean_rise": float(np.mean(rise)) if np.isfinite(rise).all() else math.inf,
                "trials": lost.n,
                "mean_flips": float(np.mean(m["flips"])),
                "mean_changed": float(np.mean(m["changed"])),
                "vs_first": None if i == 0 else compare_lost(models[0], m, no_flips=no_flips),
                "flat_vs_first": None if i == 0 else compare_rise(models[0], m, no_flips=no_flips),
            }
        )
    return {"level": float(raw["level"]), "no_flips": no_flips, "models": out}


def noise(levels: Sequence[Mapping], chosen: float) -> dict:
    """How noisy a quick curve is next to the differences it shows.

    ``wiggle``: the largest rise of any model's mean accuracy from one level to the next higher
    rate (points; more faults cannot help, so a rise is noise). ``halfwidth``: the widest 95%
    half-interval of accuracy lost at the chosen rate; ``spread``: the range of the models'
    mean accuracy lost there. ``warn`` when either the curves wiggle or the noise is wider than
    the spread it would have to separate.
    """
    levels = sorted(levels, key=lambda s: s["level"])
    wiggle = 0.0
    for a, b in zip(levels, levels[1:]):
        for ma, mb in zip(a["models"], b["models"]):
            wiggle = max(wiggle, 100 * (mb["mean_accuracy"] - ma["mean_accuracy"]))
    here = min(levels, key=lambda s: abs(math.log(s["level"] / chosen)))
    lost = [m["lost"] for m in here["models"]]
    halves = [(x["hi"] - x["lo"]) / 2 for x in lost if math.isfinite(x["hi"] - x["lo"])]
    half = max(halves, default=0.0)
    spread = max(x["mean"] for x in lost) - min(x["mean"] for x in lost)
    return {
        "wiggle": wiggle,
        "halfwidth": half,
        "spread": spread,
        "warn": (wiggle > WIGGLE_PT or half > spread) and not here["no_flips"],
    }


def useful_rates(levels: Sequence[Mapping]) -> list[float]:
    """The contiguous run of rates where something happens (no "0% vs 0%" dead ends).

    A rate counts when at least ``USEFUL_FLIPS`` stored bits change per network on average, some
    model loses at least ``USEFUL_LOSS_PT`` points, and some model still beats chance by
    ``USEFUL_ABOVE_CHANCE``. The offer runs from the first such rate to the last.
    """
    levels = sorted(levels, key=lambda s: s["level"])
    ok = [
        s["models"][0]["mean_changed"] >= USEFUL_FLIPS
        and max(-m["lost"]["mean"] for m in s["models"]) >= USEFUL_LOSS_PT
        and max(m["mean_accuracy"] for m in s["models"]) >= CHANCE + USEFUL_ABOVE_CHANCE
        for s in levels
    ]
    if not any(ok):
        return []
    first, last = ok.index(True), len(ok) - 1 - ok[::-1].index(True)
    return [s["level"] for s in levels[first : last + 1]]


def int8_steps(weights: Mapping[str, np.ndarray]) -> dict:
    """int8 per-tensor step s = max|w| / 127 of every weight tensor and how far one bit-7 (sign)
    flip moves a weight, measured by encoding, flipping and decoding (sar_core.formats.bits).

    Returns the largest step over the tensors, the largest and the median |move| of one bit-7
    flip over all weights, and the largest |w|.
    """
    steps, moves, top = [], [], 0.0
    for w in weights.values():
        w = np.asarray(w, dtype=np.float32)
        s = int8_scale(w)  # per tensor
        codes = encode(w, "int8", s)
        moved = decode(flip_codes(codes, 7), "int8", s) - decode(codes, "int8", s)
        steps.append(float(np.max(s)))
        moves.append(np.abs(moved.astype(np.float64)).ravel())
        top = max(top, float(np.max(np.abs(w))))
    allm = np.concatenate(moves)
    return {
        "max_abs_w": top,
        "step": max(steps),
        "bit7_move_max": float(allm.max()),
        "bit7_move_median": float(np.median(allm)),
    }


def check_bundle(bundle: Mapping, digests: Sequence[str], *, seed: int) -> bool:
    """True when ``bundle`` was computed from exactly these checkpoints at this seed."""
    return (
        bundle.get("schema") == BUNDLE_SCHEMA
        and list(bundle.get("digests", [])) == list(digests)
        and bundle.get("seed") == seed
    )
