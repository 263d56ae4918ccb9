"""Bit anatomy: one value's stored bits, what flipping each one does, and |dw| per bit position."""

import streamlit as st

from ui.layout import LOADING, page_header

page_header(
    "Bit anatomy",
    "A weight is stored as bits: a sign, an exponent and a mantissa for floats, a two's-complement "
    "integer for int8. Click bits below to flip them and see the new value. **Try first:** flip "
    "bit 30 of 0.1 in float32 (the top exponent bit: 0.1 becomes about 3e37), then the same "
    "value in int8, where no single flip can do more than about double the tensor's range.",
)
with st.spinner(LOADING):  # the title is on screen before torch loads
    import pandas as pd

    from sar_core.formats.bits import get_format
    from sar_core.plots.bits import bit_cells_figure, flip_effect_figure
    from ui.anatomy import changed_bits, effects, every_format_rows, flip, storage_note
    from ui.anatomy_view import delta_section, value_input
    from ui.inputs import Checks
    from ui.layout import fmt_num
    from ui.widgets import bit_label, carried, field_legend, format_picker, guarded

checks = Checks()
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
    # its own key: the other pages' format (int8 by default) must not carry over here, where
    # the intro's first experiment is float32
    fmt = format_picker(key="aformat", default="float32")
with c2:
    value, scale = value_input(checks, source, fmt)

width = get_format(fmt).width
st.markdown(
    f"**Click bits to flip them** ({width}-bit {fmt}, bit 0 = least significant): "
    + field_legend(fmt)
)
flips = carried(  # kept when you visit another page and come back
    f"flip_{fmt}",
    lambda: st.pills(
        "Bits to flip",
        list(range(width - 1, -1, -1)),
        selection_mode="multi",
        default=[width - 2] if fmt != "int8" else [width - 1],
        key=f"flip_{fmt}",
        format_func=lambda b: bit_label(fmt, b),
        label_visibility="collapsed",
    ),
    valid=lambda v: [b for b in v if 0 <= b < width],
)
kind = st.radio(
    "What happens to the clicked bits",
    ["flip", "stuck-at-0", "stuck-at-1"],
    format_func={
        "flip": "flip (soft error)",
        "stuck-at-0": "stuck at 0",
        "stuck-at-1": "stuck at 1",
    }.get,
    key="akind",
    bind="query-params",
    horizontal=True,
    help="A stuck bit is forced to 0 or 1: a clicked bit that already holds that value stays.",
)
stored = checks.check(flip, value, fmt, [], scale) if value is not None and checks.ok else None
if stored is None:  # the problem is shown above: no other value's bits are drawn
    st.info("Fix the value marked in red to see its bits.", icon=":material/edit:")
    delta_section(fmt)
    st.stop()
changed = changed_bits(stored["bits_before"], flips or [], kind)
res = flip(value, fmt, changed, scale)
if kind != "flip" and flips and len(changed) < len(flips):
    same = sorted(set(flips) - set(changed), reverse=True)
    st.caption(
        f"Bit{'s' if len(same) > 1 else ''} {', '.join(map(str, same))} already "
        f"held {kind[-1]}: {kind} leaves {'them' if len(same) > 1 else 'it'} unchanged."
    )

note = storage_note(value, res["value_before"])
if note:
    st.info(f"{fmt_num(value)} is {note} in {fmt}: that is the value the bits below hold.")
m1, m2, m3 = st.columns(3)
m1.metric("Stored value", fmt_num(res["value_before"]))
m2.metric("After the flip" + ("s" if len(res["bits"]) > 1 else ""), fmt_num(res["value_after"]))
m3.metric(
    "Relative change |Δw|/|w|", "–" if not res["bits"] else fmt_num(res["relative_change"], 3)
)
flipped = ", ".join(map(str, sorted(res["bits"], reverse=True)))
st.plotly_chart(
    bit_cells_figure(
        [("before", res["bits_before"], fmt), ("after", res["bits_after"], fmt)],
        flipped=res["bits"],
        title=f"{fmt_num(value)} stored as {fmt}: before and after flipping "
        + (f"bit{'s' if len(res['bits']) > 1 else ''} {flipped}" if res["bits"] else "no bit"),
    ),
    key="cells",
    config={"displayModeBar": False},
)

rows, cells = every_format_rows(value, scale)
left, right = st.columns(2, gap="medium")
with left:
    st.plotly_chart(
        flip_effect_figure(guarded(effects, value, fmt, scale), fmt, value=value),
        key="effects",
    )
with right:
    st.markdown(f"**{fmt_num(value)} in every format**")
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
    bit_cells_figure(cells, title=f"{fmt_num(value)} in every format (filled = 1)"),
    key="all_formats",
    config={"displayModeBar": False},
)

delta_section(fmt)
