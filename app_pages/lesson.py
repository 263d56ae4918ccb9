"""Lesson: SGD and SAR side by side under the same faults, on one screen, without a button."""

import streamlit as st

from ui.layout import LOADING

st.title("Lesson: does a flat minimum survive bit flips?")
st.markdown(
    "Two copies of the same network, trained on the same digits from the same start: one with "
    "plain **SGD**, one with **SAR**, which looks for a *flat* minimum. Both are hit by exactly "
    "the same random bit flips. Move the slider: everything below is measured again at once."
)
with st.spinner(LOADING):  # the text above is on screen before torch loads
    from sar_core.plots.bits import bit_cells_figure
    from sar_core.plots.landscape import fault_slice_figure, slice_1d_figure
    from sar_core.plots.robustness import sweep_figure
    from ui import lesson as L
    from ui import registry
    from ui.inputs import Checks, check_int_in, read_int
    from ui.layout import fmt_ber, fmt_ci, fmt_pct
    from ui.lesson_text import (
        PRESETS,
        accuracy_caption,
        fault_rise_sentence,
        flip_caption,
        hessian_panel,
        preset_state,
    )

checks = Checks()


def forget_precise() -> None:
    """A new setting starts again at the quick trial count."""
    st.query_params.pop("precise", None)


def apply_preset(fault: str, ber: float) -> None:
    """Set the fault choice and the BER of a preset (a callback: runs before the widgets)."""
    st.session_state.update(preset_state(fault, ber))
    forget_precise()


c1, c2, c3 = st.columns([3, 4, 2], vertical_alignment="bottom")
fault = c1.selectbox(
    "Which bits can flip",
    list(L.FAULTS),
    index=0,
    format_func=lambda k: L.FAULTS[k].label,
    key="fault",
    bind="query-params",
    on_change=forget_precise,
)
ber = c2.select_slider(
    "How often a stored bit flips (bit error rate)",
    L.BERS,
    value=0.03,
    format_func=fmt_ber,
    key="error_rate",
    bind="query-params",
    on_change=forget_precise,
    help="0.03 means 3 stored bits in 100 are flipped.",
)
expert = c3.toggle("Expert view", False, key="expert", bind="query-params")

p = st.container(horizontal=True, vertical_alignment="center")
p.markdown("**Try:**", width="content")
for i, (label, pf, pb) in enumerate(PRESETS):
    p.button(label, key=f"preset_{i}", on_click=apply_preset, args=(pf, pb))
precise = st.query_params.get("precise") == "1"
p.button(
    f"Precise: {L.PRECISE_TRIALS} trials",
    key="precise",
    type="primary" if not precise else "secondary",
    disabled=precise,
    on_click=lambda: st.query_params.update(precise="1"),
    help=f"Every change is measured with {L.QUICK_TRIALS} fault patterns at once; this runs "
    f"{L.PRECISE_TRIALS} for tighter confidence intervals (a few seconds).",
)

seed = 0
if expert:
    e1, e2 = st.columns([1, 3])
    with e1:
        seed = st.number_input("Seed", value=0, step=1, key="seed", bind="query-params")
        seed = checks.check(check_int_in, seed, "The seed", low=0, high=2**32 - 1) or 0
else:  # the seed still comes from a shared link; only the expert view shows its box
    raw = st.query_params.get("seed", "0")
    seed = checks.check(read_int, raw, "The seed in this link", low=0, high=2**32 - 1) or 0

demos = {e.method: e for e in registry.demo_entries() if e.arch == "mlp"}
sgd, sar = demos["sgd"], demos["sar"]
own = [e for e in registry.user_entries().values() if e.checkpoint.spec == sgd.checkpoint.spec]
if expert and own:
    pick = st.selectbox(
        "Right-hand model (your own models appear here)",
        [sar.name] + [e.name for e in own],
        key="lesson_right",
    )
    if pick != sar.name:
        sar = next(e for e in own if e.name == pick)
        st.info(
            "Your own model lives in this browser session only: a shared link to this page "
            "shows the demo SAR model instead.",
            icon=":material/link_off:",
        )
entries = [sgd, sar]
trials = L.PRECISE_TRIALS if precise else L.QUICK_TRIALS
fm = L.fault_model(fault, ber)

