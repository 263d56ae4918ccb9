"""Drawing stored sweep results: curves, table rows (CI bounds clamped to [0, 100]%), the table.

A job record keeps per-level, per-model summaries; the helpers here turn it into what the
pages show, so the Bit flips page and the Robustness report draw a sweep the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd
import streamlit as st

from sar_core.plots.robustness import sweep_figure
from sar_core.plots.style import method_label
from sar_core.stats.verdicts import symbol, verdict
from ui.layout import clip01, text_where_missing
from ui.widgets import compact_bits, finite_or_none, fmt_ber


def short_name(name: str) -> str:
    """A model name without the 'demo · ' prefix (legends, tables)."""
    return name.replace("demo · ", "")


def sweep_curves(rec: Mapping) -> list[dict]:
    """A sweep job record -> figure curves (sar_core.analysis.sweeps.figure_curves); own
    models (not demo) dashed."""
    from sar_core.analysis.sweeps import figure_curves

    sources = rec.get("sources") or ["demo"] * len(rec["models"])
    return figure_curves(
        ((lv["level"], lv["summaries"]) for lv in rec["levels"]),
        labels=[short_name(n) for n in rec["models"]],
        methods=rec["methods"],
        dashed=[s != "demo" for s in sources],
    )


def flips_figure(rec: Mapping):
    """The live / stored BER (or flip-count) sweep of the Bit flips page."""
    x_title = {
        "ber": "bit error rate (log scale)",
        "count": "flips per trial (log)",
        "asym": f"1→0 rate, log scale (0→1 = {rec.get('ratio') or 0:g} × it)",
    }[rec["rate"]]
    return sweep_figure(
        sweep_curves(rec),
        x_title=x_title,
        title=f"Accuracy under bit flips: {rec['fault_label']} (mean, 95% CI, paired)",
    )


def _pct(x) -> float | None:
    """An accuracy (fraction) in percent; None when undefined."""
    v = finite_or_none(x)
    return None if v is None else 100 * v


def sweep_rows(rec: Mapping) -> list[dict]:
    """One row per (level, model): what the table shows and the CSV holds, every accuracy in
    percent (``_pct``) and every difference in points (``_pt``), with the fault it measured.

    ``vs_first_pt``: the paired difference from the first model, with its verdict
    (sar_core.stats.verdicts). ``mean_changed_bits``: stored bits (or activation bits) that
    changed value; ``mean_hits``: sites hit, which for stuck-at faults include bits that
    already held the stuck value and change nothing.
    """
    fault = rec.get("fault") or {}
    bits = compact_bits(fault["bits"]) if fault.get("bits") else ""
    rows = []
    for lv in rec["levels"]:
        for i, (name, method, s) in enumerate(zip(rec["models"], rec["methods"], lv["summaries"])):
            d = s["paired_difference"]
            rows.append(
                {
                    "level": lv["level"],
                    "format": fault.get("format", ""),
                    "bits": bits,
                    "fault": rec.get("fault_label", ""),
                    "model": name,
                    "method": method_label(method),
                    "mean_accuracy_pct": _pct(s["mean_accuracy"]),
                    "ci95_low_pct": _pct(clip01(s["ci95"][0])),  # empty: n/a (1 trial)
                    "ci95_high_pct": _pct(clip01(s["ci95"][1])),
                    "std_pt": _pct(s["std"]),
                    "mean_changed_bits": s["mean_changed_bits"],
                    "mean_hits": s["mean_flips"],
                    "vs_first_pt": 100 * d["mean"],
                    "verdict": "" if i == 0 else symbol(verdict(*d["ci95"])),
                    "deployed_accuracy_pct": _pct(s["deployed_accuracy"]),
                    "trials": s["trials"],
                }
            )
    return rows


PCT = ("mean_accuracy_pct", "ci95_low_pct", "ci95_high_pct", "std_pt", "deployed_accuracy_pct")


def flips_table(rows: list[dict], rate: str) -> None:
    """The sweep table: accuracies in %, spreads and differences in points, changed bits (not
    hits); the format and bits are in the title above it (and in the CSV)."""
    shown = [
        {k: v for k, v in r.items() if k not in ("mean_hits", "format", "bits", "fault")}
        for r in rows
    ]
    frame = text_where_missing(pd.DataFrame(shown), dict.fromkeys(PCT, "{:.2f}"))
    name = {"ber": "BER", "count": "flips", "asym": "1→0 rate"}[rate]
    if rate != "count":  # rates as every page writes them ("1e-6", not 0.000001)
        frame["level"] = frame["level"].map(fmt_ber)
    st.dataframe(
        frame,
        hide_index=True,
        key="flips_table",
        column_config={
            "level": st.column_config.TextColumn(name)
            if rate != "count"
            else st.column_config.NumberColumn(name, format="%d"),
            **{
                k: st.column_config.NumberColumn(_label(k), format="%.2f", help=_help(k))
                for k in PCT
            },
            "vs_first_pt": st.column_config.NumberColumn(
                "vs first model (pt)",
                format="%+.1f",
                help="mean paired difference from the first model, in percentage points",
            ),
            "verdict": st.column_config.TextColumn(
                help="▲ / ▼: the paired 95% CI of the difference from the first model is above "
                "/ below 0; · : it spans 0"
            ),
            "mean_changed_bits": st.column_config.NumberColumn(
                "bits changed / trial",
                format="%.3g",
                help="stored bits that changed value (a stuck-at hit on a bit that already "
                "holds that value changes nothing and is not counted)",
            ),
        },
    )


def _label(key: str) -> str:
    """'mean_accuracy_pct' -> 'mean accuracy (%)', 'std_pt' -> 'std (pt)'."""
    name, unit = key.rsplit("_", 1)
    return f"{name.replace('_', ' ')} ({'%' if unit == 'pct' else unit})"


def _help(key: str) -> str | None:
    return {
        "std_pt": "standard deviation of the accuracy over the trials, in percentage points",
        "deployed_accuracy_pct": "stored in the number format, no flips",
        "ci95_low_pct": "empty: undefined with one trial",
    }.get(key)


def barrier_caption(res: dict) -> str:
    """Whether the straight line between the two models crosses a loss barrier (from the data)."""
    inside = [
        (t, v) for t, v in zip(res["t"], res["loss"]) if 0 <= t <= 1 and math.isfinite(float(v))
    ]
    if not inside:
        return "The loss is not finite along this line."
    ends = max(float(res["loss_a"]), float(res["loss_b"]))
    t_top, top = max(inside, key=lambda p: float(p[1]))
    if top > ends * 1.01:
        return (
            f"A barrier: between the two models the loss rises to {top:.3g} (t = {t_top:.2f}), "
            f"above both ends ({float(res['loss_a']):.3g}, {float(res['loss_b']):.3g})."
        )
    return "No barrier: the loss stays at or below the higher end along the whole line."


def fault_rise_text(results: list[dict]) -> str:
    """How much each model's loss rose at the real fault (α = 1), and where it rose least."""
    rises = []
    for r in results:
        fl, dl = r.get("fault_loss"), r.get("deployed_loss")
        ok = fl is not None and dl is not None and math.isfinite(float(fl))
        rises.append((float(fl) - float(dl)) if ok else math.inf)
    names = [method_label(r.get("method", "")) or r.get("label", "?") for r in results]
    if len(set(names)) < len(names):  # two models of one method: add their labels
        names = [f"{n} ({r.get('label', i)})" for i, (n, r) in enumerate(zip(names, results))]
    parts = [
        f"{n}: {'+' if v >= 0 else ''}{v:.3g}" if math.isfinite(v) else f"{n}: not finite"
        for n, v in zip(names, rises)
    ]
    text = "Loss rise at α = 1 — " + ", ".join(parts) + "."
    finite = [(v, n) for v, n in zip(rises, names) if math.isfinite(v)]
    if len(finite) > 1 and min(finite)[0] != max(finite)[0]:
        text += f" Least for {min(finite)[1]}: the flattest along this fault."
    return text


def latency_text(latencies_ms: list[float]) -> str:
    """The latency spread, measured: within a few percent reads as timing noise."""
    lo, hi = min(latencies_ms), max(latencies_ms)
    spread = 100 * (hi - lo) / lo if lo > 0 else math.inf
    if spread <= 25:
        return (
            f"the models are within {spread:.0f}% of each other, timing noise for one "
            "architecture (SAR changes only training)."
        )
    return f"the slowest model took {spread:.0f}% longer than the fastest in this measurement."
