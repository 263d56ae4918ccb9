"""Home: what SAR is, one picture, the demo models under faults, links to every page."""

import streamlit as st

from ui.layout import LOADING

st.title("SAR Lab")
st.markdown(
    "A soft error flips a stored bit of a weight, and a network's accuracy can collapse. "
    "**SAR** (sharpness-aware minimization for robustness against bit-flip errors, Zhou et al., "
    "2024) trains toward a *flat* minimum, where small moves of the weights barely change the "
    "loss. Here it is a SAM-family optimizer whose neighbourhood is shaped by the fault it "
    "should survive: how far a flip of each stored bit moves each weight, and how many flip. For "
    "int8 it also shrinks the weight range and, every other step, starts its search from the "
    "fault's average effect. It changes only training: same architecture, same inference cost. "
    "This lab lets you train SAR next to SGD, Adam, SAM, ASAM and fault-aware training, look at "
    "their loss landscapes, and flip chosen bits at chosen rates while the accuracy is measured "
    "with confidence intervals."
)
st.page_link(
    "app_pages/lesson.py",
    label="**New here? Start with the lesson:** SGD, SAR, clipping, RandBET and ASAM under the "
    "same faults",
    icon=":material/school:",
)

with st.spinner(LOADING):  # the text above is on screen before torch loads
    from sar_core.plots.robustness import sweep_figure
    from ui.compute import HOME_FAULT, home_results
    from ui.lesson import suite_headline
    from ui.lesson_text import pts
    from ui.widgets import fault_label, fmt_ci, fmt_pct

head = suite_headline("int8")  # the whole truth: what the held-out suite ranks at int8
if head:
    ranked = ", ".join(f"{r['label']} {pts(r['mean_delta'])}" for r in head["rows"])
    st.markdown(
        f"**What the held-out suite found** (int8, {head['n_tasks']} tasks, points of accuracy "
        f"kept vs SGD): {ranked}. The range of the weights sets the size of an int8 flip: "
        "clipping and RandBET bound it by hand, SAR v3 puts it in its objective; a flat minimum "
        "alone does not shrink it."
    )
with st.spinner("Measuring the demo models under bit flips (once per server)..."):
    res = home_results()

left, right = st.columns([4, 3], gap="large")
with left:
    st.plotly_chart(
        sweep_figure(
            res["curves"],
            title="Demo CNNs on digits, int8 weights: accuracy vs bit error rate",
        ),
        key="home_sweep",
    )
    st.caption(
        "Same fault patterns hit every model (paired trials); bands are 95% confidence "
        "intervals, dotted lines the accuracy without faults."
    )
with right:
    st.subheader("Demo models")
    st.markdown(f"Bundled checkpoints on *digits*, measured under **{fault_label(HOME_FAULT)}**.")
    table = "| model | clean | under faults | 95% CI | vs SGD |\n|:--|--:|--:|--:|--:|\n"
    table += "\n".join(  # a markdown table: it wraps, never cut at 1024 px
        f"| {r['model'].replace('demo · digits ', '')} | {fmt_pct(r['clean_accuracy'])} | "
        f"{fmt_pct(r['mean_accuracy'])} | {fmt_ci(r['ci95'], 0)} | "
        f"{100 * r['paired_difference']:+.1f} pt |"
        for r in res["rows"]
    )
    with st.container(key="home_table"):
        st.markdown(table)
    trials = {r["arch"].upper(): r["trials"] for r in res["rows"]}
    st.caption(
        ", ".join(f"{k}: {v}" for k, v in trials.items())
        + " paired trials per model; *vs SGD*: mean paired difference from the SGD model of "
        "the same architecture."
    )

st.subheader("Explore")
links = [
    ("lesson", "Lesson", ":material/school:", "flat vs sharp in one screen, no button"),
    ("train", "Train", ":material/model_training:", "SAR vs baselines, live curves; the ρ sweep"),
    ("landscape", "Loss landscape", ":material/landscape:", "slices, 3D surfaces, sharpness"),
    ("bit_flips", "Bit flips (live)", ":material/bolt:", "choose bits and layers, sweep the BER"),
    ("bit_anatomy", "Bit anatomy", ":material/grid_on:", "flip one bit of one value"),
    ("robustness", "Robustness report", ":material/analytics:", "bit x layer heatmap, double win"),
]
cols = st.columns(3)  # two rows of three: readable at 1024 px
for i, (path, label, icon, what) in enumerate(links):
    with cols[i % 3]:
        st.page_link(f"app_pages/{path}.py", label=f"**{label}**", icon=icon)
        st.caption(what)


st.subheader("Glossary")
g1, g2 = st.columns(2)
g1.markdown(
    "- **Bit error rate (BER)** — the probability that any one stored bit is flipped; "
    "at BER 1e-3 about one bit in a thousand flips.\n"
    "- **Sharpness** — how fast the loss rises when the weights move; a flat minimum is one "
    "where the loss stays low in a whole neighbourhood (measured by the top Hessian "
    "eigenvalue, its trace, or the worst loss within radius ρ).\n"
    "- **ρ (rho)** — the radius of the neighbourhood SAM and SAR look at during training."
)
g2.markdown(
    "- **Sign / exponent / mantissa** — the three fields of a float: float32 has bit 31 sign, "
    "bits 30–23 exponent, bits 22–0 mantissa. A flip of the exponent's top bit can turn 0.1 "
    "into 3e37; a mantissa flip changes the value by a fraction of itself.\n"
    "- **int8** — a weight stored as q·s with q in [-128, 127]; a flip of bit b moves q by "
    "±2^b, so the damage is bounded.\n"
    "- **Bit 0 = LSB** — bit positions count from the least significant bit, everywhere."
)
