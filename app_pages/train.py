"""Train: SAR next to baselines with live curves, or SAR at several rho (the rho sweep)."""

import pandas as pd
import streamlit as st

from sar_core import limits
from sar_core.bits import parse_bits
from sar_core.data import DATASETS
from sar_core.optim import GEOMETRIES, SAR_DEFAULT_RHO
from sar_core.plots.style import method_label
from sar_core.plots.training import rho_sweep_figure, training_curves_figure
from sar_core.training import METHODS, spec_for
from sar_core.validate import check_int
from ui import registry
from ui.cache import dataset
from ui.compute import paired_campaign
from ui.jobs import finish_job, job, run_controls, start_job, stop_button, train_runs
from ui.panels import models_panel, upload_box
from ui.training import (
    compare_plans,
    faulty_column,
    results_rows,
    rho_points,
    rho_sweep_plans,
)
from ui.widgets import (
    ber_select,
    fault_label,
    fault_model_from,
    format_picker,
    page_header,
    parse_floats,
    seed_input,
    show_errors,
)

page_header(
    "Train",
    "Train SAR next to SGD, Adam, SAM, ASAM and fault-aware training on the same data, from the "
    "same initial weights; only the optimizer differs. Curves update live, and each model is then "
    "measured under the fault model below (the same fault patterns for every model). "
    "**Try first:** press *Train* with the defaults (about 10 s), then switch to *ρ sweep* to see "
    "that SAR's robustness is not monotonic in ρ.",
)
previous = job("train")

mode = st.segmented_control(
    "Mode",
    ["compare", "rho sweep"],
    default="compare",
    format_func={"compare": "Compare methods", "rho sweep": "ρ sweep (SAR)"}.get,
    key="mode",
    required=True,
    bind="query-params",
)

c1, c2, c3, c4 = st.columns(4)
ds_name = c1.selectbox("Dataset", DATASETS, key="dataset", bind="query-params")
arch = c2.segmented_control(
    "Architecture",
    ["mlp", "cnn"] if ds_name == "digits" else ["mlp"],
    default="mlp",
    format_func=str.upper,
    key="arch",
    required=True,
    help="The small CNN needs images: digits only.",
)
epochs = c3.number_input("Epochs", 1, limits.MAX_EPOCHS, 30, key="epochs", bind="query-params")
with c4:
    seed = seed_input()

if mode == "compare":
    methods = st.multiselect(
        "Methods to compare",
        list(METHODS),
        default=["sgd", "sam", "sar"],
        format_func=method_label,
        key="methods",
        bind="query-params",
    )
    rhos = []
else:
    r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
    rho_text = r1.text_input(
        "SAR's ρ values (comma-separated)",
        "0.05, 0.1, 0.2, 0.5, 1, 2",
        key="rhos",
        bind="query-params",
    )
    with_ref = r2.checkbox("SGD reference", True, key="ref", bind="query-params")
    methods = ["sar"]

c1, c2, c3 = st.columns(3)
lr = c1.number_input(
    "Learning rate (empty = default)",
    min_value=1e-5,
    max_value=10.0,
    value=None,
    format="%.4g",
    key="lr",
    bind="query-params",
    help="Default: 0.05 for SGD-based methods, 0.002 for Adam.",
)
rho_sar = c2.number_input(
    "SAR's ρ",
    0.0,
    100.0,
    SAR_DEFAULT_RHO,
    format="%.3g",
    key="rho",
    bind="query-params",
    disabled=mode != "compare",
    help="Neighbourhood radius of SAR (elementwise geometry: relative to |w| + η).",
)
trials = c3.slider(
    "Fault trials per model",
    1,
    200,
    30,
    key="trials",
    bind="query-params",
    help="Monte Carlo fault patterns used to measure each trained model.",
)

