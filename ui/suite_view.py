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
    from sar_core.experiments.suite_results import RESULTS_PATH

    path = os.environ.get(ENV) or str(RESULTS_PATH)
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return None
    return _load(path, stamp)


@st.cache_data(show_spinner=False, max_entries=4)
def _load(path: str, stamp: int) -> dict | None:  # stamp: a rewritten file is read again
    from sar_core.experiments.suite_results import load_results

    try:
        return load_results(path)
    except ValueError:
        return None


def suite_section() -> None:
    """Per task and method: the paired accuracy difference from SGD, its CI and the verdict."""
    from sar_core.experiments.suite_results import headline, result_rows

    results = suite_results()
    if results is None:
        st.info(
            "The suite's results are not there yet: `python benchmarks/suite.py` writes "
            "benchmarks/results/suite.json, and this view reads it."
        )
        return
    targets = list(results["tasks"][0]["targets"])
    setting = st.radio("Target fault setting", targets, horizontal=True, key="suite_setting")
    rows = result_rows(results, setting)
    st.plotly_chart(suite_delta_figure(rows, setting=setting), key="suite_fig")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "method": h["label"] if results.get("labels") else method_label(h["method"]),
                    "mean Δ vs SGD (pt)": h["mean_delta"],
                    "wins": h["wins"],
                    "ties": h["ties"],
                    "losses": h["losses"],
                    "mean clean Δ (pt)": h["mean_clean_delta"],
                }
                for h in headline(results, setting)
            ]
        ),
        hide_index=True,
        key="suite_summary",
        column_config={
            "mean Δ vs SGD (pt)": st.column_config.NumberColumn(format="%+.2f"),
            "mean clean Δ (pt)": st.column_config.NumberColumn(format="%+.2f"),
        },
    )
    seeds = results.get("config", {}).get("heldout_seeds", [])
    st.caption(
        "Each task's target BER is the smallest at which SGD loses at least 5 points (tuning "
        f"seeds). Judged on {len(seeds) or 'the'} held-out seeds, paired against SGD; wins / ties / "
        "losses come from the seed-level 95% interval (Student t over the per-seed mean "
        "differences: training-seed spread included). Details: sar_core/experiments/suite.py."
    )
