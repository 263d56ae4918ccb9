"""The Robustness report's cross-task view: the suite's results file (benchmarks/suite.py)."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from sar_core.plots.robustness import suite_delta_figure
from sar_core.plots.style import method_label

ENV = "SAR_SUITE_RESULTS"  # another results file than the bundled one (tests, experiments)


def suite_results() -> dict | None:
    """The suite's results (None when the file does not exist yet); read once per file version."""
    from sar_core.experiments.suite import RESULTS_PATH

    path = os.environ.get(ENV) or str(RESULTS_PATH)
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return None
    return _load(path, stamp)


@st.cache_data(show_spinner=False, max_entries=4)
def _load(path: str, stamp: int) -> dict | None:  # stamp: a rewritten file is read again
    from sar_core.experiments.suite import load_results

    try:
        return load_results(path)
    except ValueError:
        return None


def suite_section() -> None:
    """Per task and method: the paired accuracy difference from SGD, its CI and the verdict."""
    from sar_core.experiments.suite import result_rows

    results = suite_results()
    if results is None:
        st.info(
            "The suite's results are not there yet: `python benchmarks/suite.py` writes "
            "benchmarks/results/suite.json, and this view reads it."
        )
        return
    setting = st.radio("Fault setting", ["int8", "float16"], horizontal=True, key="suite_setting")
    rows = result_rows(results, setting)
    st.plotly_chart(suite_delta_figure(rows, setting=setting), key="suite_fig")
    summary = results["summary"][setting]
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "method": method_label(m.split("@")[0]) + m[len(m.split("@")[0]) :],
                    "mean Δ vs SGD (pt)": s["mean_delta"],
                    "wins": s["wins"],
                    "ties": s["ties"],
                    "losses": s["losses"],
                    "mean clean Δ (pt)": s["mean_clean_delta"],
                }
                for m, s in summary.items()
            ]
        ),
        hide_index=True,
        key="suite_summary",
        column_config={
            "mean Δ vs SGD (pt)": st.column_config.NumberColumn(format="%+.2f"),
            "mean clean Δ (pt)": st.column_config.NumberColumn(format="%+.2f"),
        },
    )
    st.caption(
        "Each task's target BER is the smallest at which SGD loses at least 5 points; every "
        "method was tuned on tuning seeds and is judged here on held-out seeds, paired against "
        "SGD (win: CI above 0; loss: below; tie otherwise). Details: sar_core/experiments/suite.py."
    )
