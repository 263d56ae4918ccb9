"""Your model: upload an ONNX model and data, measure it under bit flips, fine-tune, download."""

import streamlit as st

from ui.layout import LOADING, page_header

page_header(
    "Your model",
    "Bring your own network: upload it as **ONNX** (float, or int8 quantized by onnxruntime in "
    "QDQ format: the faults then hit its stored int8 codes with its own scales) and a data file "
    "(**.npz** with arrays `X` and `y`, or a CSV with the label last). Measure it under bit "
    "flips, fine-tune it for robustness (SAR, ASAM, clip, RandBET ...) and download the result: "
    "the same graph with new weights, so its inference cost is unchanged. Your model also "
    "appears on every other page, next to the demo models.",
)
with st.spinner(LOADING):  # the title is on screen before torch loads
    from sar_core.plots.style import method_label
    from ui import byom, registry
    from ui.panels import imported_upload_box, models_table
    from ui.train_finetune import METHODS, SPLIT_NOTE, rate_widgets, results, run_finetune
    from ui.widgets import fmt_ber, show_errors, trials_slider

imported_upload_box()
mine = {n: e for n, e in registry.user_entries().items() if e.imported}
if not mine:
    st.stop()

name = st.selectbox("Model", list(mine), index=len(mine) - 1, key="byom_pick")
entry = mine[name]
models_table([entry], key="byom_model_table")

st.subheader("Under bit flips")
c1, c2, c3 = st.columns(3)
fm = rate_widgets(key="byom", where=c1, ber_where=c2)
trials = trials_slider(key="trials", where=c3)

if st.button("Measure", key="byom_measure", icon=":material/bolt:"):
    with show_errors(), st.spinner("Running the campaign ..."):
        st.session_state["byom_last"] = (name, fm.to_dict(), byom.campaign(entry, fm, trials=trials, seed=0))  # fmt: skip
last = st.session_state.get("byom_last")
if last and last[0] == name:
    s = last[2]
    m1, m2, m3 = st.columns(3)
    m1.metric("Clean accuracy", f"{s['clean_accuracy']:.1%}")
    m2.metric(f"Stored in {s['fault_model']['format']}", f"{s['deployed_accuracy']:.1%}")
    lo, hi = s["ci95"]
    m3.metric(
        f"Under BER {fmt_ber(s['fault_model']['ber'])}",
        f"{s['mean_accuracy']:.1%}",
        help=f"95% CI {lo:.1%}–{hi:.1%} over {s['trials']} trials",
    )

st.subheader("Fine-tune for robustness")
st.caption(SPLIT_NOTE)
f1, f2 = st.columns(2)
method = f1.selectbox("Method", list(METHODS), format_func=method_label, key="byom_method")
epochs = f2.slider("Epochs", 1, byom.DASHBOARD_MAX_EPOCHS, 3, key="byom_epochs")
if st.button("Fine-tune", key="byom_finetune", icon=":material/model_training:"):
    run_finetune(entry, method=method, epochs=epochs, fm=fm, trials=trials)
results(entry, key="byom")
