"""The Robustness report page's run and its sections (the analyses: sar_core.analysis.robustness).

``run_report`` measures the chosen models (BER sweep, double-win table, bit x layer grid,
sharpness) into one job record, streaming progress; the ``show_*`` functions draw a stored
record. The page itself is widgets -> ``run_report`` -> ``show_*``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import streamlit as st
from pandas.api.types import is_numeric_dtype

from sar_core.analysis.robustness import SHARPNESS_MEASURES, sharpness_points, sharpness_value
from sar_core.faults.model import FaultModel
from sar_core.plots.robustness import (
    double_win_figure,
    sensitivity_heatmap,
    sharpness_scatter,
    sweep_figure,
)
from sar_core.plots.style import method_label
from sar_core.stats.verdicts import symbol
from ui import registry
from ui.compute import bit_layer_grid, double_win_table, sweep_iter
from ui.compute_landscape import sharpness_of
from ui.defenses import attack_flips, report_html
from ui.inputs import format_ber, rate_of_format
from ui.jobs import finish_job, start_job, stop_button
from ui.layout import percent_columns
from ui.registry import Entry
from ui.results import latency_text, short_name, sweep_curves
from ui.widgets import BER_GRID, carried, fault_label, fmt_ber, fmt_ci, fmt_pct, show_errors

SETTING_NAMES = {"ber": "bit error rate", "range": "BER sweep range", "heat": "heatmap settings"}
SHARPNESS_HELP = {
    "fault_sharpness": "expected loss increase L(faulty w) − L(w), averaged over the fault "
    "patterns of the chosen fault model; 'not finite': in at least one pattern the logits "
    "overflowed (Inf or NaN), so the loss and its mean are infinite",
    "lambda_max": "largest eigenvalue of the loss Hessian (Lanczos): the curvature along the "
    "sharpest direction",
    "trace": "sum of the Hessian's eigenvalues (Hutchinson estimate): the total curvature",
    "sam_sharpness": "worst loss increase within distance ρ = 0.05 of the weights, "
    "max L(w+ε) − L(w) over ‖ε‖ ≤ 0.05 (gradient ascent)",
    "asam_sharpness": "as SAM, with each weight's neighbourhood scaled by its magnitude |w| "
    "(ρ = 0.05)",
    "avg_sharpness": "average-case sharpness: the mean loss increase L(w+ε) − L(w) over random "
    "directions ε of length ρ = 0.05 (the typical, not the worst, nearby loss; about "
    "ρ²·trace/(2·parameters), so tiny values are expected)",
}
SHORT = {
    "fault_sharpness": "fault",
    "lambda_max": "λ_max",
    "trace": "trace",
    "sam_sharpness": "SAM",
    "asam_sharpness": "ASAM",
    "avg_sharpness": "average",
}


def sweep_range(fmt: str) -> tuple[float, float]:
    """The BER sweep range: kept across pages, moved by a format change (on any page showing
    the shared format), starting at the format's own scale (ui.inputs.rate_of_format)."""
    return carried(
        "range",
        lambda: st.select_slider(
            "BER sweep range",
            BER_GRID,
            value=rate_of_format("range", fmt),
            format_func=fmt_ber,
            key="range",
            bind="query-params",
        ),
    )


def run_report(
    models: Sequence[Entry],
    fm: FaultModel,
    count_fm: FaultModel,
    *,
    settings: Mapping,
    stop_slot,
) -> dict:
    """Measure the report into this session's job record (sections appear as they finish); the
    sweep's rates are the grid's steps within ``settings["range"]``."""
    trials, seed = settings["trials"], settings["seed"]
    lo, hi = settings["range"]
    bers = [b for b in BER_GRID if lo <= b <= hi]
    heat_name, heat_flips, heat_trials = settings["heat"]
    with show_errors():
        stream = sweep_iter(models, fm, bers=bers, trials=trials, seed=seed)
    rec = start_job(
        "report",
        models=[m.name for m in models],
        methods=[m.method for m in models],
        sources=[m.source for m in models],
        fault_label=fault_label(fm),
        scope=fault_label(fm, with_rate=False),
        fault=fm.to_dict(),
        classes=models[0].n_classes,
        settings=dict(settings),
        levels=[],
    )
    stop_button(stop_slot, live=True, key="report_stop")
    bar = st.progress(0.0, text="BER sweep...")
    with show_errors():
        for i, (level, summaries) in enumerate(stream):
            rec["levels"].append({"level": level, "summaries": summaries})
            bar.progress(0.4 * (i + 1) / len(bers), text=f"BER sweep: {fmt_ber(level)}")
        bar.progress(0.4, text="Double-win table...")
        rec["table"] = double_win_table(models, fm, trials=trials, seed=seed)
        for i, (m, row) in enumerate(zip(models, rec["table"])):
            row["model"] = m.name
            if settings["attack"]:
                bar.progress(0.4, text=f"Bit-flip attack on {m.name} ({i + 1}/{len(models)})...")
                row.update(attack_flips(m, seed=seed))
        heat = next((m for m in models if m.name == heat_name), models[0])
        rec["heat"] = bit_layer_grid(
            heat,
            count_fm,
            layers=registry.layers_of(heat),
            trials=heat_trials,
            seed=seed,
            progress=lambda f: bar.progress(0.45 + 0.3 * f, text="Bit x layer sensitivity..."),
        )
        reference = rec["table"][models.index(heat)]["deployed_accuracy"]
        rec["heat"].update(model=heat.name, flips=int(heat_flips), reference=reference)
        rec["heat"]["format"] = fm.format
        rec["sharpness"] = []
        for i, m in enumerate(models if settings["sharpness"] else []):
            bar.progress(0.75 + 0.25 * i / len(models), text=f"Sharpness of {m.name}...")
            rec["sharpness"].append(sharpness_of(m, fm, seed=seed))
    return finish_job(rec, stop_slot, key="report_stop", bar=bar)


