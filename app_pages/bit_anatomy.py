"""Bit anatomy: one value's stored bits, what flipping each one does, and |dw| per bit position."""

import numpy as np
import pandas as pd
import streamlit as st

from sar_core.bits import FORMAT_NAMES, get_format, int8_scale
from sar_core.plots.bits import bit_cells_figure, delta_per_bit_figure, flip_effect_figure
from ui.compute import (
    flip_bits,
    flip_effects,
    weight_delta_per_bit,
    weight_names,
    weight_values,
)
from ui.widgets import (
    bit_label,
    field_legend,
    format_picker,
    guarded,
    model_picker,
    page_header,
    parse_floats,
    parse_one,
    show_errors,
    single_model_picker,
)

page_header(
    "Bit anatomy",
    "A weight is stored as bits: a sign, an exponent and a mantissa for floats, a two's-complement "
    "integer for int8. Click bits below to flip them and see the new value. **Try first:** flip "
    "bit 30 of 0.1 in float32 (the top exponent bit: 0.1 becomes about 3e37), then the same "
    "value in int8, where no single flip can do more than about double the tensor's range.",
)

c1, c2 = st.columns([1, 2])
with c1:
    source = st.radio(
        "Value",
        ["typed", "weight"],
        format_func={"typed": "Type a value", "weight": "A weight of a model"}.get,
        key="src",
        bind="query-params",
        horizontal=True,
    )
    fmt = format_picker(key="format", default="float32")
with c2:
    scale = None
    if source == "typed":
        v1, v2 = st.columns(2)
        text = v1.text_input("Value", "0.1", key="value", bind="query-params")
        scale_text = v2.text_input(
            "int8 scale s (empty: |value| / 127)",
            "",
            key="scale",
            disabled=fmt != "int8",
            help="int8 stores q = round(w / s); s = max|w| / 127 of the tensor.",
        )
        with show_errors():
            vals = parse_floats("value", text) if "," not in text else []
            if len(vals) != 1:
                raise ValueError(f"Invalid value={text!r}: type one number, e.g. 0.1 or -3e-2")
            value = vals[0]
            if fmt == "int8" and scale_text.strip():
                scale = parse_one("scale", scale_text, "type one positive number, e.g. 1e-3")
    else:
        entry = single_model_picker("Model", key="model")
        names = weight_names(entry, weights_only=False)
        p1, p2 = st.columns(2)
        param = p1.selectbox("Parameter", names, key="param")
        w = guarded(weight_values, entry, param)
        idx = p2.number_input(
            f"Index (0..{w.size - 1}; default: the largest |w|)",
            0,
            w.size - 1,
            int(np.argmax(np.abs(w))),
            key=f"index_{param}",
        )
        value = float(w[int(idx)])
        if fmt == "int8":
            scale = float(int8_scale(w))
        st.caption(
            f"{param}: {w.size} values, |w| up to {np.abs(w).max():.4g}"
            + (f"; int8 scale s = {scale:.4g}" if scale else "")
        )

width = get_format(fmt).width
st.markdown(
    f"**Click bits to flip them** ({width}-bit {fmt}, bit 0 = least significant): "
    + field_legend(fmt)
)
flips = st.pills(
    "Bits to flip",
    list(range(width - 1, -1, -1)),
    selection_mode="multi",
    default=[width - 2] if fmt != "int8" else [width - 1],
    key=f"flip_{fmt}",
    format_func=lambda b: bit_label(fmt, b),
    label_visibility="collapsed",
)
res = guarded(flip_bits, value, fmt, flips or [], scale)

m1, m2, m3 = st.columns(3)
m1.metric("Stored value", f"{res['value_before']:.7g}")
m2.metric("After the flip" + ("s" if len(res["bits"]) > 1 else ""), f"{res['value_after']:.7g}")
rel = res["relative_change"]
m3.metric("Relative change |Δw|/|w|", "–" if not res["bits"] else f"{rel:.3g}")
st.plotly_chart(
    bit_cells_figure(
        [("before", res["bits_before"], fmt), ("after", res["bits_after"], fmt)],
        flipped=res["bits"],
        title=f"{value:g} stored as {fmt}: before and after flipping "
        + (
            f"bit{'s' if len(res['bits']) > 1 else ''} "
            + ", ".join(map(str, sorted(res["bits"], reverse=True)))
            if res["bits"]
            else "no bit"
        ),
    ),
    key="cells",
    config={"displayModeBar": False},
)

rows, cells = [], []
for f in FORMAT_NAMES:
    s_f = scale if f == "int8" else None
    stored = guarded(flip_bits, value, f, [], s_f)
    eff = np.array(guarded(flip_effects, value, f, s_f))
    worst = int(np.argmax(np.where(np.isfinite(eff), eff, np.inf)))
    after = guarded(flip_bits, value, f, [worst], s_f)["value_after"]
    rows.append(
        {
            "format": f,
            "stored value": f"{stored['value_before']:.7g}",
            "rounding error": abs(stored["value_before"] - value),
            "worst single flip": f"bit {worst}: {stored['value_before']:.3g} → {after:.3g}",
        }
    )
    cells.append((f, stored["bits_before"], f))

left, right = st.columns(2, gap="medium")
with left:
    st.plotly_chart(
        flip_effect_figure(guarded(flip_effects, value, fmt, scale), fmt, value=value),
        key="effects",
    )
with right:
    st.markdown(f"**{value:g} in every format**")
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        key="formats_table",
        column_config={"rounding error": st.column_config.NumberColumn(format="%.2e")},
    )
    st.caption(
        "int8 uses the scale above (a typed value is taken as its tensor's largest |w|): "
        "its worst flip is bounded by the tensor's range, a float's is not."
    )
st.plotly_chart(
    bit_cells_figure(cells, title=f"{value:g} in every format (filled = 1)"),
    key="all_formats",
    config={"displayModeBar": False},
)

st.subheader("Typical weight change per bit position")
st.markdown(
    "Median |Δw| over all weights of a model when one bit position is flipped: the mantissa "
    "bits move a weight a little, the top exponent bit by an astronomical amount."
)
models = model_picker(
    "Models", key="dmodels", default=("digits MLP · SGD", "digits MLP · SAR"), max_selections=6
)
if models:
    curves, methods = {}, {}
    for e in models:
        label = e.name.replace("demo · ", "")
        curves[label] = guarded(weight_delta_per_bit, e, fmt, weight_names(e))
        methods[label] = e.method
    st.plotly_chart(delta_per_bit_figure(curves, fmt, methods=methods), key="delta")
else:
    st.info("Select at least one model to see its per-bit weight change.")
