"""The Bit flips page's widget groups, its live sweep and its results section.

``rate_widgets`` / ``fault_widgets`` read the settings; ``play`` runs the paired sweep
(ui.compute.sweep_iter / asym_sweep_iter) into the job record while the chart grows; ``show``
draws a stored record (figure, table, CSV).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import streamlit as st

from sar_core import limits
from sar_core.data.io import rows_to_csv
from sar_core.faults.model import FaultModel
from sar_core.formats.bits import get_format
from sar_core.names import FAULT_KINDS, FAULT_TARGETS
from ui.compute import asym_sweep_iter, log_levels, sweep_iter
from ui.inputs import (
    Checks,
    check_float_in,
    check_int_in,
    rate_of_format,
    read_bers,
)
from ui.jobs import finish_job, start_job, stop_button
from ui.layout import changed_settings, stale_box
from ui.registry import Entry
from ui.results import flips_figure, flips_table, sweep_rows
from ui.widgets import (
    BER_GRID,
    LiveChart,
    carried,
    fault_label,
    fmt_ber,
    seed_input,
    show_errors,
    trials_slider,
)

RATES = {
    "ber": "Bit error rate sweep",
    "count": "Exact flip-count sweep",
    "asym": "Asymmetric sweep (1→0 and 0→1 rates)",
}
SETTING_NAMES = {
    "models": "models", "format": "format", "bits": "bits", "layers": "layers", "bias": "biases",
    "kind": "fault kind", "rate": "fault rate", "levels": "levels", "trials": "trials",
    "seed": "seed",
}  # fmt: skip


@dataclass
class Rate:
    """The chosen sweep: mode, its levels, the first level's rate fields, the 0→1 ratio."""

    mode: str
    levels: list = field(default_factory=list)
    rate: dict = field(default_factory=dict)  # FaultModel rate fields of the first level
    ratio: float = 0.0  # asymmetric sweeps: 0→1 rate / 1→0 rate
    trials: int = 30


def _ber_levels(mode: str, points: int, checks: Checks) -> list[float]:
    # a session without a range of its own (a shared link: ?format=float32) starts at the format's
    default = rate_of_format("ber_range", st.session_state.get("format", "int8"))
    lo, hi = carried(  # follows the format (ui.inputs.rates_follow_format), kept across pages
        "ber_range",
        lambda: st.select_slider(
            "BER range (log scale)" if mode == "ber" else "1→0 rate range (log scale)",
            BER_GRID, value=default, format_func=fmt_ber, key="ber_range",
            bind="query-params",
        ),
    )  # fmt: skip
    exact = st.text_input(
        "Exact levels (optional, overrides the range)",
        key="ber_exact",
        placeholder="e.g. 1e-3, 3e-3, 0.01",
    )
    return (checks.check(read_bers, exact) if exact.strip() else log_levels(lo, hi, points)) or []


def _ratio(levels: Sequence[float], checks: Checks) -> float:
    ratio = st.number_input(
        "0→1 rate as a multiple of the 1→0 rate",
        value=0.1,
        format="%.3g",
        key="ratio",
        bind="query-params",
        help="Some memories lose charge far more often than they gain it: 1→0 errors "
        "dominate. 0.1: a stored 0 becomes 1 ten times less often than a 1 becomes 0.",
    )
    top = max(levels) if levels else 1.0
    ratio = checks.check(check_float_in, ratio, "The 0→1 / 1→0 ratio", low=0.0, high=1.0 / top)
    return 0.0 if ratio is None else ratio


def rate_widgets(checks: Checks) -> Rate:
    """Fault-rate mode, levels (log-spaced or typed), trials and, for asymmetric sweeps, the
    0→1 / 1→0 ratio."""
    r1, r2, r3 = st.columns([2, 3, 2])
    mode = r1.radio(
        "Fault rate", list(RATES), format_func=RATES.get, key="rate", bind="query-params"
    )
    with r3:
        points = st.slider("Points", 1, limits.MAX_BER_POINTS, 6, key="points", bind="query-params")
        out = Rate(mode, trials=trials_slider(key="trials", default=30))
    with r2:
        if mode == "count":
            top = carried(
                "max_count",
                lambda: st.number_input(
                    "Largest number of flips", value=100, step=1, key="max_count"
                ),
            )
            top = checks.check(
                check_int_in, top, "The largest number of flips", low=1, high=limits.MAX_FLIP_COUNT
            )
            out.levels = log_levels(1, top, points, integer=True) if top else []
            out.rate = {"count": 1}
            return out
        out.levels = _ber_levels(mode, points, checks)
        first = out.levels[0] if out.levels else 0.01
        out.rate = {"ber": first}
        if mode == "asym":
            out.ratio = _ratio(out.levels, checks)
            out.rate = {"ber_10": first, "ber_01": out.ratio * first}
    return out


