"""Bit anatomy's input block and its per-bit weight-change section (the page stays a short
script)."""

from __future__ import annotations

import numpy as np
import streamlit as st

from sar_core.formats.bits import int8_scale
from sar_core.plots.bits import delta_per_bit_figure
from ui.anatomy import read_value
from ui.compute_weights import weight_delta_per_bit, weight_names, weight_values
from ui.inputs import Checks, check_int_in, read_floats
from ui.widgets import guarded, model_picker, single_model_picker


def _typed(checks: Checks, fmt: str) -> tuple[float | None, float | None]:
    v1, v2 = st.columns(2)
    text = v1.text_input("Value", "0.1", key="value", bind="query-params")
    value = checks.check(read_value, text, where=v1)
    scale_text = v2.text_input(
        "int8 scale s (empty: |value| / 127)",
        "",
        key="scale",
        disabled=fmt != "int8",
        help="int8 stores q = round(w / s); s = max|w| / 127 of the tensor.",
    )
    scale = None
    if fmt == "int8" and scale_text.strip():
        s_vals = checks.check(
            read_floats, scale_text, "The int8 scale", low=1e-30, high=1e30, where=v2
        )
        if s_vals is not None and len(s_vals) != 1:
            checks.flag("The int8 scale needs one positive number, like 1e-3.", where=v2)
        elif s_vals:
            scale = s_vals[0]
    return value, scale


def _weight(checks: Checks, fmt: str) -> tuple[float | None, float | None]:
    entry = single_model_picker("Model", key="model")
    names = weight_names(entry, weights_only=False)
    p1, p2 = st.columns(2)
    param = p1.selectbox("Parameter", names, key="param")
    w = guarded(weight_values, entry, param)
    idx = p2.number_input(
        f"Index (0..{w.size - 1}; default: the largest |w|)",
        value=int(np.argmax(np.abs(w))),
        step=1,
        key=f"index_{param}",
    )
    idx = checks.check(check_int_in, idx, "The index", low=0, high=w.size - 1, where=p2)
    value = float(w[idx if idx is not None else int(np.argmax(np.abs(w)))])
    scale = float(int8_scale(w)) if fmt == "int8" else None
    st.caption(
        f"{param}: {w.size} values, |w| up to {np.abs(w).max():.4g}"
        + (f"; int8 scale s = {scale:.4g}" if scale else "")
    )
    return value, scale


def value_input(checks: Checks, source: str, fmt: str) -> tuple[float | None, float | None]:
    """(value, int8 scale or None): a typed value or a model's weight; value None while the
    typed text is flagged (nothing then shows another value's bits)."""
    return _typed(checks, fmt) if source == "typed" else _weight(checks, fmt)


def delta_section(fmt: str) -> None:
    """Median |Δw| per flipped bit position over every weight of the chosen models."""
    st.subheader("Typical weight change per bit position")
    st.markdown(
        "Median |Δw| over all weights of a model when one bit position is flipped: the mantissa "
        "bits move a weight a little, the top exponent bit by an astronomical amount. Demo "
        "models are solid lines, your own models dashed (one colour per method)."
    )
    models = model_picker(
        "Models", key="dmodels", default=("digits MLP · SGD", "digits MLP · SAR"), max_selections=6
    )
    if not models:
        st.info("Select at least one model to see its per-bit weight change.")
        return
    curves, methods, dashes = {}, {}, {}
    for e in models:
        label = e.name.replace("demo · ", "")
        curves[label] = guarded(weight_delta_per_bit, e, fmt, weight_names(e))
        methods[label] = e.method
        dashes[label] = "solid" if e.source == "demo" else "dash"
    st.plotly_chart(delta_per_bit_figure(curves, fmt, methods=methods, dashes=dashes), key="delta")
