"""The lesson's words: presets, and every sentence that states a result, built from that result.

No sentence here claims a number or a direction it was not given: "SAR kept more", "no clear
difference", "sharper" and "flatter" are decided from the measured values and their intervals.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ui.layout import fmt_ber, fmt_ci, fmt_num, fmt_pct

# (button label, fault choice, BER). Measured on the demo MLPs (300 paired trials, seed 0):
# int8 3%: SAR +4.0 pt; float32 exponent 1e-5: both lose ~6 pt, no clear difference;
# float32 bit 30 at 3e-5: about one trial in three is hit, both lose ~12 pt. The lesson test
# recomputes that each preset moves accuracy visibly without sending it to zero.
PRESETS = (
    ("int8, 3%", "int8", 0.03),
    ("float32 exponent bits at 1e-5", "float32-exponent", 1e-5),
    ("float32 bit 30 only", "float32-bit30", 3e-5),
)


def preset_state(fault: str, ber: float) -> dict:
    """The widget values a preset sets (keys of the lesson page's widgets)."""
    return {"fault": fault, "error_rate": ber}


def _short(entry) -> str:
    return entry.name.split(" · ")[-1]


def verdict(diff: Mapping) -> str:
    """'clearly better' / 'clearly worse' / 'no clear difference' from a paired 95% CI."""
    lo, hi = diff["ci95"]
    if diff.get("n", 0) < 2 or not (math.isfinite(lo) and math.isfinite(hi)):
        return "too few trials to tell"
    if lo > 0:
        return "clearly better"
    if hi < 0:
        return "clearly worse"
    return "no clear difference"


def accuracy_caption(
    entries, here: Sequence[Mapping], fm, *, fault_label: str, expert: bool
) -> str:
    """One sentence on the accuracies at the chosen BER, with the paired verdict."""
    a, b = here
    left, right = _short(entries[0]), _short(entries[1])
    diff = b["paired_difference"]
    v = verdict(diff)
    flips = a["mean_flips"]
    flips_text = f"{flips:,.0f}" if flips >= 10 else fmt_num(flips, 2)
    text = (
        f"**{fault_label}, bit error rate {fmt_ber(fm.ber)}** (about {flips_text} flipped "
        f"bits per network): {left} keeps {fmt_pct(a['mean_accuracy'])}, {right} "
        f"{fmt_pct(b['mean_accuracy'])} of the test digits. "
    )
    if v == "clearly better" or v == "clearly worse":
        text += f"{right} is **{v}** under the same faults ({100 * diff['mean']:+.1f} points)."
    elif v == "no clear difference":
        text += (
            f"**No clear difference** ({100 * diff['mean']:+.1f} points, within the noise): "
            "these faults hurt both networks alike."
        )
    else:
        text += "One trial is too few to compare: press *Precise*."
    if expert:
        text += (
            f" 95% CIs {fmt_ci(a['ci95'])} and {fmt_ci(b['ci95'])}; paired difference CI "
            f"{100 * diff['ci95'][0]:+.1f} to {100 * diff['ci95'][1]:+.1f} pt over "
            f"{a['trials']} trials."
        )
    return text


def _rise(s: Mapping) -> float:
    v = s.get("fault_loss")
    v = float(v) if v is not None else math.inf
    return v - float(s["deployed_loss"]) if math.isfinite(v) else math.inf


def fault_rise_sentence(entries, slices: Sequence[Mapping], *, expert: bool) -> str:
    """How much each loss rose at the real fault (α = 1), and which rose less."""
    rises = [_rise(s) for s in slices]
    names = [_short(e) for e in entries]
    parts = [
        f"{n}: {'+' if math.isfinite(r) and r >= 0 else ''}{fmt_num(r, 3)}"
        for n, r in zip(names, rises)
    ]
    text = "**Loss rise at the real fault** (the same flipped sites in both): " + ", ".join(parts)
    if all(math.isfinite(r) for r in rises) and rises[0] != rises[1]:
        flat = names[int(rises[1] < rises[0])]
        text += f". Along this fault, **{flat}'s** loss rose less: its minimum is flatter *here*."
    elif not all(math.isfinite(r) for r in rises):
        text += ". A flip made the weights infinite: no minimum is flat enough for that."
    if expert:
        n = slices[0].get("n_flips")
        text += f" ({n} flips in this pattern; trial 0 of the seed.)"
    return text


def flip_caption(entries, worst: Mapping, *, expert: bool) -> str:
    """The most harmful single flip of the sampled fault, in both networks."""
    out = []
    for e, m in zip(entries, worst["models"]):
        out.append(
            f"{_short(e)}: weight {fmt_num(m['before'], 4)} → {fmt_num(m['after'], 4)}, "
            f"test loss {fmt_num(m['loss_deployed'], 3)} → {fmt_num(m['loss_after'], 3)}"
        )
    where = f"{worst['param']}[{worst['index']}]" if expert else "one weight"
    return (
        f"Of the {worst['flips']} flips in the sampled fault, this one ({where}, bit "
        f"{worst['bit']}) raised {_short(entries[0])}'s loss most on its own. " + "; ".join(out)
    )


def hessian_panel(entries, lams: Sequence[float], rises: Sequence[Mapping], *, expert: bool) -> str:
    """Why the curvature at the minimum and the fault-direction loss rise can disagree."""
    names = [_short(e) for e in entries]
    sharper_h = names[int(lams[1] > lams[0])]
    means = [r["mean"] for r in rises]
    flatter_f = names[int(means[1] < means[0])] if all(map(math.isfinite, means)) else None
    curv = "top Hessian eigenvalue λ_max" if expert else "curvature along the steepest direction"
    text = (
        f"**What the numbers say.** The {curv} at the trained weights is {fmt_num(lams[0], 3)} "
        f"for {names[0]} and {fmt_num(lams[1], 3)} for {names[1]}: by that measure "
        f"**{sharper_h} is sharper**. "
    )
    if flatter_f is not None:
        text += (
            f"Under the faults above, the test loss rises on average by {fmt_num(means[0], 3)} "
            f"({names[0]}) and {fmt_num(means[1], 3)} ({names[1]}): by that measure "
            f"**{flatter_f} is flatter**.\n\n"
        )
    else:
        text += "Under the faults above, some losses become infinite.\n\n"
    text += (
        "**Why both can be true.** Curvature looks at the *one* direction in which the loss "
        "climbs fastest, for a tiny step. A bit flip does not move the weights in that "
        "direction: it moves a few weights, each by an amount set by its own size and its "
        "format (in int8, one step of its layer's range; in float32, a fraction of itself or, "
        "for an exponent bit, enormously). SAR is trained to resist moves shaped like that — "
        "scaled to each weight — so it can be flatter along the moves faults make while being "
        "steeper along one direction faults almost never take."
    )
    if expert:
        text += (
            " (λ_max: power iteration on Hessian-vector products, 100 iterations; the fault "
            f"measure: mean loss increase over {rises[0]['trials']} sampled patterns, "
            "sar_core.analysis.sharpness.fault_sharpness.)"
        )
    return text
