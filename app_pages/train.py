"""Train: SAR next to baselines with live curves, or SAR at several rho (the rho sweep)."""

import streamlit as st

from ui.layout import LOADING, page_header, percent_columns

page_header(
    "Train",
    "Train SAR next to SGD, Adam, SAM, ASAM and fault-aware training on the same data, from the "
    "same initial weights: only the optimizer differs. Curves update live; each model is then "
    "measured under SAR's fault model (the same faults for every model). **Try first:** press "
    "*Train* with the defaults, then switch to *ρ sweep* to see how robustness changes with ρ.",
)
with st.spinner(LOADING):  # the title is on screen before torch loads
    import pandas as pd

    from sar_core.plots.style import arch_label
    from sar_core.plots.training import rho_sweep_figure, training_curves_figure
    from sar_core.training.loop import spec_for
    from ui import registry
    from ui.cache import dataset
    from ui.compute import paired_campaign
    from ui.inputs import Checks
    from ui.jobs import finish_job, job, run_controls, start_job, stop_button, train_runs
    from ui.layout import changed_settings, stale_box
    from ui.panels import models_panel, upload_box
    from ui.train_finetune import train_section
    from ui.train_form import NAMES, diverged_notes, settings_form
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
    from ui.widgets import fault_label, show_errors

previous = job("train")
checks = Checks()
top = st.container()  # live curves and results first: on screen without scrolling
s = settings_form(checks)
settings = s.as_dict()

if s.fm is not None and "sar" in s.methods and checks.ok:
    with st.expander("What SAR derives from this fault model (before training)"):
        with show_errors():
            desc = describe_target(
                dataset(s.dataset, s.seed),
                s.arch,
                s.widths,
                s.fm,
                rho=s.radii["sar"] or 0.0,
                seed=s.seed,
            )
        st.markdown(describe_text(desc))
        st.dataframe(pd.DataFrame(describe_rows(desc)), hide_index=True, key="sar_describe")
        if s.geometry != "fault":
            st.caption("Used by training when the SAR geometry (More settings) is *fault*.")

go, stop_slot = run_controls("Train", key="train_go", stop_key="train_stop", disabled=not checks.ok)
checks.waiting_note()


def plans_for(data) -> tuple[list[dict], object]:
    """Training plans and model spec for the checked settings (ValueError: library limits)."""
    spec = spec_for(data, s.arch, s.widths or None)
    base = dict(epochs=s.epochs, lr=s.lr, batch_size=s.batch, seed=s.seed, fault_model=s.fm)
    tag = f"{s.dataset} {arch_label(s.arch)}"
    if s.mode == "compare":
        return compare_plans(
            s.methods, base, tag=tag, rho_of=s.radii, geometry=s.geometry, rho_mode=s.rho_mode
        ), spec
    plans = rho_sweep_plans(s.rhos, base, tag=tag, geometry=s.geometry, with_reference=s.reference)
    return plans, spec


if go and checks.ok:
    with show_errors():
        data = dataset(s.dataset, s.seed)
        plans, spec = plans_for(data)
    rec = start_job(
        "train",
        mode=s.mode,
        runs=[],
        fault=s.fm.to_dict(),
        fault_label=fault_label(s.fm),
        settings=settings,
        plans=[{k: v for k, v in p.items() if k != "config"} for p in plans],
    )
    stop_button(stop_slot, live=True, key="train_stop")
    train_runs(rec, spec, data, plans, where=top)
    kept = [r["model"] for r in rec["runs"] if r["model"]]
    if kept:
        with top, show_errors(), st.spinner("Measuring every model under the same faults..."):
            faulty = iter(paired_campaign(registry.get(kept), s.fm, trials=s.trials, seed=s.seed))
            rec["faulty"] = [next(faulty) if r["model"] else None for r in rec["runs"]]
    previous = finish_job(rec, stop_slot, key="train_stop")

with top:
    if previous is not None:
        if previous["status"] == "stopped":
            st.warning(
                "Training was stopped. Finished models are kept in *Your models*; the run "
                "that was interrupted is shown up to its last full epoch."
            )
        for note in diverged_notes(previous):
            st.warning(note, icon=":material/trending_up:")
        changed = changed_settings(previous.get("settings", {}), settings, NAMES)
        with stale_box("train", changed, "Train"):
            st.plotly_chart(training_curves_figure(previous["runs"]), key="train_curves")
            st.dataframe(
                percent_columns(
                    pd.DataFrame(results_rows(previous)),
                    ("clean accuracy", faulty_column(previous)),
                ),
                hide_index=True,
                key="train_table",
                column_config={
                    "vs first model (pt)": st.column_config.NumberColumn(format="%+.1f"),
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
train_section()
