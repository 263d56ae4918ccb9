"""Robustness report: BER sweep, bit x layer sensitivity, sharpness vs robustness, double win."""

import streamlit as st

from ui.layout import LOADING, page_header

page_header(
    "Robustness report",
    "One button measures the chosen models four ways under one fault model: accuracy against "
    "the bit error rate, which bit of which layer hurts most, whether the flatter model is the "
    "more robust one, and the *double win* table (clean accuracy kept, robustness gained, same "
    "inference cost). **Try first:** press *Run report* with the three demo MLPs, then with the "
    "three demo CNNs.",
)
with st.spinner(LOADING):  # the title is on screen before torch loads
    import pandas as pd

    from sar_core.plots.robustness import (
        double_win_figure,
        sensitivity_heatmap,
        sharpness_scatter,
        sweep_figure,
    )
    from sar_core.plots.style import method_label
    from ui import registry
    from ui.compute import (
        bit_layer_grid,
        inference_cost,
        paired_campaign,
        sharpness_of,
        sweep_iter,
    )
    from ui.defenses import attack_flips, report_html, train_cost_ratios
    from ui.inputs import Checks, at_most, check_int_in, need_some
    from ui.jobs import finish_job, job, require_result, run_controls, start_job, stop_button
    from ui.layout import changed_settings, stale_box
    from ui.results import latency_text, sweep_curves
    from ui.suite_view import suite_section
    from ui.widgets import (
        BER_GRID,
        ber_select,
        bit_picker,
        ci_bounds,
        fault_label,
        fault_model_from,
        fmt_ber,
        fmt_ci,
        format_picker,
        model_picker,
        seed_input,
        show_errors,
        trials_slider,
    )

SHARPNESS = {
    "fault_sharpness": "expected loss increase under the fault model",
    "lambda_max": "top Hessian eigenvalue λ_max",
    "trace": "Hessian trace (Hutchinson)",
    "sam_sharpness": "SAM sharpness (ρ = 0.05)",
    "asam_sharpness": "ASAM sharpness (elementwise, ρ = 0.05)",
    "avg_sharpness": "average-case sharpness (random, ρ = 0.05)",
}

previous = job("report")
checks = Checks()
with st.expander(
    "Across tasks: the suite's results (held-out seeds, every method vs SGD)",
    key="suite_open",
    on_change="rerun",
):
    if st.session_state.get("suite_open"):  # drawn only when opened, not on every rerun
        suite_section()

models = model_picker("Models (same architecture and dataset)", key="models")
checks.check(need_some, models, "Choose at least one model.")
checks.check(at_most, models, 6, "models")
if len(models) > 1:
    checks.check(registry.check_comparable, models)
c1, c2 = st.columns([1, 2])
fmt = format_picker(key="format", default="int8", where=c1)
with c2:
    ber = ber_select(
        "Bit error rate for the table and sharpness", key="ber", default=0.01, checks=checks
    )
bits = bit_picker(fmt, key="bits")

s1, s2, s3 = st.columns(3)
with s1:
    lo, hi = st.select_slider(
        "BER sweep range",
        BER_GRID,
        value=(1e-3, 5e-2),
        format_func=fmt_ber,
        key="range",
        bind="query-params",
    )
    trials = trials_slider(key="trials", default=30)
with s2:
    heat_name = st.selectbox(
        "Sensitivity heatmap for",
        [m.name for m in models] or ["(select models)"],
        key="heat_model",
    )
    heat_flips = st.number_input(
        "Flips per trial in one (layer, bit)",
        value=5,
        step=1,
        key="heat_flips",
        bind="query-params",
    )
    heat_flips = checks.check(
        check_int_in, heat_flips, "Flips per trial in one (layer, bit)", low=1, high=1000
    )
    heat_trials = st.slider("Heatmap trials per cell", 1, 100, 10, key="heat_trials")
with s3:
    seed = seed_input(checks=checks)
    with_sharp = st.checkbox(
        "Sharpness (about 3 s per model)", True, key="sharp", bind="query-params"
    )
    with_attack = st.checkbox(
        "Bit-flip attack (int8)",
        False,
        key="attack",
        bind="query-params",
        help="How many chosen int8 bit flips a progressive bit search (Rakin et al. 2019) needs "
        "to bring each model down to 10 points above chance. More flips = harder to break.",
    )

fm = count_fm = None
if not bits:
    checks.flag("Choose at least one bit that may flip.")
