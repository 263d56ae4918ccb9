"""Cached loss-landscape analyses called by the pages: 1D / 2D slices, interpolation between two
models, the slice along a sampled fault, and sharpness. Models are passed as ``_model`` (not
hashed) together with their content digest (hashed), as in ``ui.compute``.

Nothing here trains, mutates or switches the mode of a model: sar_core's analyses are functional.
"""

from __future__ import annotations

import streamlit as st

from sar_core.faults.model import FaultModel
from ui.cache import dataset
from ui.compute import check_faults
from ui.registry import Entry, check_comparable

# --- loss landscapes ------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _slice_1d(key, _model, data_key, seed, steps, span) -> dict:
    from sar_core.analysis import landscape as L

    data = dataset(*data_key)
    d = L.random_direction(_model, seed)
    return L.slice_1d(_model, data.X_test, data.y_test, d, steps=steps, span=span)


@st.cache_data(show_spinner=False, max_entries=64)
def _slice_2d(key, _model, data_key, seed, steps, span) -> dict:
    from sar_core.analysis import landscape as L

    data = dataset(*data_key)
    d1, d2 = L.direction_pair(_model, seed)
    return L.slice_2d(_model, data.X_test, data.y_test, d1, d2, steps=steps, span=span)


@st.cache_data(show_spinner=False, max_entries=64)
def _interpolate(keys, _a, _b, data_key, steps) -> dict:
    from sar_core.analysis import landscape as L

    data = dataset(*data_key)
    return L.interpolate(_a, _b, data.X_test, data.y_test, steps=steps)


@st.cache_data(show_spinner=False, max_entries=256)
def _fault_slice(key, _model, data_key, fm_dict, seed, steps, span) -> dict:
    from sar_core.analysis import landscape as L

    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    return L.fault_direction_slice(
        _model, data.X_test, data.y_test, fm, seed=seed, steps=steps, span=span
    )


def slice_1d(entry: Entry, *, seed: int, steps: int, span: float) -> dict:
    """L(w + a d) along the seeded filter-normalized direction (same raw draw for every model)."""
    return _slice_1d(entry.key, entry.model, entry.data_key, seed, steps, span)


def slice_2d(entry: Entry, *, seed: int, steps: int, span: float) -> dict:
    """L(w + a d1 + b d2) on a steps x steps grid."""
    return _slice_2d(entry.key, entry.model, entry.data_key, seed, steps, span)


def interpolation(a: Entry, b: Entry, *, steps: int) -> dict:
    """L((1 - t) w_a + t w_b); the two models must share dataset and architecture."""
    check_comparable([a, b])
    return _interpolate((a.key, b.key), a.model, b.model, a.data_key, steps)


def fault_slice(entry: Entry, fm: FaultModel, *, seed: int, steps: int, span: float) -> dict:
    """Loss along the sampled fault direction (the real fault at alpha = 1)."""
    check_faults([entry], fm)
    return _fault_slice(entry.key, entry.model, entry.data_key, fm.to_dict(), seed, steps, span)


# --- sharpness ------------------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _sharpness(key, _model, data_key, fm_dict, seed, rho, trials) -> dict:
    from sar_core.analysis.sharpness import sharpness_report

    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict) if fm_dict else None
    return sharpness_report(
        _model, data.X_test, data.y_test, seed=seed, fault_model=fm, rho=rho, trials=trials
    )


def sharpness_of(
    entry: Entry, fm: FaultModel | None, *, seed: int = 0, rho: float = 0.05, trials: int = 30
) -> dict:
    """sar_core.analysis.sharpness.sharpness_report on the model's test split (cached per model)."""
    check_faults([entry], fm)
    return _sharpness(
        entry.key, entry.model, entry.data_key, fm.to_dict() if fm else None, seed, rho, trials
    )