with st.spinner(f"Measuring {trials} fault patterns per level..."):
    points = L.sweep(entries, fm, trials=trials, seed=seed)
    slices = L.fault_slices(entries, fm, seed=seed)
    here = L.at_level(points, ber)

with st.container(key="lesson_numbers"):
    n1, n2, n3 = st.columns(3)
    for col, e, s in ((n1, sgd, here[0]), (n2, sar, here[1])):
        col.metric(
            f"{e.name.split(' · ')[-1]} under faults",
            fmt_pct(s["mean_accuracy"]),
            delta=f"{100 * (s['mean_accuracy'] - s['deployed_accuracy']):+.1f} pt vs no faults",
            delta_color="normal",
            help=f"95% CI {fmt_ci(s['ci95'])} over {s['trials']} fault patterns",
        )
    diff = here[1]["paired_difference"]
    n3.metric(
        f"{entries[1].name.split(' · ')[-1]} − {entries[0].name.split(' · ')[-1]}",
        f"{100 * diff['mean']:+.1f} pt",
        help=f"paired 95% CI {fmt_ci(diff['ci95']).replace('%', '')} pt"
        if diff["n"] > 1
        else "one trial: no interval",
    )
st.markdown(accuracy_caption(entries, here, fm, fault_label=L.FAULTS[fault].label, expert=expert))

left, right = st.columns(2, gap="medium")
with left:
    fig = sweep_figure(
        L.curves(entries, points),
        title="Accuracy vs bit error rate" + (" (mean, 95% CI)" if expert else ""),
        zoom=True,
        mark_x=ber,
    )
    fig.update_layout(height=380, margin=dict(t=50, b=10), legend_title_text="")
    st.plotly_chart(fig, key="lesson_sweep")
with right:
    fig = fault_slice_figure(slices, log_y=True)
    fig.update_layout(
        height=380,
        margin=dict(t=50, b=10),
        title="Loss along the real fault",
        xaxis_title="α: 0 = stored weights, 1 = after the flips",
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, title_text=""),
    )
    st.plotly_chart(fig, key="lesson_fault")
st.markdown(fault_rise_sentence(entries, slices, expert=expert))

left, right = st.columns(2, gap="medium")
with left:
    worst = L.worst_flip(entries, fm, seed=seed)
    if worst is None:
        st.info("At this rate the sampled fault flipped no bit at all: raise the bit error rate.")
    else:
        rows = []
        for e, m in zip(entries, worst["models"]):
            short = e.name.replace("demo · digits MLP · ", "")
            rows += [(f"{short} before", m["bits_before"], worst["format"])]
            rows += [(f"{short} after", m["bits_after"], worst["format"])]
        fig = bit_cells_figure(
            rows,
            flipped=[worst["bit"]],
            title=f"The flip that hurt {entries[0].name.split(' · ')[-1]} most: bit {worst['bit']}",
        )
        st.plotly_chart(fig, key="lesson_bits", config={"displayModeBar": False})
        st.caption(flip_caption(entries, worst, expert=expert))
with right:
    fig = slice_1d_figure(
        L.random_slices(entries, seed=seed),
        title="Loss along a random direction"
        + (" (filter-normalized, Li et al. 2018)" if expert else ""),
    )
    fig.update_layout(
        height=360,
        margin=dict(t=50, b=10),
        xaxis_title="step along the direction",
        legend=dict(orientation="h", yanchor="top", y=-0.22, x=0, title_text=""),
    )
    st.plotly_chart(fig, key="lesson_random")

with st.expander(
    "Why can one measure call SAR *sharper* and another *flatter*?",
    key="why_open",
    on_change="rerun",
):
    if st.session_state.get("why_open"):  # measured only while open: slider moves stay fast
        with st.spinner("Measuring curvature..."):
            rises = [L.fault_rise(e, fm, trials=trials, seed=seed) for e in entries]
            lams = [L.lambda_max(e) for e in entries]
        st.markdown(hessian_panel(entries, lams, rises, expert=expert))

st.caption(
    "**Share this view:** the address bar holds every setting (and the seed); opening it "
    "recomputes exactly these numbers. "
    + (f"{trials} fault patterns per level, seed {seed}." if expert else "")
)