def show_sweep(rec: Mapping) -> None:
    """Accuracy against the BER, and the HTML download of the sweep."""
    st.subheader("Accuracy against the bit error rate")
    title = f"Accuracy under bit flips: {rec['scope']}"
    st.plotly_chart(sweep_figure(sweep_curves(rec), title=title), key="report_sweep")
    st.download_button(
        "Download HTML report",
        data=lambda rec=rec: report_html(rec),  # built only when clicked
        file_name="sar_lab_report.html",
        mime="text/html",
        key="report_html",
        help="One self-contained file (plotly inlined, opens offline): the sweep with CIs, "
        "paired differences vs the first model, and the settings.",
    )


UNDER = "under faults"  # the fault model is in the heading and the column's help (a long
# column name pushed "training time vs SGD" off the table's right edge)


def double_win_frame(rec: Mapping) -> pd.DataFrame:
    """The double-win table as shown (one row per model; columns of analysis.robustness)."""
    under = UNDER
    rows = []
    for r in rec["table"]:
        d = r["paired_difference"]
        rows.append(
            {
                "model": short_name(r["model"]),
                "method": method_label(r["method"]),
                "clean accuracy": r["clean_accuracy"],
                "deployed": r["deployed_accuracy"],
                under: r["fault_accuracy"],
                "95% CI": fmt_ci(r["fault_ci95"]),
                "vs first (pt)": 100 * d["mean"],
                "verdict": "" if d["verdict"] is None else symbol(d["verdict"]),
                **({"attack flips (int8)": r.get("attack_flips")} if "attack_reached" in r else {}),
                "training time vs SGD": r.get("train_cost_ratio"),
                "parameters": r["parameters"],
                "latency (ms, test set)": r["latency_ms"],
            }
        )
    return pd.DataFrame(rows)


def show_double_win(rec: Mapping) -> None:
    """The double-win table, its figure and the latency note."""
    st.subheader("The double win")
    st.markdown(
        f"Clean accuracy, accuracy under the fault model (**{rec['fault_label']}**), and the "
        "inference cost. SAR changes only training: the architecture, the parameter count and "
        "the latency are the same."
    )
    under = UNDER
    destroyed_note(rec)
    st.dataframe(
        percent_columns(double_win_frame(rec), ("clean accuracy", "deployed", under)),
        hide_index=True,
        key="double_win",
        column_config={
            "deployed": st.column_config.NumberColumn(help="stored in the number format, no flips"),
            under: st.column_config.NumberColumn(
                help=f"mean accuracy under {rec['fault_label']}, over the paired trials"
            ),
            "vs first (pt)": st.column_config.NumberColumn(format="%+.1f"),
            "verdict": st.column_config.TextColumn(
                help="▲ / ▼: the paired 95% CI of the difference from the first model is above "
                "/ below 0; · : it spans 0"
            ),
            "training time vs SGD": st.column_config.NumberColumn(
                "train time ÷ SGD",
                format="%.2fx",
                help="training seconds / those of the SGD model of the same data, architecture "
                "and epochs (checkpoint metadata)",
            ),
            "attack flips (int8)": st.column_config.NumberColumn(
                help="flips the progressive bit search needed to reach 10 points above "
                "chance; empty = not reached within 1000 flips"
            ),
            "latency (ms, test set)": st.column_config.NumberColumn(format="%.2f"),
        },
    )
    table = rec["table"]
    t1, t2 = st.columns([3, 2], vertical_alignment="center")
    with t1:
        points = [
            {
                **r,
                "label": short_name(r["model"]),
                "mean_accuracy": r["fault_accuracy"],
                "ci95": r["fault_ci95"],
            }
            for r in table
        ]
        fig = double_win_figure(points, fault_label=rec["fault_label"])
        st.plotly_chart(fig, key="double_win_fig")
    t2.caption(
        f"Latency: median over interleaved forward passes over the {table[0]['test_samples']} "
        "test samples on this server's CPU (one thread); "
        + latency_text([r["latency_ms"] for r in table])
        + " *vs first*: mean paired difference from the first model, with its verdict."
    )


