"""Bit flips (live): choose models, format, bits, layers and rates; watch accuracy fall."""

import pandas as pd
import streamlit as st

from sar_core import limits
from sar_core.bits import get_format
from sar_core.io import rows_to_csv
from sar_core.plots.robustness import sweep_figure
from sar_core.plots.style import method_label
from ui import registry
from ui.compute import log_levels, sweep_iter
from ui.jobs import (
    finish_job,
    job,
    run_controls,
    start_job,
    stop_button,
    sweep_curves,
)
from ui.widgets import (
    BER_GRID,
    LiveChart,
    bit_picker,
    fault_label,
    fault_model_from,
    finite_or_none,
    fmt_ber,
    format_picker,
    model_picker,
    page_header,
    parse_floats,
    seed_input,
    show_errors,
    trials_slider,
)

page_header(
    "Bit flips (live)",
    "Pick models, the number format their weights are stored in, which bits may flip and how "
    "often, then press **Play**: the bit error rate climbs and the chart grows point by point, "
    "every model hit by exactly the same faults. **Try first:** the default int8 sweep on the "
    "three demo MLPs, then float32 with only the exponent bits (or only bit 30).",
)
previous = job("flips")

models = model_picker("Models (same architecture)", key="models")
c1, c2 = st.columns([1, 1])
with c1:
    fmt = format_picker(key="format", default="int8")
with c2:
    layer_names = registry.layers_of(models[0]) if models else []
    layers = st.multiselect(
        "Layers (empty = all)",
        layer_names,
        key="layers",
        help="Restrict the faults to some layers.",
    )
bits = bit_picker(fmt, key="bits", label=f"Bits that may flip ({get_format(fmt).width}-bit {fmt})")

r1, r2, r3 = st.columns([2, 3, 2])
rate_mode = r1.radio(
    "Fault rate",
    ["ber", "count"],
    format_func={"ber": "Bit error rate sweep", "count": "Exact flip-count sweep"}.get,
    key="rate",
    bind="query-params",
)
with r2:
    if rate_mode == "ber":
        lo, hi = st.select_slider(
            "BER range (log scale)",
            BER_GRID,
            value=(1e-3, 1e-1),
            format_func=fmt_ber,
            key="ber_range",
            bind="query-params",
        )
        exact = st.text_input(
            "Exact BER levels (optional, overrides the range)",
            key="ber_exact",
            placeholder="e.g. 1e-3, 3e-3, 0.01",
        )
    else:
        max_count = st.number_input(
            "Largest number of flips",
            1,
            limits.MAX_FLIP_COUNT,
            100,
            key="max_count",
            bind="query-params",
        )
with r3:
    points = st.slider("Points", 1, limits.MAX_BER_POINTS, 6, key="points", bind="query-params")
    trials = trials_slider(key="trials", default=30, high=500)
s1, s2, _ = st.columns([1, 1, 2])
with s1:
    seed = seed_input()
include_bias = s2.checkbox("Include biases", False, key="bias")

play, stop_slot = run_controls("Play", key="play", stop_key="flips_stop")


def figure_of(rec: dict):
    x_title = "bit error rate (log scale)" if rec["rate"] == "ber" else "flips per trial (log)"
    return sweep_figure(
        sweep_curves(rec),
        x_title=x_title,
        title=f"Accuracy under bit flips: {rec['fault_label']} (mean, 95% CI, paired)",
    )


if play:
    with show_errors():
        if not models:
            raise ValueError("Invalid models=[]: select at least one model")
        if rate_mode == "ber":
            levels = parse_floats("ber", exact) if exact.strip() else log_levels(lo, hi, points)
            fm = fault_model_from(
                fmt,
                bits,
                ber=levels[0] if levels else 0.01,
                layers=layers or None,
                include_bias=include_bias,
            )
            kw = {"bers": levels}
        else:
            levels = log_levels(1, max_count, points, integer=True)
            fm = fault_model_from(
                fmt, bits, count=1, layers=layers or None, include_bias=include_bias
            )
            kw = {"counts": levels}
        stream = sweep_iter(models, fm, trials=trials, seed=seed, **kw)
    rec = start_job(
        "flips",
        models=[m.name for m in models],
        methods=[m.method for m in models],
        rate=rate_mode,
        fault_label=fault_label(fm, with_rate=False),
        fault=fm.to_dict(),
        trials=trials,
        seed=seed,
        levels=[],
    )
    stop_button(stop_slot, live=True, key="flips_stop")
    bar = st.progress(0.0, text="Sweeping...")
    chart = LiveChart(interval=0.0)
    with show_errors():
        for i, (level, summaries) in enumerate(stream):
            rec["levels"].append({"level": level, "summaries": summaries})
            label = fmt_ber(level) if rate_mode == "ber" else f"{level} flips"
            bar.progress((i + 1) / len(levels), text=f"Level {i + 1}/{len(levels)}: {label}")
            chart.draw(figure_of(rec))
    chart.slot.empty()
    previous = finish_job(rec, stop_slot, key="flips_stop", bar=bar)

if previous is not None and previous["levels"]:
    if previous["status"] == "stopped":
        st.warning("Sweep stopped; the levels finished so far are shown.")
    st.plotly_chart(figure_of(previous), key="flips_fig")
    rows = []
    for lv in previous["levels"]:
        for name, method, s in zip(previous["models"], previous["methods"], lv["summaries"]):
            rows.append(
                {
                    "level": lv["level"],
                    "model": name,
                    "method": method_label(method),
                    "mean_accuracy": s["mean_accuracy"],
                    "ci95_low": finite_or_none(s["ci95"][0]),  # empty: n/a (1 trial)
                    "ci95_high": finite_or_none(s["ci95"][1]),
                    "std": finite_or_none(s["std"]),
                    "mean_flips": s["mean_flips"],
                    "vs_first_model": s["paired_difference"]["mean"],
                    "deployed_accuracy": s["deployed_accuracy"],
                    "trials": s["trials"],
                }
            )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        key="flips_table",
        column_config={
            "level": st.column_config.NumberColumn(
                "BER" if previous["rate"] == "ber" else "flips", format="%.3g"
            ),
            **{
                k: st.column_config.NumberColumn(k.replace("_", " "), format="percent")
                for k in ("mean_accuracy", "ci95_low", "ci95_high", "deployed_accuracy")
            },
            "vs_first_model": st.column_config.NumberColumn("vs first model", format="%+.3f"),
            "std": st.column_config.NumberColumn(format="%.3f"),
            "mean_flips": st.column_config.NumberColumn("mean flips", format="%.1f"),
        },
    )
    st.download_button(
        "Download CSV",
        rows_to_csv(rows),
        file_name="bit_flips_sweep.csv",
        mime="text/csv",
        key="flips_csv",
        on_click="ignore",
        icon=":material/download:",
    )
elif previous is None:
    st.info("Press **Play** to start the sweep.")