def fault_widgets(fmt: str, checks: Checks) -> dict:
    """The seed, what a hit does, where it lands, the burst length and whether biases are
    eligible."""
    s1, s2, s3, s4, s5 = st.columns(5)
    with s1:
        seed = seed_input(checks=checks)
    kind = s2.selectbox(
        "What a hit does", FAULT_KINDS, key="kind", bind="query-params",
        help="flip: the bit inverts (a soft error); stuck-at-0 / 1: the bit is forced to 0 / 1 "
        "(a worn or broken memory cell; a bit that already holds that value does not change).",
    )  # fmt: skip
    target = s3.selectbox(
        "Where", FAULT_TARGETS, key="target", bind="query-params",
        help="weights: the stored parameters; activations: each layer's outputs as computed.",
    )  # fmt: skip
    with s4:
        burst = st.number_input(
            "Burst (adjacent bits)", value=1, step=1, key="burst", bind="query-params",
            help="A hit changes this many neighbouring bits of one word, from the chosen bit up.",
        )  # fmt: skip
    width = get_format(fmt).width
    burst = checks.check(check_int_in, burst, "The burst length", low=1, high=width) or 1
    bias = carried("bias", lambda: s5.checkbox("Include biases", False, key="bias"))
    return {"seed": seed, "kind": kind, "target": target, "burst": burst, "include_bias": bias}


def play(
    models: Sequence[Entry], fm: FaultModel, rate: Rate, *, seed: int, settings: Mapping, stop_slot
) -> dict:
    """Run the paired sweep into this session's job record, drawing the chart as it grows."""
    with show_errors():
        if rate.mode == "asym":
            stream = asym_sweep_iter(
                models, fm, rate.levels, ratio=rate.ratio, trials=rate.trials, seed=seed
            )
        else:
            kw = {"bers": rate.levels} if rate.mode == "ber" else {"counts": rate.levels}
            stream = sweep_iter(models, fm, trials=rate.trials, seed=seed, **kw)
    rec = start_job(
        "flips",
        models=[m.name for m in models],
        methods=[m.method for m in models],
        sources=[m.source for m in models],
        rate=rate.mode,
        ratio=rate.ratio if rate.mode == "asym" else None,
        fault_label=fault_label(fm, with_rate=False),
        fault=fm.to_dict(),
        settings=dict(settings),
        levels=[],
    )
    stop_button(stop_slot, live=True, key="flips_stop")
    bar = st.progress(0.0, text="Sweeping...")
    chart = LiveChart(interval=0.0)
    n = len(rate.levels)
    with show_errors():
        for i, (level, summaries) in enumerate(stream):
            rec["levels"].append({"level": level, "summaries": summaries})
            label = f"{level} flips" if rate.mode == "count" else fmt_ber(level)
            bar.progress((i + 1) / n, text=f"Level {i + 1}/{n}: {label}")
            chart.draw(flips_figure(rec))
    chart.slot.empty()
    return finish_job(rec, stop_slot, key="flips_stop", bar=bar)


def show(previous: Mapping | None, settings: Mapping) -> None:
    """The stored sweep: figure, table and CSV (or what to press)."""
    if previous is None:
        st.info("Press **Play** to start the sweep.")
        return
    if not previous["levels"]:
        return
    if previous["status"] == "stopped":
        st.warning("Sweep stopped; the levels finished so far are shown.")
    changed = changed_settings(previous.get("settings", {}), settings, SETTING_NAMES)
    with stale_box("flips", changed, "Play"):
        st.plotly_chart(flips_figure(previous), key="flips_fig")
        rows = sweep_rows(previous)
        flips_table(rows, previous["rate"])
    st.download_button(
        "Download CSV",
        rows_to_csv(rows),
        file_name="bit_flips_sweep.csv",
        mime="text/csv",
        key="flips_csv",
        on_click="ignore",
        icon=":material/download:",
    )
