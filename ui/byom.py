"""Your model page: uploads, one fault campaign, fine-tuning and the fine-tuned file's download.

The uploaded model and data are registered in this session (``ui.registry.add_imported``) so
every page lists them next to the demo models. A campaign is cached on the model's and data's
content digests; fine-tuning runs on a copy (the registered model is never trained) and its
result, the .onnx file written back in the same graph, is registered as another model.
"""

from __future__ import annotations

import streamlit as st

from sar_core.faults.model import FaultModel
from sar_core.plots.style import method_label
from ui.cache import dataset
from ui.registry import Entry, add_imported_result

DASHBOARD_MAX_EPOCHS = 10  # fine-tuning in a page: a few epochs, the CLI has no such limit
RESULT_KEY = "sar_finetune_results"  # session_state: entry name -> list of fine-tune results


def check_fault_model(entry: Entry, fm: FaultModel) -> None:
    """ValueError unless ``fm`` hits a quantized model's stored int8 codes exactly."""
    from sar_core.data.onnx_fault_check import check_fault_model as check

    check(entry.model, fm)


@st.cache_data(show_spinner=False, max_entries=64)
def _campaign(key: str, _model, data_key: tuple, fm_dict: dict, trials: int, seed: int) -> dict:
    from sar_core.analysis.campaign import run_campaign

    data = dataset(*data_key)
    fm = FaultModel.from_dict(fm_dict)
    return run_campaign(_model, data.X_test, data.y_test, fm, trials=trials, seed=seed).summary()


@st.cache_data(show_spinner=False, max_entries=64)
def _clean(key: str, _model, data_key: tuple) -> float:
    from sar_core.engine.evaluate import evaluate

    data = dataset(*data_key)
    return evaluate(_model, data.X_test, data.y_test).accuracy


def clean_accuracy(entry: Entry) -> float | None:
    """An imported model's accuracy without faults: a fine-tuned one's on its held-out rows
    (as its fine-tuning result shows), else on all uploaded rows (as *Measure* shows)."""
    for results in st.session_state.get(RESULT_KEY, {}).values():
        for r in results:
            if r["name"] == entry.name:
                return r["after"]["clean_accuracy"]
    try:
        return _clean(entry.key, entry.model, entry.data_key)
    except ValueError:  # data the model cannot be evaluated on: no number to show
        return None


def campaign(entry: Entry, fm: FaultModel, *, trials: int, seed: int) -> dict:
    """Clean, deployed and faulty accuracy of an uploaded model on its uploaded data."""
    check_fault_model(entry, fm)
    return _campaign(entry.key, entry.model, entry.data_key, fm.to_dict(), trials, seed)


def finetune(
    entry: Entry,
    *,
    method: str,
    epochs: int,
    fm: FaultModel,
    trials: int,
    seed: int,
    on_epoch=None,
) -> dict:
    """Fine-tune a copy on 80% of the uploaded data, write it back, measure on the other 20%.

    Returns the before / after summaries, the history and the new file's bytes; the fine-tuned
    model is registered in this session. ``on_epoch(record)`` follows each epoch.
    """
    from dataclasses import replace

    import numpy as np

    from sar_core.cli.finetune import FINETUNE_LR, finetune_model, measure, same_graph
    from sar_core.data.onnx_export import export_onnx
    from sar_core.training.config import TARGETED, TrainConfig
    from sar_core.validate import check_int

    check_int("epochs", epochs, low=1, high=DASHBOARD_MAX_EPOCHS)
    check_fault_model(entry, fm)
    full = dataset(*entry.data_key)
    perm = np.random.default_rng(seed).permutation(len(full.y_test))
    k = max(1, len(perm) // 5)  # the validation part: never trained on
    if len(perm) - k < 1:
        raise ValueError(f"Invalid data rows={len(perm)}: too few to hold out a validation part")
    val, tr = perm[:k], perm[k:]
    X, y = full.X_test, full.y_test
    data = replace(full, X_train=X[tr], y_train=y[tr], X_test=X[val], y_test=y[val])
    config = TrainConfig(
        method=method,
        epochs=epochs,
        lr=FINETUNE_LR,
        fault_model=fm if method in TARGETED else None,
        seed=seed,
    )
    before = measure(entry.model, data, fm, trials=trials, seed=seed)
    model, history = finetune_model(entry.model, data, config, on_epoch=on_epoch)
    raw, report = export_onnx(model, entry.loaded.data)
    new = add_imported_result(entry, raw, f"{method_label(method)} {epochs} ep")
    after = measure(new.model, data, fm, trials=trials, seed=seed)
    out = {
        "name": new.name,
        "method": method,
        "epochs": epochs,
        "fault_model": fm.to_dict(),
        "before": before,
        "after": after,
        "history": history,
        "same_graph": same_graph(entry.loaded.data, raw),
        "saturated_codes": report["saturated_codes"],
        "raw": raw,
        "train_rows": int(len(tr)),
        "val_rows": int(len(val)),
    }
    st.session_state.setdefault(RESULT_KEY, {}).setdefault(entry.name, []).append(out)
    return out


def results_of(entry: Entry) -> list[dict]:
    """This session's fine-tuning results of one model, oldest first."""
    return st.session_state.get(RESULT_KEY, {}).get(entry.name, [])
