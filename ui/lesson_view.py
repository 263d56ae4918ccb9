"""The lesson's pieces on screen: the accuracy chart, the model strip, the loss curves, the
int8-step panel and the flip that hurt most. Figures come from sar_core.plots; the sentences
from ui.lesson_text; nothing here computes a result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from sar_core.plots.bits import NARROW, bit_cells_figure
from sar_core.plots.landscape import fault_slice_figure, slice_1d_figure
from sar_core.plots.style import method_color
from sar_core.plots.svg import accuracy_svg
from ui.layout import clip01, fmt_ci, fmt_pct
from ui.lesson import Model
from ui.lesson_text import pts, suite_rows, verdict_cell

CHART_HEIGHT = 400
SMALL_HEIGHT = 300


def curves(lineup: Sequence[Model], levels: Sequence[Mapping]) -> list[dict]:
    """sweep_figure curves (CI bounds clamped to [0, 1]) from per-rate summaries."""
    out = []
    for i, m in enumerate(lineup):
        per = [lv["models"][i] for lv in levels]
        mean = [s["mean_accuracy"] for s in per]
        lo = [clip01(s["ci95"][0]) for s in per]
        hi = [clip01(s["ci95"][1]) for s in per]
        out.append(
            {
                "label": m.short if m.entry is None else m.name,
                "method": m.method,
                "x": [lv["level"] for lv in levels],
                "mean": mean,
                "lo": [a if v is None else v for v, a in zip(lo, mean)],
                "hi": [a if v is None else v for v, a in zip(hi, mean)],
                "dash": "dash" if m.entry is not None else "solid",
            }
        )
    return out


def accuracy_chart(lineup, levels, ber: float, *, expert: bool) -> None:
    """Accuracy vs rate, every model, the chosen rate marked: an SVG drawn with the numbers
    (sar_core.plots.svg), so it is on screen as soon as they are, with no plotly.js to load."""
    svg = accuracy_svg(
        curves(lineup, levels),
        title="Accuracy vs bit error rate" + (" (mean, 95% CI)" if expert else ""),
        mark_x=ber,
    )
    with st.container(key="lesson_sweep"):
        st.markdown(svg, unsafe_allow_html=True)


def _swatch(m: Model, i: int) -> str:
    return f'<span style="color:{method_color(m.method, i)}">■</span>'


def model_strip(lineup: Sequence[Model], here: Mapping, *, expert: bool) -> str:
    """One row per model: fault-free, under faults, accuracy lost, vs the reference."""
    head = f"| model | no faults | under faults | lost (pt) | vs {lineup[0].short} |\n"
    head += "|:--|--:|--:|--:|:--|\n"
    rows = []
    for i, (m, s) in enumerate(zip(lineup, here["models"])):
        vs = "reference" if i == 0 else verdict_cell(s["vs_first"]["state"], s["vs_first"]["diff"])
        name = cell(m.short if m.entry is None else f"{m.short} (yours)")
        ci = f" <small>{fmt_ci(s['ci95'])}</small>" if expert else ""
        rows.append(
            f"| {_swatch(m, i)} {name} | {fmt_pct(s['deployed_accuracy'])} | "
            f"{fmt_pct(s['mean_accuracy'])}{ci} | {pts(s['lost']['mean'])} | {vs} |"
        )
    return head + "\n".join(rows)


def suite_table(head: Mapping | None) -> str:
    """The held-out suite's headline as a small table ('' without one)."""
    if head is None:
        return ""
    out = "| held-out suite | mean Δ (pt) | tasks | digits MLP Δ [95% CI] |\n|:--|--:|:--|:--|\n"
    rows = (map(cell, r) for r in suite_rows(head))
    return out + "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)


def cell(text: str) -> str:
    """Text safe inside a markdown table cell (a label like 'max|w|' has pipes)."""
    return str(text).replace("|", "\\|")


def _log_label(fig) -> None:
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.3, x=0, title_text=""))


def fault_chart(lineup: Sequence[Model], slices: Sequence[Mapping], *, expert: bool) -> None:
    """Loss along the real sampled fault (pattern 0), log scale with readable ticks."""
    data = [{**s, "label": "", "method": m.method} for m, s in zip(lineup, slices)]
    fig = fault_slice_figure(data, log_y=True)
    fig.update_layout(
        height=SMALL_HEIGHT,
        margin=dict(t=40, b=10, l=10, r=10),
        title="Loss along one real fault (pattern 0; ★ = after the flips)",
        xaxis_title="α: 0 = stored weights, 1 = after the flips",
        yaxis_title="test loss",
    )
    fig.update_traces(showlegend=False, selector=dict(mode="markers"))  # the swatches say who
    _log_label(fig)
    st.plotly_chart(fig, key="lesson_fault", config={"displayModeBar": False})


def random_chart(lineup: Sequence[Model], slices: Sequence[Mapping], *, expert: bool) -> None:
    """Loss along one seeded random direction."""
    data = [{**s, "label": "", "method": m.method} for m, s in zip(lineup, slices)]
    fig = slice_1d_figure(
        data,
        title="Loss along a random direction"
        + (" (filter-normalized, Li et al. 2018)" if expert else ""),
    )
    fig.update_layout(
        height=SMALL_HEIGHT,
        margin=dict(t=40, b=10, l=10, r=10),
        xaxis_title="step along the direction",
    )
    _log_label(fig)
    st.plotly_chart(fig, key="lesson_random", config={"displayModeBar": False})


def steps_table(lineup: Sequence[Model], steps: Sequence[Mapping]) -> str:
    """Per model: largest |w|, int8 step s = max|w|/127, and the largest bit-7 move."""
    out = "| model | largest abs(w) | int8 step s | one bit-7 flip moves a weight by up to |\n"
    out += "|:--|--:|--:|--:|\n"
    for i, (m, s) in enumerate(zip(lineup, steps)):
        out += (
            f"| {_swatch(m, i)} {m.short} | {s['max_abs_w']:.3f} | {s['step']:.5f} | "
            f"{s['bit7_move_max']:.3f} |\n"
        )
    return out


def worst_chart(lineup: Sequence[Model], worst: Mapping, steps: Sequence[Mapping]) -> None:
    """The flip that hurt the reference most, in the reference and the model whose weights it
    moves least (bits before and after)."""
    small = min(range(len(steps)), key=lambda i: steps[i]["bit7_move_max"])
    rows = []
    for i in dict.fromkeys([0, small]):
        w = worst["models"][i]
        rows += [(f"{lineup[i].short} before", w["bits_before"], worst["format"])]
        rows += [(f"{lineup[i].short} after", w["bits_after"], worst["format"])]
    fig = bit_cells_figure(  # a narrow column: labels above the cells, 32 bits fit
        rows,
        flipped=[worst["bit"]],
        title=f"The flip that hurt {lineup[0].short} most",
        layout=NARROW,
    )
    fig.update_layout(margin=dict(t=40, b=10, l=10, r=10))
    st.plotly_chart(fig, key="lesson_bits", config={"displayModeBar": False})
