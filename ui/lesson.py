"""The lesson's computations: SGD and SAR under the same sampled faults, cheap enough to rerun on
every slider move (the demo MLPs: well under a second at the quick trial count).

Everything is seeded: trial t of every campaign uses rng([seed, t]) (sar_core.campaign), and the
fault drawn along the fault direction and for the "flip that hurt most" is trial 0, so a shared
link recomputes the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import streamlit as st

from sar_core.bits import get_format, to_bitstring
from sar_core.campaign import iter_sweep
from sar_core.evaluate import evaluate
from sar_core.faults import FaultModel, FaultPattern, Injector
from ui.cache import dataset
from ui.layout import clip01
from ui.registry import Entry


@dataclass(frozen=True)
class Fault:
    """One entry of the lesson's format / bits choice."""

    label: str
    format: str
    bits: str | tuple[int, ...]


FAULTS = {  # the labels are also what a shared link holds (?fault=float32%3A+bit+30+only)
    "int8": Fault("int8: all bits", "int8", "all"),
    "int8-sign": Fault("int8: sign bit", "int8", (7,)),
    "float32": Fault("float32: all bits", "float32", "all"),
    "float32-exponent": Fault("float32: exponent bits", "float32", "exponent"),
    "float32-bit30": Fault("float32: bit 30 only", "float32", (30,)),
    "float32-mantissa": Fault("float32: mantissa bits", "float32", "mantissa"),
    "float16": Fault("float16: all bits", "float16", "all"),
}
# every BER the slider offers: 1, 2, 3, 5 per decade from 1e-7 to 0.5
BERS = tuple(float(f"{m}e{e}") for e in range(-7, 0) for m in (1, 2, 3, 5))
QUICK_TRIALS = 20  # recomputed on every change (no button)
PRECISE_TRIALS = 300  # the "precise" button
STEPS = 41  # points of the two loss curves


def fault_model(key: str, ber: float) -> FaultModel:
    """The FaultModel of a choice at a BER (weights only, biases excluded, as everywhere)."""
    f = FAULTS[key]
    return FaultModel(format=f.format, bits=f.bits, ber=ber)


def levels_around(ber: float) -> list[float]:
    """The chart's BER levels: a decade below the chosen BER up to three times it (at most 1)."""
    return sorted({ber / 10, ber / 3, ber, min(3 * ber, 1.0)})


def _keys(entries: Sequence[Entry]) -> tuple[str, ...]:
    return tuple(e.key for e in entries)


@st.cache_data(show_spinner=False, max_entries=256)
def _sweep(keys, _models, data_key, fm_dict, levels, trials, seed) -> list[dict]:
    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    out = []
    for level, summaries in iter_sweep(
        _models, data.X_test, data.y_test, fm, bers=list(levels), trials=trials, seed=seed
    ):
        out.append({"level": level, "summaries": summaries})
    return out


def sweep(entries: Sequence[Entry], fm: FaultModel, *, trials: int, seed: int) -> list[dict]:
    """Paired campaigns at ``levels_around(fm.ber)``: [{level, summaries (one per model)}]."""
    levels = tuple(levels_around(fm.ber))
    models = [e.model for e in entries]
    return _sweep(_keys(entries), models, entries[0].data_key, fm.to_dict(), levels, trials, seed)


def curves(entries: Sequence[Entry], points: list[dict]) -> list[dict]:
    """sar_core.plots.robustness.sweep_figure curves (CI bounds clamped to [0, 1])."""
    out = []
    for i, e in enumerate(entries):
        per = [p["summaries"][i] for p in points]
        mean = [s["mean_accuracy"] for s in per]
        lo = [clip01(s["ci95"][0]) for s in per]
        hi = [clip01(s["ci95"][1]) for s in per]
        out.append(
            {
                "label": e.name.replace("demo · ", ""),
                "method": e.method,
                "x": [p["level"] for p in points],
                "mean": mean,
                "lo": [m if v is None else v for v, m in zip(lo, mean)],
                "hi": [m if v is None else v for v, m in zip(hi, mean)],
                "clean": per[0]["deployed_accuracy"],
            }
        )
    return out


def at_level(points: list[dict], ber: float) -> list[dict]:
    """The per-model summaries at the chosen BER."""
    return next(p["summaries"] for p in points if math.isclose(p["level"], ber, rel_tol=1e-9))


# --- loss curves ------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _fault_slice(key, _model, data_key, fm_dict, seed) -> dict:
    from sar_core.landscape import fault_direction_slice

    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    return fault_direction_slice(_model, data.X_test, data.y_test, fm, seed=seed, steps=STEPS)


@st.cache_data(show_spinner=False, max_entries=64)
def _random_slice(key, _model, data_key, seed) -> dict:
    from sar_core import landscape as L

    data = dataset(*data_key)
    d = L.random_direction(_model, seed)
    return L.slice_1d(_model, data.X_test, data.y_test, d, steps=STEPS, span=1.0)


