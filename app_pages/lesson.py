"""Lesson: SGD, SAR and the defenses the held-out suite ranks, under the same faults, one screen."""

import streamlit as st

st.title("Lesson: what keeps a network alive when bits flip?")
st.markdown(
    "Five copies of one digits network, trained alike except for the method: plain **SGD**, "
    "**SAR** (a flat minimum), **weight clipping**, **RandBET** and **ASAM**. All are hit by "
    "exactly the same random bit flips; every change below is measured at once."
)
from ui import lesson as L  # noqa: E402  (no torch: the quick numbers are precomputed)
from ui import lesson_text as T  # noqa: E402
from ui import lesson_view as V  # noqa: E402
from ui.inputs import Checks, check_int_in, read_int  # noqa: E402
from ui.layout import fmt_ber  # noqa: E402
from ui.lesson_link import link_notes, pick_own, reset_precise, set_preset  # noqa: E402

checks = Checks()
with st.container():  # containers keep what follows in place: charts are not redrawn anew
    for note in link_notes(st.query_params, st.session_state):  # a bad value in a link
        st.warning(note, icon=":material/link_off:")

c1, c2, c3 = st.columns([3, 5, 2], vertical_alignment="bottom")
fault = c1.selectbox(
    "Which bits can flip",
    list(L.FAULTS),
    format_func=lambda k: L.FAULTS[k].label,
    key="fault",
    bind="query-params",
    on_change=reset_precise,
)
offered = L.rates(fault)
if st.session_state.get("error_rate") not in offered:  # a format change keeps the rate near
    st.session_state["error_rate"] = L.nearest(st.session_state.get("error_rate") or 0.03, offered)
ber = c2.select_slider(
    "How often a stored bit flips (bit error rate)",
    offered,
    format_func=fmt_ber,
    key="error_rate",
    bind="query-params",
    on_change=reset_precise,
    help="Only rates where something happens are offered. 0.03 means 3 stored bits in 100 flip.",
)
expert = c3.toggle("Expert view", False, key="expert", bind="query-params")

p = st.container(horizontal=True, vertical_alignment="center")
p.markdown("**Try:**", width="content")
for i, (label, pf, pb) in enumerate(T.PRESETS):
    p.button(label, key=f"preset_{i}", on_click=set_preset, args=(pf, pb))
precise = st.query_params.get("precise") == "1"
p.button(
    f"Precise: {L.PRECISE_TRIALS} patterns",
    key="precise",
    type="primary",
    disabled=precise,
    on_click=lambda: st.query_params.update(precise="1"),
    help=f"Every change is measured with {L.QUICK_TRIALS} fault patterns per rate; this runs "
    f"{L.PRECISE_TRIALS} at the chosen rate, showing the intervals as they tighten.",
)
stop = p.empty()

with st.container():  # the expert view's boxes (and seed errors) live here
    if expert:
        seed = st.number_input("Seed", value=0, step=1, key="seed", bind="query-params")
        seed = checks.check(check_int_in, seed, "The seed", low=0, high=2**32 - 1) or 0
    else:  # the seed still comes from a shared link; only the expert view shows its box
        raw = st.query_params.get("seed", "0")
        seed = checks.check(read_int, raw, "The seed in this link", low=0, high=2**32 - 1) or 0
    lineup = L.demo_lineup() + (pick_own() if expert else [])
names = [m.short for m in lineup]

with st.spinner("Measuring..."):
    levels = L.curve(lineup, fault, offered, seed)
    here = levels[offered.index(ber)]

left, right = st.columns([5, 4], gap="medium")
with left:
    V.accuracy_chart(lineup, levels, ber, expert=expert)
    clip_panel = st.container()
with right.container(key="lesson_right"):
    numbers = st.empty()
    head = L.suite_headline(fault)
    with st.container(key="lesson_suite"):
        st.markdown(V.suite_table(head))
        st.markdown(T.suite_note(head, L.FAULTS[fault].label))


def show(summary: dict, note: str = "") -> None:
    """The verdict, the model strip and the noise warning for one summary."""
    with numbers.container():
        st.markdown(T.verdict_sentence(names, summary, fault_label=L.FAULTS[fault].label, ber=ber))
        st.markdown(V.model_strip(lineup, summary, expert=expert), unsafe_allow_html=True)
        st.caption(T.STRIP_KEY)
        if note:
            st.caption(note)
        warn = T.noise_warning(L.quick_noise(levels, ber), L.QUICK_TRIALS) if not note else None
        if warn:
            st.warning(warn, icon=":material/blur_on:")


show(here)
run_key = (fault, ber, seed, tuple(m.key for m in lineup))
kept = st.session_state.get("_lesson_precise")  # the last Precise run (finished or stopped)
if precise and not (kept and kept["key"] == run_key and kept["done"]):
    stop.button("Stop", key="stop", on_click=reset_precise, icon=":material/stop:")
    for s in L.precise(lineup, fault, ber, seed):
        n = s["models"][0]["trials"]
        kept = {"key": run_key, "summary": s, "done": n == L.PRECISE_TRIALS}
        st.session_state["_lesson_precise"] = kept
        show(s, f"Precise: {n} of {L.PRECISE_TRIALS} patterns…")
    stop.empty()
if kept and kept["key"] == run_key:
    here, n = kept["summary"], kept["summary"]["models"][0]["trials"]
    show(
        here,
        f"Precise: {n} of {L.PRECISE_TRIALS} patterns"
        + (" (done)." if kept["done"] else " (stopped)."),
    )

static = L.static(lineup, seed)
where = L.setting(lineup, fault, ber, seed)
with clip_panel:
    if L.FAULTS[fault].format != "int8":
        st.caption("About int8 storage (the faults above hit float weights):")
    st.markdown(T.clipping_sentence(names, [m.method for m in lineup], static["int8"]))
    st.markdown(V.steps_table(lineup, static["int8"]), unsafe_allow_html=True)
a, c = st.columns([3, 2], gap="medium")
with a:
    V.fault_chart(lineup, where["fault_slices"], expert=expert)
    st.markdown(T.flatness_sentence(names, here))
with c:
    if where["worst"] is None:
        st.info("Pattern 0 flipped no bit at this rate.")
    else:
        V.worst_chart(lineup, where["worst"], static["int8"])
        st.caption(T.worst_caption(names, where["worst"], expert=expert))
with st.expander(
    "Curvature vs flatness along faults: why one measure can say *sharper*",
    key="why_open",
    on_change="rerun",
):
    if st.session_state.get("why_open"):  # drawn only while open: the first paint stays light
        V.random_chart(lineup, static["random_slices"], expert=expert)
        st.markdown(T.curvature_panel(names, static.get("lambda_max"), here, expert=expert))
L.warm_up()  # torch loads in the background once the quick numbers are drawn
st.caption(
    "**Share this view:** the address bar holds every setting (and the seed); opening it "
    "recomputes exactly these numbers."
    + (f" {L.QUICK_TRIALS} fault patterns per rate, seed {seed}." if expert else "")
)