def show_heatmap(h: Mapping) -> None:
    """Accuracy drop per (layer, bit)."""
    st.subheader("Which bit of which layer?")
    st.markdown(
        f"{h['flips']} flips per trial, all in one layer and one bit position, on "
        f"**{short_name(h['model'])}**; colour = accuracy drop from the fault-free deployed model."
    )
    fig = sensitivity_heatmap(
        h["accuracy"],
        bits=h["bits"],
        layers=h["layers"],
        fmt=h["format"],
        reference=h["reference"],
        title=f"Accuracy drop per (layer, bit): {h['flips']} flips, {h['format']}",
    )
    st.plotly_chart(fig, key="heatmap")


def show_sharpness(rec: Mapping) -> None:
    """Sharpness against robustness (a measure chosen here: display only) and the table."""
    st.subheader("Sharpness against robustness")
    measure = st.selectbox(
        "Sharpness measure (x axis)",
        list(SHARPNESS_MEASURES),
        format_func=SHARPNESS_MEASURES.get,
        key="measure",
        bind="query-params",
    )
    labels = [short_name(n) for n in rec["models"]]
    points = sharpness_points(labels, rec["methods"], rec["table"], rec["sharpness"], measure)
    y_title = f"accuracy under faults, {rec['fault_label']} (%)"
    name = SHARPNESS_MEASURES[measure]
    bad = [p["label"] for p in points if not _finite(p["x"])]
    if bad and len(bad) == len(points):
        st.warning(f"**Nothing to plot: the {name} is not finite for any model.** {_why(rec)}")
    else:
        if bad:
            st.caption(f"Not drawn ({name} not finite): {', '.join(bad)}. {_why(rec)}")
        fig = sharpness_scatter(points, x_title=name, y_title=y_title)
        st.plotly_chart(fig, key="scatter")
    frame = sharpness_frame(labels, rec["sharpness"])
    st.dataframe(
        frame,
        hide_index=True,
        key="sharp_table",
        column_config={  # a column made text ("not finite") must not be drawn as numbers
            SHORT[k]: st.column_config.TextColumn(help=SHARPNESS_HELP[k])
            if not is_numeric_dtype(frame[SHORT[k]])
            else st.column_config.NumberColumn(format="%.4g", help=SHARPNESS_HELP[k])
            for k in SHARPNESS_MEASURES
        },
    )


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def _why(rec: Mapping) -> str:
    return (
        f"At {rec['fault_label']} some fault patterns make the logits overflow (Inf or NaN): "
        "the loss there is infinite, and so is its mean. Choose another measure, or a lower "
        "bit error rate or fewer bits for the fault model."
    )


def sharpness_frame(labels: Sequence[str], reports: Sequence[Mapping]) -> pd.DataFrame:
    """The sharpness table: one row per model; a column with a value that is not finite is
    text ("not finite", never a bare "Infinity")."""
    frame = pd.DataFrame(
        [
            {"model": n, **{SHORT[k]: sharpness_value(sh, k) for k in SHARPNESS_MEASURES}}
            for n, sh in zip(labels, reports)
        ]
    )
    for col in list(frame.columns)[1:]:
        values = list(frame[col])
        if not all(_finite(v) for v in values):
            frame[col] = [
                f"{v:.4g}" if _finite(v) else "" if v is None else "not finite" for v in values
            ]
    return frame


def destroyed_note(rec: Mapping) -> None:
    """A warning when every model is at or below chance under the fault model (the table's
    zeros and '+0.0' differences then mean destroyed, not equal)."""
    classes = rec.get("classes")
    acc = [r["fault_accuracy"] for r in rec["table"]]
    if not classes or not acc or max(acc) > 1 / classes:
        return
    fmt = rec.get("fault", {}).get("format", "")
    scale = f" ({fmt}'s own scale is about {fmt_ber(format_ber(fmt))})" if fmt else ""
    st.warning(
        f"**At this fault model ({rec['fault_label']}) every model is destroyed:** accuracy "
        f"under faults is {fmt_pct(min(acc))}–{fmt_pct(max(acc))}, at or below chance "
        f"({fmt_pct(1 / classes)} on {classes} classes), so the differences between models are "
        f"0. Choose a lower bit error rate{scale} or fewer bits.",
        icon=":material/warning:",
    )
