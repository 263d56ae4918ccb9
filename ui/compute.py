"""Cached fault campaigns called by the pages: paired campaigns, the landing page's results,
live sweeps, the bit x layer grid and the double-win table; ``check_faults`` guards them all.
Models are passed as ``_models`` (not hashed) together with their content digests (hashed), so a
result is reused only for byte-identical models. Loss landscapes and sharpness:
``ui.compute_landscape``; weights and one value's bits: ``ui.compute_weights``.

Nothing here trains, mutates or switches the mode of a model: sar_core's analyses are functional.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import streamlit as st

from sar_core import limits
from sar_core.analysis.campaign import compare
from sar_core.analysis.sweeps import check_bers, figure_curves, iter_sweep
from sar_core.faults.model import FaultModel, count_sites, parameter_shapes
from sar_core.validate import check_int
from ui.cache import dataset
from ui.registry import Entry, check_comparable, demo_entries

HOME_FAULT = FaultModel(format="int8", ber=0.03)  # shown on the landing page
HOME_BERS = (0.003, 0.01, 0.02, 0.03, 0.05)  # the landing page's CNN curve (incl. HOME_FAULT)
HOME_TRIALS = {"mlp": 50, "cnn": 30}  # the CNN forward pass is ~6x slower than the MLP's


def model_keys(entries: Sequence[Entry]) -> tuple[str, ...]:
    """Content digests of the entries: the cache key of their joint analyses."""
    return tuple(e.key for e in entries)


def check_faults(entries: Sequence[Entry], fm: FaultModel | None) -> None:
    """ValueError unless ``fm`` may run on every entry: on an imported quantized (QDQ) model the
    faults must hit its stored int8 codes (a float format would flip float bits of int8 codes)."""
    for e in entries:
        if fm is None or not getattr(e.model, "quantized", None):
            continue  # demo, trained and float models take every format
        from sar_core.data.onnx_fault_check import check_fault_model  # onnx loads only when needed

        try:
            check_fault_model(e.model, fm)
        except ValueError as err:
            raise ValueError(f"{e.name}: {err}") from None


# --- paired campaigns ------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=128)
def _paired(keys, _models, data_key, fm_dict, trials, seed) -> list[dict]:
    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    res = compare(_models, data.X_test, data.y_test, fm, trials=trials, seed=seed)
    out = []
    for r, d in zip(res["results"], res["paired_difference"]):
        s = r.summary()
        s["paired_difference"] = d
        out.append(s)
    return out


def paired_campaign(
    entries: Sequence[Entry], fm: FaultModel, *, trials: int, seed: int
) -> list[dict]:
    """Per-model summaries (and paired difference vs the first) under identical fault patterns."""
    check_faults(entries, fm)
    check_comparable(entries)
    return _paired(
        model_keys(entries),
        [e.model for e in entries],
        entries[0].data_key,
        fm.to_dict(),
        trials,
        seed,
    )


# --- home ------------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=4)
def _home(keys: tuple[str, ...]) -> dict:
    demos = demo_entries()
    rows, curves = [], []
    for arch in ("mlp", "cnn"):
        group = [e for e in demos if e.arch == arch and e.data_key[0] == "digits"]
        if not group:
            continue
        trials = HOME_TRIALS[arch]
        if arch == "cnn":  # the picture: a BER sweep; the table reads its HOME_FAULT level
            data = check_comparable(group)
            points = list(
                iter_sweep(
                    [e.model for e in group],
                    data.X_test,
                    data.y_test,
                    HOME_FAULT,
                    bers=HOME_BERS,
                    trials=trials,
                    seed=0,
                )
            )
            at_fault = next(s for level, s in points if level == HOME_FAULT.ber)
            curves += figure_curves(
                points,
                labels=[e.name.replace("demo · ", "") for e in group],
                methods=[e.method for e in group],
            )
        else:
            at_fault = paired_campaign(group, HOME_FAULT, trials=trials, seed=0)
        for e, s in zip(group, at_fault):
            rows.append(
                {
                    "model": e.name,
                    "arch": arch,
                    "method": e.method,
                    "clean_accuracy": s["clean_accuracy"],
                    "mean_accuracy": s["mean_accuracy"],
                    "ci95": s["ci95"],
                    "paired_difference": s["paired_difference"]["mean"],
                    "trials": s["trials"],
                }
            )
    return {"rows": rows, "curves": curves}


def home_results() -> dict:
    """Demo models' clean / faulty accuracy (table) and CNN accuracy vs BER (figure), cached."""
    return _home(model_keys(demo_entries()))


