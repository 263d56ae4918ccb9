"""Loss landscape: 1D slices, 2D contours / 3D surfaces, interpolation, fault direction, sharpness."""

import streamlit as st

from ui.layout import LOADING, page_header

page_header(
    "Loss landscape",
    "How flat is each minimum? The loss is drawn along random directions around the trained "
    "weights (filter-normalized, Li et al. 2018: the same raw direction for every model), on a "
    "2D plane, on the straight line between two models, and along the direction of a real "
    "sampled bit-flip fault. **Try first:** compute with the three demo MLPs and compare how "
    "fast SGD's loss rises next to SAR's; then switch the 2D view to 3D surfaces.",
)
with st.spinner(LOADING):  # the title is on screen before torch loads
    from sar_core import limits
    from ui import registry
    from ui.inputs import Checks, at_most, check_float_in, need_some, read_bits
    from ui.jobs import finish_job, job, require_result, run_controls, start_job, stop_button
    from ui.landscape_view import (
        MAX_MODELS,
        PRESELECT,
        compute_landscape,
        interpolation_section,
        show_landscape,
    )
    from ui.layout import changed_settings, stale_box
    from ui.widgets import (
        ber_select,
        fault_label,
        fault_model_from,
        format_picker,
        model_picker,
        seed_input,
        show_errors,
    )

previous = job("landscape")
checks = Checks()

models = model_picker(
    "Models (same architecture and dataset)",
    key="models",
    default=PRESELECT,
    max_selections=MAX_MODELS,
)
checks.check(need_some, models, "Choose at least one model.")
checks.check(
    at_most, models, MAX_MODELS, "models (every model adds a 2D plane and a sharpness row)"
)
if len(models) > 1:
    checks.check(registry.check_comparable, models)
c1, c2, c3, c4 = st.columns(4)
with c1:
    seed = seed_input(key="seed", checks=checks)
with c2:
    span = st.number_input(
        "Span (±, filter-normalized units)",
        value=1.0,
        step=0.25,
        key="span",
        bind="query-params",
    )
    span = checks.check(check_float_in, span, "The span", low=0.05, high=10.0)
steps_1d = c3.slider("1D points", 5, limits.MAX_GRID_STEPS, 51, key="steps1", bind="query-params")
steps_2d = c4.slider(
    "2D points per axis",
    5,
    limits.MAX_GRID_STEPS,
    21,
    key="steps2",
    bind="query-params",
    help="The 2D grid costs steps² evaluations per model (a CNN is ~6x slower than the MLP).",
)

f1, f2, f3 = st.columns([2, 1, 3])
fmt = format_picker(key="format", default="int8", where=f1)
with f2:
    bits_text = st.text_input("Fault bits", "all", key="fbits", help="all, sign, exponent, 0-7 ...")
    bits = checks.check(read_bits, bits_text, fmt)
with f3:
    ber = ber_select(
        "Fault BER (fault-direction slice, fault sharpness)", key="ber", default=0.01, checks=checks
    )

o1, o2, o3 = st.columns(3)
do_2d = o1.checkbox("2D plane", True, key="do2d", bind="query-params")
do_sharp = o2.checkbox("Sharpness table (about 3 s per model)", True, key="dosharp")

fm = None
if bits and ber is not None:
    fm = checks.check(fault_model_from, fmt, bits, ber=ber)
settings = {
    "models": [m.name for m in models],
    "seed": seed,
    "span": span,
    "steps1": steps_1d,
    "steps2": steps_2d,
    "fault": fm.to_dict() if fm else None,
    "do2d": do_2d,
    "sharpness": do_sharp,
}
NAMES = {"steps1": "1D points", "steps2": "2D points", "fault": "fault model", "do2d": "2D plane"}

run, stop_slot = run_controls(
    "Compute", key="compute", stop_key="land_stop", disabled=not checks.ok
)
checks.waiting_note()


if run and checks.ok:
    rec = start_job(
        "landscape",
        models=[m.name for m in models],
        fault_label=fault_label(fm),
        settings=settings,
        curves=[],
        grids=[],
        faults=[],
        sharpness=[],
    )
    stop_button(stop_slot, live=True, key="land_stop")
    bar = st.progress(0.0, text="Computing...")
    with show_errors():
        compute_landscape(
            rec,
            models,
            fm,
            seed=seed,
            span=span,
            steps=(steps_1d, steps_2d),
            do_2d=do_2d,
            do_sharp=do_sharp,
            bar=bar,
        )
    previous = finish_job(rec, stop_slot, key="land_stop", bar=bar)

previous = require_result(
    previous,
    hint="Press **Compute** to draw the landscapes of the selected models.",
    stopped="Stopped; the parts finished so far are shown.",
)

changed = changed_settings(previous.get("settings", {}), settings, NAMES)
with stale_box("landscape", changed, "Compute"):
    show_landscape(previous)
interpolation_section(previous)