elif ber is not None and heat_flips is not None:
    fm = checks.check(fault_model_from, fmt, bits, ber=ber)
    count_fm = checks.check(fault_model_from, fmt, bits, count=heat_flips)
bers = [b for b in BER_GRID if lo <= b <= hi]
settings = {
    "models": [m.name for m in models],
    "format": fmt,
    "bits": list(bits),
    "ber": ber,
    "range": [lo, hi],
    "trials": trials,
    "heat": [heat_name, heat_flips, heat_trials],
    "seed": seed,
    "sharpness": with_sharp,
    "attack": with_attack,
}
NAMES = {"ber": "bit error rate", "range": "BER sweep range", "heat": "heatmap settings"}

run, stop_slot = run_controls(
    "Run report", key="run_report", stop_key="report_stop", disabled=not checks.ok
)
checks.waiting_note()

if run and checks.ok:
    with show_errors():
        stream = sweep_iter(models, fm, bers=bers, trials=trials, seed=seed)
    rec = start_job(
        "report",
        models=[m.name for m in models],
        methods=[m.method for m in models],
        sources=[m.source for m in models],
        fault_label=fault_label(fm),
        scope=fault_label(fm, with_rate=False),
        settings=settings,
        levels=[],
    )
    stop_button(stop_slot, live=True, key="report_stop")
    bar = st.progress(0.0, text="BER sweep...")
    with show_errors():
        for i, (level, summaries) in enumerate(stream):
            rec["levels"].append({"level": level, "summaries": summaries})
            bar.progress(0.4 * (i + 1) / len(bers), text=f"BER sweep: {fmt_ber(level)}")
        bar.progress(0.4, text="Double-win table...")
        summ = paired_campaign(models, fm, trials=trials, seed=seed)
        rec["table"] = []
        for i, (m, s, ratio) in enumerate(zip(models, summ, train_cost_ratios(models))):
            cost = inference_cost(m)
            if with_attack:
                bar.progress(0.4, text=f"Bit-flip attack on {m.name} ({i + 1}/{len(models)})...")
                cost.update(attack_flips(m, seed=seed))
            row = {"model": m.name, "method": m.method, **s, **cost, "train_cost": ratio}
            rec["table"].append(row)
        heat = next((m for m in models if m.name == heat_name), models[0])
        layers = registry.layers_of(heat)
        rec["heat"] = bit_layer_grid(
            heat,
            count_fm,
            layers=layers,
            trials=heat_trials,
            seed=seed,
            progress=lambda f: bar.progress(0.45 + 0.3 * f, text="Bit x layer sensitivity..."),
        )
        rec["heat"].update(
            model=heat.name,
            flips=int(heat_flips),
            format=fmt,
            reference=summ[models.index(heat)]["deployed_accuracy"],
        )
        rec["sharpness"] = []
        if with_sharp:
            for i, m in enumerate(models):
                bar.progress(0.75 + 0.25 * i / len(models), text=f"Sharpness of {m.name}...")
                rec["sharpness"].append(sharpness_of(m, fm, seed=seed))
    previous = finish_job(rec, stop_slot, key="report_stop", bar=bar)

previous = require_result(
    previous,
    hint="Press **Run report** to measure the selected models.",
    stopped="The report was stopped; the parts finished so far are shown.",
)

