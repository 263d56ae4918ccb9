"""Fine-tuning an uploaded (imported ONNX) model: the controls of the Train page and the
before / after results both the Train page and the Your model page show.

Both pages call ``ui.byom.finetune`` (which calls ``sar_core.cli.finetune``'s ``finetune_model``
and ``measure``, as ``python -m sar_core finetune`` does): same split, same learning rate, same
numbers for the same settings.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sar_core.faults.model import FaultModel
from sar_core.plots.style import method_label
from ui import byom, registry
from ui.inputs import format_ber
from ui.layout import percent_columns
from ui.panels import file_slug
from ui.widgets import BER_GRID, carried, fmt_ber, format_picker, show_errors, trials_slider

METHODS = ("sar", "asam", "sam", "clip", "sar_clip", "randbet", "fat")
BERS = tuple(sorted({b for b in BER_GRID if b <= 0.1}))  # 1e-7 (float scale) .. 1e-1
SPLIT_NOTE = (
    "80% of your data trains, the other 20% measures before and after (never trained on). "
    "BatchNorm statistics stay frozen (the deployed graph's running mean and variance); an "
    "int8 QDQ model is quantized again with scales max|w|/127."
)


def rate_widgets(*, key: str, where=None, ber_where=None) -> FaultModel:
    """Number format and bit error rate of the fault model (measure, fine-tuning target,
    before / after). The rate spans every format's scale (floats reach 1e-7) and starts at the
    chosen format's own (``ui.inputs.FORMAT_BER``); a rate picked afterwards stays."""
    fkey, bkey = f"{key}_format", f"{key}_ber"

    def follow() -> None:
        st.session_state[bkey] = format_ber(st.session_state[fkey])

    fmt = format_picker(key=fkey, default="int8", where=where, on_change=follow)
    ber = carried(
        bkey,
        lambda: (ber_where or st).select_slider(
            "Bit error rate",
            options=BERS,
            value=format_ber(fmt),
            format_func=fmt_ber,
            key=bkey,
            help="Probability that any one stored bit is flipped.",
        ),
        valid=lambda v: v if v in BERS else None,
    )
    return FaultModel(format=fmt, ber=ber)


def run_finetune(entry, *, method: str, epochs: int, fm: FaultModel, trials: int) -> None:
    """Fine-tune ``entry`` (ui.byom.finetune, seed 0) with a progress bar; errors as st.error."""
    bar = st.progress(0.0, text=f"Fine-tuning with {method_label(method)} ...")

    def progress(rec: dict) -> None:
        bar.progress(
            rec["epoch"] / epochs,
            text=f"epoch {rec['epoch']}/{epochs}: held-out accuracy {rec['val_acc']:.1%}",
        )

    with show_errors():
        byom.finetune(
            entry, method=method, epochs=epochs, fm=fm, trials=trials, seed=0, on_epoch=progress
        )


def results(entry, *, key: str) -> None:
    """This session's fine-tuning results of ``entry``, newest first: before / after table and
    the fine-tuned file's download."""
    for r in reversed(byom.results_of(entry)):
        fm = r["fault_model"]
        under = f"accuracy under {fm['format']} BER {fmt_ber(fm['ber'])}"
        rows = [
            {
                "": when,
                "clean accuracy": r[when]["clean_accuracy"],
                under: r[when]["mean_accuracy"],
                "95% CI": f"{r[when]['ci95'][0]:.1%}–{r[when]['ci95'][1]:.1%}",
            }
            for when in ("before", "after")
        ]
        graph = (
            "the same graph as the upload (same inference cost)"
            if r["same_graph"]
            else "**a graph that differs from the upload**"
        )
        st.markdown(
            f"**{r['name']}**: {method_label(r['method'])}, {r['epochs']} epochs on "
            f"{r['train_rows']} rows, measured on {r['val_rows']} held-out rows; {graph}."
        )
        st.dataframe(
            percent_columns(pd.DataFrame(rows), ("clean accuracy", under)), hide_index=True
        )
        st.download_button(
            "Download the fine-tuned .onnx",
            r["raw"],
            file_name=f"{file_slug(r['name'])}.onnx",
            mime="application/octet-stream",
            key=f"{key}_dl_{r['name']}",
            on_click="ignore",
            icon=":material/download:",
        )


def train_section() -> None:
    """The Train page's "Fine-tune your uploaded model" section."""
    st.subheader("Fine-tune your uploaded model")
    mine = {n: e for n, e in registry.user_entries().items() if e.imported}
    if not mine:
        st.caption(
            "Upload an ONNX model and its data on the *Your model* page: it can then be "
            "fine-tuned for bit-flip robustness here, with clean and faulty accuracy before "
            "and after."
        )
        return
    st.caption(SPLIT_NOTE)
    name = st.selectbox("Model", list(mine), index=len(mine) - 1, key="train_ft_model")
    c1, c2, c3 = st.columns(3)
    method = c1.selectbox("Method", list(METHODS), format_func=method_label, key="train_ft_method")
    epochs = c2.slider("Epochs", 1, byom.DASHBOARD_MAX_EPOCHS, 3, key="train_ft_epochs")
    trials = trials_slider(key="train_ft_trials", where=c3)
    c4, c5 = st.columns(2)
    fm = rate_widgets(key="train_ft", where=c4, ber_where=c5)
    if st.button("Fine-tune", key="train_ft_go", icon=":material/model_training:"):
        run_finetune(mine[name], method=method, epochs=epochs, fm=fm, trials=trials)
    results(mine[name], key="train_ft")