with st.expander("More settings"):
    m1, m2, m3, m4, m5 = st.columns(5)
    rho_sam = m1.number_input("SAM's ρ", 0.0, 100.0, 0.05, format="%.3g", key="rho_sam")
    rho_asam = m2.number_input("ASAM's ρ", 0.0, 100.0, 0.5, format="%.3g", key="rho_asam")
    geometry = m3.selectbox("SAR geometry", GEOMETRIES, index=1, key="geometry")
    rho_mode = m4.selectbox(
        "SAR ρ mode",
        ["fixed", "calibrated"],
        key="rho_mode",
        help="calibrated: ρ is set so SAM's worst case matches the expected fault damage.",
    )
    batch = m5.number_input("Batch size", 1, 4096, 64, key="batch")
    widths_text = st.text_input(
        "Hidden widths / CNN channels (empty = default: 128,64 MLP; 8,16 CNN)", "", key="widths"
    )

st.markdown(
    "**SAR's fault model** — what SAR (and FAT) train against, and what every model is "
    "measured under afterwards."
)
f1, f2, f3 = st.columns([2, 1, 3])
with f1:
    t_format = format_picker(key="tformat", default="int8")
t_bits = f2.text_input(
    "Bits", "all", key="tbits", help="all, sign, exponent, mantissa, msb, lsb, 0-7, 30,31 ..."
)
with f3:
    t_ber = ber_select("Bit error rate", key="tber", default=0.01)

go, stop_slot = run_controls("Train", key="train_go", stop_key="train_stop")
go = go and t_ber is not None  # a bad exact BER: its error is shown, skip the run


def parse_widths(text: str) -> tuple[int, ...] | None:
    """Comma-separated positive integer widths (empty: the default); ValueError naming widths."""
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    widths = []
    for part in parts:
        try:
            value = int(part)
        except ValueError:
            value = part  # not an integer literal (2.7, inf, abc): check_int names it
        widths.append(check_int("widths", value, low=1, high=limits.MAX_WIDTH))
    return tuple(widths) or None


def plans_for(data) -> tuple[list[dict], object, object]:
    """Validated training plans, fault model and model spec (ValueError on bad settings)."""
    widths = parse_widths(widths_text)
    spec = spec_for(data, arch, widths)
    fm = fault_model_from(t_format, parse_bits(t_bits, t_format), ber=t_ber)
    base = dict(epochs=int(epochs), lr=lr, batch_size=int(batch), seed=seed, fault_model=fm)
    tag = f"{ds_name} {arch.upper()}"
    if mode == "compare":
        rho_of = {"sam": rho_sam, "asam": rho_asam, "sar": rho_sar}
        plans = compare_plans(
            methods, base, tag=tag, rho_of=rho_of, geometry=geometry, rho_mode=rho_mode
        )
    else:
        rhos = parse_floats("rho", rho_text)
        plans = rho_sweep_plans(rhos, base, tag=tag, geometry=geometry, with_reference=with_ref)
    return plans, fm, spec


if go:
    with show_errors():
        data = dataset(ds_name, seed)
        plans, fm, spec = plans_for(data)
    rec = start_job(
        "train",
        mode=mode,
        runs=[],
        fault=fm.to_dict(),
        fault_label=fault_label(fm),
        plans=[{k: v for k, v in p.items() if k != "config"} for p in plans],
    )
    stop_button(stop_slot, live=True, key="train_stop")
    train_runs(rec, spec, data, plans)
    with show_errors(), st.spinner("Measuring every model under the same faults..."):
        entries = registry.get([r["model"] for r in rec["runs"]])
        rec["faulty"] = paired_campaign(entries, fm, trials=trials, seed=seed)
    previous = finish_job(rec, stop_slot, key="train_stop")

if previous is not None:
    if previous["status"] == "stopped":
        st.warning(
            "Training was stopped. Finished models are kept in *Your models*; the run "
            "that was interrupted is shown up to its last full epoch."
        )
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
            rho_sweep_figure(points, fault_label=previous["fault_label"], baseline=reference),
            key="rho_sweep_fig",
        )
        st.caption(
            "Robustness is not monotonic in ρ: too small does nothing, too large underfits. "
            "Paired trials: every point saw the same fault patterns."
        )

st.subheader("Your models")
st.caption(
    "Kept for this browser session only. Download a model to keep it; upload it later "
    "to use it again on any page."
)
models_panel()
upload_box()
