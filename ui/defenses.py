"""Robustness report extras from sar_core.analysis.attack: the adversarial worst case, cached per model."""

from __future__ import annotations

import streamlit as st

from sar_core.faults.model import FaultModel
from ui.cache import dataset
from ui.compute import check_faults
from ui.registry import Entry

ATTACK_BUDGET = 1000  # the CLI report's default flip budget
ATTACK_FAULTS = FaultModel(format="int8", count=1)  # what the search flips: int8, per tensor


@st.cache_data(show_spinner=False, max_entries=64)
def _attack(key: str, _model, data_key: tuple, seed: int) -> dict:
    from sar_core.analysis.attack import progressive_bit_search

    data = dataset(*data_key)
    r = progressive_bit_search(
        _model,
        data.X_train,
        data.y_train,
        data.X_test,
        data.y_test,
        max_flips=ATTACK_BUDGET,
        seed=seed,
    )
    return {
        "attack_flips": r.flips if r.reached else None,
        "attack_reached": bool(r.reached),
        "attack_final_accuracy": float(r.to_dict()["final_accuracy"]),
    }


def attack_flips(entry: Entry, *, seed: int) -> dict:
    """Flips a progressive bit search (int8, Rakin et al.) needs to bring the model to chance + 10 pt.

    ``attack_flips`` is None when the budget ran out or the search stalled first. An imported
    int8 (QDQ) model is attacked only where its per-tensor int8 deployment is its stored codes.
    """
    check_faults([entry], ATTACK_FAULTS)
    return _attack(entry.key, entry.model, entry.data_key, seed)


def report_html(previous: dict) -> str:
    """The report's BER sweep (and fault sharpness) as one self-contained HTML file."""
    import json

    from sar_core.experiments.study.report import html_report, rows_from_sweep

    sharp = previous.get("sharpness") or []
    values = [s.get("fault_sharpness") for s in sharp]
    xs = [v.get("mean") if isinstance(v, dict) else v for v in values]
    rows = rows_from_sweep(
        previous["levels"],
        models=[n.replace("demo · ", "") for n in previous["models"]],
        methods=previous["methods"],
        task="dashboard report",
        fault=previous["scope"],
        sharpness=xs if xs and all(isinstance(x, (int, float)) for x in xs) else None,
        sharpness_measure="expected loss increase under the fault model",
    )
    return html_report(
        rows,
        title="SAR Lab robustness report",
        description="Exported from the dashboard's Robustness report: every model under the "
        "same fault patterns at each bit error rate (paired; the first model is the reference).",
        spec_text=json.dumps(previous.get("settings", {}), indent=2),
    )
