"""Train: SAR next to baselines with live curves, or SAR at several rho (the rho sweep)."""

import streamlit as st

from ui.layout import LOADING, page_header

page_header(
    "Train",
    "Train SAR next to SGD, Adam, SAM, ASAM and fault-aware training on the same data, from the "
    "same initial weights: only the optimizer differs. Curves update live; each model is then "
    "measured under SAR's fault model (the same faults for every model). **Try first:** press "
    "*Train* with the defaults, then switch to *ρ sweep* to see how robustness changes with ρ.",
)
with st.spinner(LOADING):  # the title is on screen before torch loads
    import pandas as pd

    from sar_core import limits
    from sar_core.data.datasets import DATASETS
    from sar_core.plots.style import method_label
    from sar_core.plots.training import rho_sweep_figure, training_curves_figure
    from sar_core.training.loop import METHODS, spec_for
    from sar_core.training.optim import SAR_DEFAULT_RHO, SAR_GEOMETRIES
    from ui import registry
    from ui.cache import dataset
    from ui.compute import paired_campaign
    from ui.inputs import (
        Checks,
        check_float_in,
        check_int_in,
        need_some,
        read_bits,
        read_floats,
        read_ints,
    )
    from ui.jobs import finish_job, job, run_controls, start_job, stop_button, train_runs
    from ui.layout import changed_settings, stale_box
    from ui.panels import models_panel, upload_box
    from ui.training import (
        compare_plans,
        describe_rows,
        describe_target,
        describe_text,
        faulty_column,
        results_rows,
        rho_caption,
        rho_points,
        rho_sweep_plans,
    )
    from ui.widgets import (
        ber_select,
        fault_label,
        fault_model_from,
        format_picker,
        seed_input,
        show_errors,
        trials_slider,
    )

previous = job("train")
checks = Checks()
top = st.container()  # live curves and results first: on screen without scrolling

c0, c1, c2, c3, c4 = st.columns([3, 2, 2, 2, 2])
mode = c0.selectbox(  # a select box, not a segmented control: readable at 1024 px
    "Mode",
    ["compare", "rho sweep"],
    format_func={"compare": "Compare methods", "rho sweep": "ρ sweep (SAR)"}.get,
    key="mode",
    bind="query-params",
)
ds_name = c1.selectbox("Dataset", DATASETS, key="dataset", bind="query-params")
arch = c2.selectbox(
    "Architecture",
    ["mlp", "cnn"] if ds_name == "digits" else ["mlp"],
    format_func=str.upper,
    key="arch",
    help="The small CNN needs images: digits only.",
)
with c3:
    epochs = st.number_input("Epochs", value=30, step=1, key="epochs", bind="query-params")
    epochs = checks.check(check_int_in, epochs, "Epochs", low=1, high=limits.MAX_EPOCHS)
with c4:
    seed = seed_input(checks=checks)

m1, m2 = st.columns([3, 2])
with m1:
    if mode == "compare":
        methods = st.multiselect(
            "Methods to compare",
            list(METHODS),
            default=["sgd", "sam", "sar"],
            format_func=method_label,
            key="methods",
            bind="query-params",
        )
        checks.check(need_some, methods, "Choose at least one method to train.")
        rhos, with_ref = [], False
    else:
        r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
        rho_text = r1.text_input(
            "SAR's ρ values (comma-separated)",
            "0.05, 0.1, 0.2, 0.5, 1, 2",
            key="rhos",
            bind="query-params",
        )
        with_ref = r2.checkbox("SGD reference", True, key="ref", bind="query-params")
        rhos = checks.check(read_floats, rho_text, "SAR's ρ values", low=0.0, high=100.0) or []
        methods = ["sar"]
trials = trials_slider(key="trials", default=30, where=m2)

st.markdown(
    "**SAR's fault model** — what SAR (and FAT) train against, and what every model is "
    "measured under afterwards."
)
f1, f2, f3 = st.columns([2, 1, 3])
t_format = format_picker(key="tformat", default="int8", where=f1)
with f2:
    t_bits_text = st.text_input(
        "Bits", "all", key="tbits", help="all, sign, exponent, mantissa, msb, lsb, 0-7, 30,31 ..."
    )
    t_bits = checks.check(read_bits, t_bits_text, t_format)
with f3:
    t_ber = ber_select("Bit error rate", key="tber", default=0.01, checks=checks)

