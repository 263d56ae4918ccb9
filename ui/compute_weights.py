"""Cached views of a model's weights and of one value's bits, for the Anatomy page: the median
weight change per flipped bit, parameter names and values, and what flipping bits of one stored
value does.

Nothing here mutates a model: weights are read as detached copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import streamlit as st

from sar_core.formats.bits import delta_per_bit, flip_value, get_format
from ui.registry import Entry

# --- per-bit weight change -------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=256)
def _delta(key, _model, fmt, params) -> list[float]:
    named = dict(_model.named_parameters())
    return delta_per_bit([named[p].detach().cpu().numpy() for p in params], fmt).tolist()


def weight_delta_per_bit(entry: Entry, fmt: str, params: Sequence[str]) -> list[float]:
    """Median |dw| per flipped bit position over the chosen parameters of a model."""
    if not params:
        raise ValueError("Invalid parameters=[]: select at least one parameter tensor")
    return _delta(entry.key, entry.model, fmt, tuple(params))


def weight_names(entry: Entry, *, weights_only: bool = True) -> list[str]:
    """Parameter names of a model (weights only: tensors with 2+ dimensions)."""
    return [n for n, p in entry.model.named_parameters() if p.ndim >= 2 or not weights_only]


def weight_values(entry: Entry, param: str) -> np.ndarray:
    """A copy of one parameter tensor as a flat float32 array."""
    named = dict(entry.model.named_parameters())
    if param not in named:
        raise ValueError(f"Invalid parameter={param!r}: choose one of {', '.join(named)}")
    return named[param].detach().cpu().numpy().astype(np.float32).ravel().copy()


# --- one value ------------------------------------------------------------------------------


def flip_bits(value: float, fmt: str, bits: Sequence[int], scale: float | None = None) -> dict:
    """Store ``value`` in ``fmt`` and flip every bit in ``bits`` at once (none: just store it).

    sar_core.formats.bits.flip_value (a list of bits is XORed into the one stored code). Returns value /
    bit strings before and after, the flipped positions (``bits``) and the relative change;
    values may be inf / NaN (a float32 overflow, an exponent flip).
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # inf / NaN are results
        r = flip_value(value, fmt, sorted(set(bits)), scale)
        rel = r.relative_change
    return {
        "format": fmt,
        "bits": list(r.bit),
        "value_before": r.value_before,
        "value_after": r.value_after,
        "bits_before": r.bits_before,
        "bits_after": r.bits_after,
        "scale": r.scale,
        "relative_change": rel if np.isfinite(r.value_after) else float("inf"),
    }


@st.cache_data(show_spinner=False, max_entries=512)
def flip_effects(value: float, fmt: str, scale: float | None = None) -> list[float]:
    """Relative change of ``value`` for a flip of each bit position (index = position)."""
    width = get_format(fmt).width
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # inf / NaN are results
        return [flip_value(value, fmt, b, scale).relative_change for b in range(width)]
