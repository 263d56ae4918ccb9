"""The Loss landscape page's computation loop and result sections (the page stays a short
script: widgets -> compute_landscape -> show_landscape / interpolation_section)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import streamlit as st

from sar_core import limits
from sar_core.plots.landscape import fault_slice_figure, interpolation_figure, slice_1d_figure
from sar_core.plots.landscape_2d import contours_side_by_side, surfaces_figure
from sar_core.plots.landscape_axes import decades
from sar_core.plots.style import method_label
from ui import registry
from ui.compute_landscape import fault_slice, interpolation, sharpness_of, slice_1d, slice_2d
from ui.results import barrier_caption, fault_rise_text
from ui.widgets import DEFAULT_MODELS, show_errors

MAX_MODELS = 4  # every model adds a 2D plane and a sharpness row
# the demo models preselected: exact names, so your own "my digits MLP · SGD" (which also ends
# in "digits MLP · SGD") is not added on top of them past MAX_MODELS
PRESELECT = tuple(f"demo · {d}" for d in DEFAULT_MODELS)


def labelled(res: dict, entry) -> dict:
    """Result with a legend label (the figures prefix the method's name themselves)."""
    label = entry.name.replace("demo · ", "")
    suffix = f" · {method_label(entry.method)}"
    label = label[: -len(suffix)] if label.endswith(suffix) else label
    return {**res, "label": label, "method": entry.method}


def compute_landscape(
    rec: dict,
    models: Sequence,
    fm,
    *,
    seed: int,
    span: float,
    steps: tuple[int, int],
    do_2d: bool,
    do_sharp: bool,
    bar,
) -> None:
    """Fill ``rec`` (curves, faults, grids, sharpness) model by model; a Stop keeps what is done."""
    steps_1d, steps_2d = steps
    tasks = [("1D slice", m) for m in models] + [("fault direction", m) for m in models]
    tasks += [("2D plane", m) for m in models] if do_2d else []
    tasks += [("sharpness", m) for m in models] if do_sharp else []
    for i, (what, m) in enumerate(tasks):
        bar.progress(i / len(tasks), text=f"{what} of {m.name}...")
        if what == "1D slice":
            rec["curves"].append(labelled(slice_1d(m, seed=seed, steps=steps_1d, span=span), m))
        elif what == "fault direction":
            rec["faults"].append(
                labelled(fault_slice(m, fm, seed=seed, steps=steps_1d, span=1.5), m)
            )
        elif what == "2D plane":
            rec["grids"].append(labelled(slice_2d(m, seed=seed, steps=steps_2d, span=span), m))
        else:
            rec["sharpness"].append({"model": m.name, **sharpness_of(m, fm, seed=seed)})


HELPS = {
    "λ_max": "top eigenvalue of the Hessian of the test loss (Lanczos)",
    "trace": "Hessian trace (Hutchinson estimate)",
    "SAM ρ=0.05": "max loss increase within an L2 ball of radius 0.05 (ascent steps)",
    "ASAM ρ=0.05": "the same in the elementwise ball |e_i| / (|w_i| + 0.01): SAR's geometry",
}


def sharpness_rows(sharpness: Sequence[Mapping]) -> list[dict]:
    """One table row per model."""
    rows = []
    for sh in sharpness:
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
    return rows


def show_landscape(previous: Mapping) -> None:
    """1D slices, the 2D plane, the fault direction and the sharpness table of a result."""
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
        st.plotly_chart(fault_slice_figure(previous["faults"], log_y=log_y), key="fault_slice")
        losses = [v for r in previous["faults"] for v in [*r["loss"], r.get("fault_loss")]]
        if not log_y and decades(losses) > 2:
            st.caption(
                f"The loss along this fault spans {decades(losses):.0f} decades: switch on "
                "**Log-scale loss** to see the small values."
            )
    if previous["sharpness"]:
        st.subheader("Sharpness")
        rows = sharpness_rows(previous["sharpness"])
        helps = {**HELPS, "fault": f"expected loss increase under {previous['fault_label']}"}
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


def interpolation_section(previous: Mapping) -> None:
    """The loss on the straight line between two of the computed models."""
    st.subheader("Interpolation between two models")
    names = previous["models"]
    pool = registry.all_entries()
    i1, i2, i3 = st.columns([2, 2, 1])
    a_name = i1.selectbox("From (t = 0)", names, index=0, key="interp_a")
    b_name = i2.selectbox("To (t = 1)", names, index=len(names) - 1, key="interp_b")
    i_steps = i3.slider("Points", 5, limits.MAX_GRID_STEPS, 41, key="interp_steps")
    if a_name not in pool or b_name not in pool:
        return
    a, b = pool[a_name], pool[b_name]
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