changed = changed_settings(previous.get("settings", {}), settings, NAMES)
with stale_box("report", changed, "Run report"):
    names = [n.replace("demo · ", "") for n in previous["models"]]
    if previous["levels"]:
        st.subheader("Accuracy against the bit error rate")
        curves = sweep_curves(previous)
        st.plotly_chart(
            sweep_figure(curves, title=f"Accuracy under bit flips: {previous['scope']}"),
            key="report_sweep",
        )
        st.download_button(
            "Download HTML report",
            data=lambda rec=previous: report_html(rec),  # built only when clicked
            file_name="sar_lab_report.html",
            mime="text/html",
            key="report_html",
            help="One self-contained file (plotly inlined, opens offline): the sweep with CIs, "
            "paired differences vs the first model, and the settings.",
        )

    if previous.get("table"):
        st.subheader("The double win")
        st.markdown(
            "Clean accuracy, accuracy under the fault model, and the inference cost. SAR changes "
            "only training: the architecture, the parameter count and the latency are the same."
        )
        rows = [
            {
                "model": r["model"].replace("demo · ", ""),
                "method": method_label(r["method"]),
                "clean accuracy": r["clean_accuracy"],
                "deployed": r["deployed_accuracy"],
                f"under faults ({previous['fault_label']})": r["mean_accuracy"],
                "95% CI": fmt_ci(r["ci95"]),
                "vs first (pt)": 100 * r["paired_difference"]["mean"],
                **({"attack flips (int8)": r.get("attack_flips")} if "attack_reached" in r else {}),
                "training time vs SGD": r.get("train_cost"),
                "parameters": r["parameters"],
                "latency (ms, test set)": r["latency_ms"],
            }
            for r in previous["table"]
        ]
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            key="double_win",
            column_config={
                "clean accuracy": st.column_config.NumberColumn(format="percent"),
                "deployed": st.column_config.NumberColumn(
                    format="percent", help="stored in the number format, no flips"
                ),
                "training time vs SGD": st.column_config.NumberColumn(
                    format="%.2fx", help="from the checkpoints' recorded training time"
                ),
                "attack flips (int8)": st.column_config.NumberColumn(
                    help="flips the progressive bit search needed to reach 10 points above "
                    "chance; empty = not reached within 1000 flips"
                ),
                f"under faults ({previous['fault_label']})": st.column_config.NumberColumn(
                    format="percent"
                ),
                "vs first (pt)": st.column_config.NumberColumn(format="%+.1f"),
                "latency (ms, test set)": st.column_config.NumberColumn(format="%.2f"),
            },
        )
        t1, t2 = st.columns([3, 2], vertical_alignment="center")
        with t1:
            st.plotly_chart(
                double_win_figure(
                    [{**r, "label": n} for r, n in zip(previous["table"], names)],
                    fault_label=previous["fault_label"],
                ),
                key="double_win_fig",
            )
        t2.caption(
            f"Latency: median of 15 forward passes over the {previous['table'][0]['test_samples']} "
            "test samples on this server's CPU (one thread); "
            + latency_text([r["latency_ms"] for r in previous["table"]])
            + " *vs first*: mean paired difference from the first model."
        )

    if previous.get("heat"):
        h = previous["heat"]
        st.subheader("Which bit of which layer?")
        st.markdown(
            f"{h['flips']} flips per trial, all in one layer and one bit position, on "
            f"**{h['model'].replace('demo · ', '')}**; colour = accuracy drop from the fault-free "
            "deployed model."
        )
        st.plotly_chart(
            sensitivity_heatmap(
                h["accuracy"],
                bits=h["bits"],
                layers=h["layers"],
                fmt=h["format"],
                reference=h["reference"],
                title=f"Accuracy drop per (layer, bit): {h['flips']} flips, {h['format']}",
            ),
            key="heatmap",
        )

    if previous.get("sharpness"):
        st.subheader("Sharpness against robustness")
        measure = st.selectbox(
            "Sharpness measure (x axis)",
            list(SHARPNESS),
            format_func=SHARPNESS.get,
            key="measure",
            bind="query-params",
        )
        points = []
        for name, method, r, sh in zip(
            names, previous["methods"], previous.get("table", []), previous["sharpness"]
        ):
            v = sh.get(measure)
            x = v["mean"] if isinstance(v, dict) else v
            points.append(
                {
                    "label": name,
                    "method": method,
                    "x": x,
                    "y": r["mean_accuracy"],
                    "lo": ci_bounds(r["ci95"])[0],
                    "hi": ci_bounds(r["ci95"])[1],
                }
            )
        st.plotly_chart(
            sharpness_scatter(
                points,
                x_title=SHARPNESS[measure],
                y_title=f"accuracy under faults, {previous['fault_label']} (%)",
            ),
            key="scatter",
        )
        short = {
            "fault_sharpness": "fault",
            "lambda_max": "λ_max",
            "trace": "trace",
            "sam_sharpness": "SAM",
            "asam_sharpness": "ASAM",
            "avg_sharpness": "average",
        }
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "model": n,
                        **{
                            short[k]: (sh[k]["mean"] if isinstance(sh.get(k), dict) else sh.get(k))
                            for k in SHARPNESS
                        },
                    }
                    for n, sh in zip(names, previous["sharpness"])
                ]
            ),
            hide_index=True,
            key="sharp_table",
            column_config={
                short[k]: st.column_config.NumberColumn(format="%.4g", help=SHARPNESS[k])
                for k in SHARPNESS
            },
        )