def fault_slices(entries: Sequence[Entry], fm: FaultModel, *, seed: int) -> list[dict]:
    """Loss along each model's real sampled fault (trial 0: the same sites for every model)."""
    return [
        {
            **_fault_slice(e.key, e.model, e.data_key, fm.to_dict(), seed),
            "label": "",
            "method": e.method,
        }
        for e in entries
    ]


def random_slices(entries: Sequence[Entry], *, seed: int) -> list[dict]:
    """Loss along one seeded filter-normalized random direction (same raw draw for each)."""
    return [
        {**_random_slice(e.key, e.model, e.data_key, seed), "label": "", "method": e.method}
        for e in entries
    ]


# --- the flip that hurt most ------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _worst_flip(keys, _models, data_key, fm_dict, seed, candidates) -> dict | None:
    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    injectors = [Injector(m, fm) for m in _models]
    pattern = injectors[0].sample(np.random.default_rng([seed, 0]))  # the fault-direction draw
    sites = [
        (n, int(i), int(b)) for n, (idx, bits) in pattern.sites.items() for i, b in zip(idx, bits)
    ]
    if not sites:
        return None
    base = injectors[0].deployed()
    # rank by how far each flip moves the first model's weight (non-finite first), then measure
    # the test loss of the largest few exactly, one flip at a time
    moved = []
    for n, i, b in sites:
        single = FaultPattern({n: (np.array([i]), np.array([b]))}, 1, pattern.n_sites)
        after = float(injectors[0].apply(single)[n].reshape(-1)[i])
        d = abs(after - float(base[n].reshape(-1)[i]))
        moved.append((math.inf if not math.isfinite(d) else d, n, i, b, single))
    moved.sort(key=lambda t: -t[0])
    best = None
    for _, n, i, b, single in moved[:candidates]:
        loss = evaluate(_models[0], data.X_test, data.y_test, injectors[0].apply(single)).loss
        score = math.inf if not math.isfinite(loss) else loss
        if best is None or score > best[0]:
            best = (score, n, i, b, single)
    _, n, i, b, single = best
    width = get_format(fm.format).width
    per_model = []
    for m, inj in zip(_models, injectors):
        before = float(inj.deployed()[n].reshape(-1)[i])
        faulty = inj.apply(single)
        after = float(faulty[n].reshape(-1)[i])
        per_model.append(
            {
                "before": before,
                "after": after,
                "bits_before": _bits(before, fm, inj, n, i, width),
                "bits_after": _bits(after, fm, inj, n, i, width, flip=b),
                "loss_deployed": evaluate(m, data.X_test, data.y_test, inj.deployed()).loss,
                "loss_after": evaluate(m, data.X_test, data.y_test, faulty).loss,
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


def _bits(value: float, fm: FaultModel, inj: Injector, name: str, i: int, width: int, flip=None):
    """The stored bits of one element (its code, XOR the flipped bit when ``flip`` is given)."""
    from sar_core.bits import encode, int8_scale

    if fm.format == "int8":  # the element's stored code, from the deployed value and its scale
        w = inj.deployed()[name].numpy()
        s = int8_scale(w, fm.granularity)
        scale = float(np.broadcast_to(s, w.shape).reshape(-1)[i])
        code = int(encode(np.array([w.reshape(-1)[i]], dtype=np.float32), "int8", scale)[0])
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            w = inj.deployed()[name].numpy().reshape(-1)[i]
        code = int(encode(np.array([w], dtype=np.float32), fm.format)[0])
    if flip is not None:
        code ^= 1 << flip
    return to_bitstring(code, width)


def worst_flip(entries: Sequence[Entry], fm: FaultModel, *, seed: int) -> dict | None:
    """The single flip of the trial-0 pattern that raised the first model's test loss most
    (among the 12 flips that moved a weight furthest), and the same site in every model."""
    models = [e.model for e in entries]
    return _worst_flip(_keys(entries), models, entries[0].data_key, fm.to_dict(), seed, 12)


# --- the Hessian vs the fault direction -------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=32)
def _lambda_max(key, _model, data_key) -> float:
    from sar_core.sharpness import hessian_eigenvalues

    data = dataset(*data_key)
    return float(hessian_eigenvalues(_model, data.X_test, data.y_test, iters=100, seed=0)[0])


def lambda_max(entry: Entry) -> float:
    """Top Hessian eigenvalue of the test loss (power iteration; cached per model)."""
    return _lambda_max(entry.key, entry.model, entry.data_key)


@st.cache_data(show_spinner=False, max_entries=256)
def _fault_rise(key, _model, data_key, fm_dict, trials, seed) -> dict:
    from sar_core.sharpness import fault_sharpness

    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    return fault_sharpness(_model, data.X_test, data.y_test, fm, trials=trials, seed=seed)


def fault_rise(entry: Entry, fm: FaultModel, *, trials: int, seed: int) -> dict:
    """Expected test-loss rise under the fault model (sar_core.sharpness.fault_sharpness)."""
    return _fault_rise(entry.key, entry.model, entry.data_key, fm.to_dict(), trials, seed)
