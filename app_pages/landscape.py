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
    import pandas as pd

    from sar_core import limits
    from sar_core.plots.landscape import (
        contours_side_by_side,
        fault_slice_figure,
        interpolation_figure,
        slice_1d_figure,
        surfaces_figure,
    )
    from sar_core.plots.style import method_label
    from ui import registry
    from ui.compute import fault_slice, interpolation, sharpness_of, slice_1d, slice_2d
    from ui.inputs import Checks, at_most, check_float_in, need_some, read_bits
    from ui.jobs import finish_job, job, require_result, run_controls, start_job, stop_button
    from ui.layout import changed_settings, stale_box
    from ui.results import barrier_caption, fault_rise_text
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

models = model_picker("Models (same architecture and dataset)", key="models")
checks.check(need_some, models, "Choose at least one model.")
checks.check(at_most, models, 4, "models (every model adds a 2D plane and a sharpness row)")
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


def labelled(res: dict, entry) -> dict:
    """Result with a legend label (the figures prefix the method's name themselves)."""
    label = entry.name.replace("demo · ", "")
    suffix = f" · {method_label(entry.method)}"
    label = label[: -len(suffix)] if label.endswith(suffix) else label
    return {**res, "label": label, "method": entry.method}


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
    tasks = [("1D slice", m) for m in models] + [("fault direction", m) for m in models]
    tasks += [("2D plane", m) for m in models] if do_2d else []
    tasks += [("sharpness", m) for m in models] if do_sharp else []
    bar = st.progress(0.0, text="Computing...")
    with show_errors():
        for i, (what, m) in enumerate(tasks):
            bar.progress(i / len(tasks), text=f"{what} of {m.name}...")
            if what == "1D slice":
                rec["curves"].append(labelled(slice_1d(m, seed=seed, steps=steps_1d, span=span), m))
            elif what == "fault direction":
                res = fault_slice(m, fm, seed=seed, steps=steps_1d, span=1.5)
                rec["faults"].append(labelled(res, m))
            elif what == "2D plane":
                rec["grids"].append(labelled(slice_2d(m, seed=seed, steps=steps_2d, span=span), m))
            else:
                rec["sharpness"].append({"model": m.name, **sharpness_of(m, fm, seed=seed)})
    previous = finish_job(rec, stop_slot, key="land_stop", bar=bar)

previous = require_result(
    previous,
    hint="Press **Compute** to draw the landscapes of the selected models.",
    stopped="Stopped; the parts finished so far are shown.",
)

changed = changed_settings(previous.get("settings", {}), settings, NAMES)
with stale_box("landscape", changed, "Compute"):
    log_y = st.toggle("Log-scale loss", False, key="log", bind="query-params")
    if previous["curves"]:
        st.subheader("1D slices")
        st.plotly_chart(slice_1d_figure(previous["curves"], log_y=log_y), key="slice1d")

    if previous["grids"]:
        st.subheader("2D plane")
        view = st.segmented_control(
            "View",
            ["contour", "surface"],
            default="contour",
            key="view",
            required=True,
            format_func={"contour": "Contours", "surface": "3D surfaces"}.get,
            bind="query-params",
        )
        grids = previous["grids"]
        if view == "contour":
            st.plotly_chart(contours_side_by_side(grids, log_z=log_y), key="contours")
        else:
            st.plotly_chart(surfaces_figure(grids, log_z=log_y), key="surfaces")
        st.caption("One colour scale for every model: the same colour is the same loss.")
    if previous["faults"]:
        st.subheader("Along a real fault")
        st.markdown(
            f"One fault pattern sampled from **{previous['fault_label']}** hits every model at the "
            "same sites; α = 1 is the faulty model, α = 0 the deployed one. "
            + fault_rise_text(previous["faults"])
        )
        st.plotly_chart(fault_slice_figure(previous["faults"], log_y=True), key="fault_slice")

    if previous["sharpness"]:
        st.subheader("Sharpness")
        rows = []
        for sh in previous["sharpness"]:
            fs = sh.get("fault_sharpness") or {}
            rows.append(
                {
                    "model": sh["model"].replace("demo · ", ""),
                    "test loss": sh["loss"],
                    "λ_max": sh["lambda_max"],
                    "trace": sh["trace"]["mean"],
                    "SAM ρ=0.05": sh["sam_sharpness"],
                    "ASAM ρ=0.05": sh.get("asam_sharpness"),
                    "fault": fs.get("mean"),
                }
            )
        helps = {
            "λ_max": "top eigenvalue of the Hessian of the test loss (power iteration)",
            "trace": "Hessian trace (Hutchinson estimate)",
            "SAM ρ=0.05": "max loss increase within an L2 ball of radius 0.05 (ascent steps)",
            "ASAM ρ=0.05": "the same in the elementwise ball |e_i| / (|w_i| + 0.01): SAR's geometry",
            "fault": f"expected loss increase under {previous['fault_label']}",
        }
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            key="sharp_table",
            column_config={
                c: st.column_config.NumberColumn(c, format="%.4g", help=helps.get(c))
                for c in rows[0]
                if c != "model"
            },
        )
        st.caption(
            "Lower is flatter. Fault sharpness = expected loss increase when the fault model hits "
            "the deployed weights (the quantity SAR's radius is calibrated against)."
        )

st.subheader("Interpolation between two models")
names = previous["models"]
pool = registry.all_entries()
i1, i2, i3 = st.columns([2, 2, 1])
a_name = i1.selectbox("From (t = 0)", names, index=0, key="interp_a")
b_name = i2.selectbox("To (t = 1)", names, index=len(names) - 1, key="interp_b")
i_steps = i3.slider("Points", 5, limits.MAX_GRID_STEPS, 41, key="interp_steps")
if a_name in pool and b_name in pool:
    a, b = pool[a_name], pool[b_name]
    res = None
    with show_errors():
        res = interpolation(a, b, steps=i_steps)  # fast (one line of points), cached
    st.plotly_chart(
        interpolation_figure(
            res,
            a_name.replace("demo · ", ""),
            b_name.replace("demo · ", ""),
            method_a=a.method,
            method_b=b.method,
        ),
        key="interp",
    )
    st.caption(barrier_caption(res))