# --- live sweeps -----------------------------------------------------------------------------


def sweep_iter(
    entries: Sequence[Entry],
    fm: FaultModel,
    *,
    bers: Sequence[float] | None = None,
    counts: Sequence[int] | None = None,
    trials: int,
    seed: int,
) -> Iterator[tuple[float, list[dict]]]:
    """Validated live sweep (same patterns for every model): yields (level, per-model summaries)."""
    check_faults(entries, fm)
    data = check_comparable(entries)
    if bers is not None:
        check_bers(bers)
    elif not counts:
        raise ValueError("Give at least one flip count.")
    elif fm.target == "weights":
        n_sites = count_sites(parameter_shapes(entries[0].model), fm)
        for c in counts:
            check_int("count", c, low=1, high=min(n_sites, limits.MAX_FLIP_COUNT))
    # activation faults: int8 scales per layer from the training inputs (calibration data)
    extra = {"calibration": data.X_train} if fm.target == "activations" else {}
    return iter_sweep(
        [e.model for e in entries],
        data.X_test,
        data.y_test,
        fm,
        bers=bers,
        counts=counts,
        trials=trials,
        seed=seed,
        **extra,
    )


def asym_sweep_iter(
    entries: Sequence[Entry],
    fm: FaultModel,
    levels: Sequence[float],
    *,
    ratio: float,
    trials: int,
    seed: int,
) -> Iterator[tuple[float, list[dict]]]:
    """Asymmetric rates swept together: at each level, 1→0 = level and 0→1 = ratio × level
    (paired campaigns, the same trial seeds at every level); yields (level, summaries)."""
    from dataclasses import replace

    check_faults(entries, fm)
    check_comparable(entries)
    check_bers(levels)
    faults = [
        replace(fm, ber=None, count=None, ber_10=lv, ber_01=ratio * lv) for lv in levels
    ]  # validated (FaultModel) before the first level runs
    return (
        (lv, paired_campaign(entries, f, trials=trials, seed=seed)) for lv, f in zip(levels, faults)
    )


def log_levels(low: float, high: float, points: int, *, integer: bool = False) -> list[float]:
    """``points`` log-spaced levels from low to high (distinct integers when ``integer``)."""
    vals = [high] if points == 1 or low == high else list(np.geomspace(low, high, points))
    if integer:
        return sorted({max(1, int(round(v))) for v in vals})
    return [float(f"{v:.3g}") for v in vals]


# --- bit x layer sensitivity -----------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=2048)
def _cell(key, _model, data_key, fm_dict, trials, seed) -> float:
    from sar_core.analysis.robustness import layer_bit_accuracy

    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    return layer_bit_accuracy(_model, data.X_test, data.y_test, fm, trials=trials, seed=seed)


def bit_layer_grid(
    entry: Entry,
    fm: FaultModel,
    *,
    layers: Sequence[str],
    trials: int,
    seed: int,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Mean accuracy when faults hit only one (layer, bit) pair, for every pair; cached per cell
    (sar_core.analysis.robustness.bit_layer_grid)."""
    from sar_core.analysis.robustness import bit_layer_grid as grid

    check_faults([entry], fm)

    def cell(sub: FaultModel) -> float:
        return _cell(entry.key, entry.model, entry.data_key, sub.to_dict(), trials, seed)

    return grid(fm, layers, cell, progress=progress)


# --- the double-win table ----------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=64)
def _double_win(keys, _checkpoints, data_key, fm_dict, trials, seed) -> list[dict]:
    from sar_core.analysis.robustness import double_win_rows

    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    return double_win_rows(
        _checkpoints, data.X_test, data.y_test, fm, trials=trials, seed=seed, inner=1
    )


def double_win_table(
    entries: Sequence[Entry], fm: FaultModel, *, trials: int, seed: int
) -> list[dict]:
    """sar_core.analysis.robustness.double_win_rows of the entries on their test split (cached;
    fresh dicts, so a page may add columns)."""
    check_faults(entries, fm)
    check_comparable(entries)
    rows = _double_win(
        model_keys(entries),
        [e.checkpoint for e in entries],
        entries[0].data_key,
        fm.to_dict(),
        trials,
        seed,
    )
    return [dict(r) for r in rows]