with st.expander("More settings: learning rate, radii, geometry, batch size, widths"):
    e1, e2, e3, e4 = st.columns(4)
    lr = e1.number_input(
        "Learning rate (empty = default)",
        value=None,
        format="%.4g",
        key="lr",
        bind="query-params",
        help="Default: 0.05 for SGD-based methods, 0.002 for Adam.",
    )
    if lr is not None:
        lr = checks.check(check_float_in, lr, "The learning rate", low=1e-5, high=10.0, where=e1)
    radii = {}
    for col, m, default, key in (
        (e2, "sar", SAR_DEFAULT_RHO, "rho"),
        (e3, "sam", 0.05, "rho_sam"),
        (e4, "asam", 0.5, "rho_asam"),
    ):
        v = col.number_input(
            f"{method_label(m)}'s ρ",
            value=default,
            format="%.3g",
            key=key,
            disabled=m == "sar" and mode != "compare",
        )
        radii[m] = checks.check(check_float_in, v, f"{method_label(m)}'s ρ", low=0, high=100)
    g1, g2, g3, g4 = st.columns(4)
    geometry = g1.selectbox(
        "SAR geometry",
        SAR_GEOMETRIES,
        index=1,
        key="geometry",
        help="fault: the neighbourhood and radius follow the target fault model (SAR v2).",
    )
    rho_mode = g2.selectbox(
        "SAR ρ mode",
        ["fixed", "calibrated"],
        key="rho_mode",
        help="calibrated: ρ is set so SAM's worst case matches the expected fault damage.",
    )
    batch = g3.number_input("Batch size", value=64, step=1, key="batch")
    batch = checks.check(check_int_in, batch, "The batch size", low=1, high=4096, where=g3)
    widths_text = g4.text_input(
        "Hidden widths / CNN channels", "", key="widths", help="Empty: 128,64 (MLP); 8,16 (CNN)"
    )
    widths = checks.check(
        read_ints, widths_text, "Hidden widths", low=1, high=limits.MAX_WIDTH, where=g4
    )

fm = None
if t_bits and t_ber is not None:
    fm = checks.check(fault_model_from, t_format, t_bits, ber=t_ber)
settings = {
    "mode": mode,
    "dataset": ds_name,
    "arch": arch,
    "epochs": epochs,
    "seed": seed,
    "methods": list(methods),
    "rhos": sorted(rhos),
    "reference": with_ref,
    "trials": trials,
    "fault": fm.to_dict() if fm else None,
    "more": [lr, radii, geometry, rho_mode, batch, widths],
}
NAMES = {"fault": "SAR's fault model", "more": "more settings", "rhos": "ρ values"}

if fm is not None and "sar" in methods and checks.ok:
    with st.expander("What SAR derives from this fault model (before training)"):
        with show_errors():
            desc = describe_target(
                dataset(ds_name, seed), arch, widths, fm, rho=radii["sar"] or 0.0, seed=seed
            )
        st.markdown(describe_text(desc))
        st.dataframe(pd.DataFrame(describe_rows(desc)), hide_index=True, key="sar_describe")
        if geometry != "fault":
            st.caption("Used by training when the SAR geometry (More settings) is *fault*.")

go, stop_slot = run_controls("Train", key="train_go", stop_key="train_stop", disabled=not checks.ok)
checks.waiting_note()


def plans_for(data) -> tuple[list[dict], object]:
    """Training plans and model spec for the checked settings (ValueError: library limits)."""
    spec = spec_for(data, arch, widths or None)
    base = dict(epochs=epochs, lr=lr, batch_size=batch, seed=seed, fault_model=fm)
    tag = f"{ds_name} {arch.upper()}"
    if mode == "compare":
        plans = compare_plans(
            methods, base, tag=tag, rho_of=radii, geometry=geometry, rho_mode=rho_mode
        )
    else:
        plans = rho_sweep_plans(rhos, base, tag=tag, geometry=geometry, with_reference=with_ref)
    return plans, spec


if go and checks.ok:
    with show_errors():
        data = dataset(ds_name, seed)
        plans, spec = plans_for(data)
    rec = start_job(
        "train",
        mode=mode,
        runs=[],
        fault=fm.to_dict(),
        fault_label=fault_label(fm),
        settings=settings,
        plans=[{k: v for k, v in p.items() if k != "config"} for p in plans],
    )
    stop_button(stop_slot, live=True, key="train_stop")
    train_runs(rec, spec, data, plans, where=top)
    with top, show_errors(), st.spinner("Measuring every model under the same faults..."):
        entries = registry.get([r["model"] for r in rec["runs"]])
        rec["faulty"] = paired_campaign(entries, fm, trials=trials, seed=seed)
    previous = finish_job(rec, stop_slot, key="train_stop")

with top:
    if previous is not None:
        if previous["status"] == "stopped":
            st.warning(
                "Training was stopped. Finished models are kept in *Your models*; the run "
                "that was interrupted is shown up to its last full epoch."
            )
        changed = changed_settings(previous.get("settings", {}), settings, NAMES)
        with stale_box("train", changed, "Train"):
            st.plotly_chart(training_curves_figure(previous["runs"]), key="train_curves")
            st.dataframe(
                pd.DataFrame(results_rows(previous)),
                hide_index=True,
                key="train_table",
                column_config={
                    "clean accuracy": st.column_config.NumberColumn(format="percent"),
                    faulty_column(previous): st.column_config.NumberColumn(format="percent"),
                    "vs first (pt)": st.column_config.NumberColumn(format="%+.1f"),
                    "train time (s)": st.column_config.NumberColumn(format="%.1f"),
                },
            )
            if previous["mode"] == "rho sweep" and previous.get("faulty"):
                points, reference = rho_points(previous)
                st.plotly_chart(
                    rho_sweep_figure(
                        points, fault_label=previous["fault_label"], baseline=reference
                    ),
                    key="rho_sweep_fig",
                )
                st.caption(rho_caption(points, reference))

st.subheader("Your models")
st.caption(
    "Kept for this browser session only. Download a model to keep it; upload it later "
    "to use it again on any page."
)
upload_box()
models_panel()
