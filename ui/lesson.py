"""The lesson's computations: SGD and SAR under the same sampled faults, cheap enough to rerun on
every slider move (the demo MLPs: well under a second at the quick trial count).

Everything is seeded: trial t of every campaign uses rng([seed, t]) (sar_core.analysis.campaign), and the
fault drawn along the fault direction and for the "flip that hurt most" is trial 0, so a shared
link recomputes the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import streamlit as st

from sar_core.engine.evaluate import evaluate
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel, FaultPattern
from sar_core.formats.bits import decode, encode, get_format, int8_scale, to_bitstring
from ui.cache import dataset
from ui.compute import model_keys, paired_campaign
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
    """The chart's BER levels: three slider steps below the chosen BER and one above.

    Neighbouring slider positions share most levels, and each level is cached on its own, so a
    one-step move computes one new level, not a whole sweep.
    """
    k = min(range(len(BERS)), key=lambda j: abs(math.log(BERS[j] / ber)))
    near = [BERS[j] for j in range(max(k - 3, 0), min(k + 2, len(BERS)))]
    return sorted(set(near) | {ber})


def sweep(entries: Sequence[Entry], fm: FaultModel, *, trials: int, seed: int) -> list[dict]:
    """Paired campaigns at ``levels_around(fm.ber)``: [{level, summaries (one per model)}].

    Trial t of every level uses rng([seed, t]) (sar_core.analysis.campaign), as in a sweep.
    """
    return [
        {
            "level": lv,
            "summaries": paired_campaign(entries, fm.with_rate(ber=lv), trials=trials, seed=seed),
        }
        for lv in levels_around(fm.ber)
    ]


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
    from sar_core.analysis.landscape import fault_direction_slice

    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    return fault_direction_slice(_model, data.X_test, data.y_test, fm, seed=seed, steps=STEPS)


@st.cache_data(show_spinner=False, max_entries=64)
def _random_slice(key, _model, data_key, seed) -> dict:
    from sar_core.analysis import landscape as L

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


def _stored(model, name: str, fm: FaultModel) -> tuple[np.ndarray, np.ndarray | None]:
    """One parameter's stored codes (flat) and int8 scales (flat, or None), as Injector makes
    them: the scale comes from the model's own weights."""
    w = dict(model.named_parameters())[name].detach().cpu().numpy()
    s = int8_scale(w, fm.granularity) if fm.format == "int8" else None
    codes = encode(w, fm.format, s).reshape(-1)
    return codes, None if s is None else np.broadcast_to(s, w.shape).reshape(-1)


def _decode(codes: np.ndarray, fm: FaultModel, scale: np.ndarray | None) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return decode(codes, fm.format, scale).astype(np.float64)


def _moves(model, pattern, fm: FaultModel) -> list[tuple[float, str, int, int]]:
    """(|Δw|, parameter, index, bit) of every flip of a pattern, taken one at a time (vectorized:
    no faulty copy of the model per flip); non-finite moves count as infinite."""
    out = []
    for name, (idx, bits) in pattern.sites.items():
        codes, scale = _stored(model, name, fm)
        c0 = codes[idx]
        c1 = c0 ^ np.left_shift(np.ones_like(c0), bits.astype(c0.dtype))
        sc = None if scale is None else scale[idx]
        d = np.abs(_decode(c1, fm, sc) - _decode(c0, fm, sc))
        d = np.where(np.isfinite(d), d, np.inf)
        out += [(float(v), name, int(i), int(b)) for v, i, b in zip(d, idx, bits)]
    return sorted(out, key=lambda t: -t[0])


@st.cache_data(show_spinner=False, max_entries=256)
def _worst_flip(keys, _models, data_key, fm_dict, seed, candidates) -> dict | None:
    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    injectors = [Injector(m, fm) for m in _models]
    pattern = injectors[0].sample(np.random.default_rng([seed, 0]))  # the fault-direction draw
    if pattern.n_flips == 0:
        return None
    # rank the flips by how far each moves the first model's weight, then measure the test
    # loss of the largest few exactly, one flip at a time
    best = None
    for _, n, i, b in _moves(_models[0], pattern, fm)[:candidates]:
        single = FaultPattern({n: (np.array([i]), np.array([b]))}, 1, pattern.n_sites)
        loss = evaluate(_models[0], data.X_test, data.y_test, injectors[0].apply(single)).loss
        score = math.inf if not math.isfinite(loss) else loss
        if best is None or score > best[0]:
            best = (score, n, i, b, single)
    _, n, i, b, single = best
    width = get_format(fm.format).width
    per_model = []
    for m, inj in zip(_models, injectors):
        codes, scale = _stored(m, n, fm)
        c0 = codes[i : i + 1]
        c1 = c0 ^ np.left_shift(np.ones_like(c0), np.array([b], dtype=c0.dtype))
        sc = None if scale is None else scale[i : i + 1]
        per_model.append(
            {
                "before": float(_decode(c0, fm, sc)[0]),
                "after": float(_decode(c1, fm, sc)[0]),
                "bits_before": to_bitstring(int(c0[0]), width),
                "bits_after": to_bitstring(int(c1[0]), width),
                "loss_deployed": evaluate(m, data.X_test, data.y_test, inj.deployed()).loss,
                "loss_after": evaluate(m, data.X_test, data.y_test, inj.apply(single)).loss,
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


def worst_flip(entries: Sequence[Entry], fm: FaultModel, *, seed: int) -> dict | None:
    """The single flip of the trial-0 pattern that raised the first model's test loss most
    (among the 12 flips that moved a weight furthest), and the same site in every model."""
    models = [e.model for e in entries]
    return _worst_flip(model_keys(entries), models, entries[0].data_key, fm.to_dict(), seed, 12)


# --- the Hessian vs the fault direction -------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=32)
def _lambda_max(key, _model, data_key) -> float:
    from sar_core.analysis.sharpness import hessian_eigenvalues

    data = dataset(*data_key)
    return float(hessian_eigenvalues(_model, data.X_test, data.y_test, iters=100, seed=0)[0])


def lambda_max(entry: Entry) -> float:
    """Top Hessian eigenvalue of the test loss (power iteration; cached per model)."""
    return _lambda_max(entry.key, entry.model, entry.data_key)


@st.cache_data(show_spinner=False, max_entries=256)
def _fault_rise(key, _model, data_key, fm_dict, trials, seed) -> dict:
    from sar_core.analysis.sharpness import fault_sharpness

    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    return fault_sharpness(_model, data.X_test, data.y_test, fm, trials=trials, seed=seed)


def fault_rise(entry: Entry, fm: FaultModel, *, trials: int, seed: int) -> dict:
    """Expected test-loss rise under the fault model (sar_core.analysis.sharpness.fault_sharpness)."""
    return _fault_rise(entry.key, entry.model, entry.data_key, fm.to_dict(), trials, seed)
