"""The lesson's words: presets, and every sentence that states a result, built from that result.

No sentence here claims a number or a direction it was not given: "loses less", "no measurable
difference", "flatter" and "no bits flipped" are the states sar_core.analysis.lesson_summary
decided from paired 95% intervals (sar_core.stats); the words only say them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from sar_core.analysis.lesson_summary import WIGGLE_PT
from ui.layout import fmt_ber, fmt_num

# (button label, fault choice, BER): each inside the rates its format offers (the bundle's
# useful_rates); the lesson test recomputes that each moves accuracy visibly above chance.
PRESETS = (
    ("int8, 3%", "int8", 0.03),
    ("float32 exponent bits at 1e-5", "float32-exponent", 1e-5),
    ("float32 bit 30 only", "float32-bit30", 1e-4),
)


def pts(x: float, digits: int = 1) -> str:
    """Points with a sign: '+1.2', '−0.4' (a true minus sign); a value that rounds to zero is
    '0.0', never '−0.0'."""
    if round(x, digits) == 0:
        return f"{0:.{digits}f}"
    return f"{x:+.{digits}f}".replace("-", "−")


def interval(s: Mapping, digits: int = 1) -> str:
    """'[lo, hi]' of a Summary dict, or 'no interval' when undefined."""
    lo, hi = s["lo"], s["hi"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "no interval"
    return f"[{pts(lo, digits)}, {pts(hi, digits)}]"


def flips_text(x: float) -> str:
    """A mean count of changed bits, readable at any size."""
    return f"{x:,.0f}" if x >= 10 else fmt_num(x, 2)


def verdict_cell(state: str, diff: Mapping) -> str:
    """The model strip's 'vs SGD' cell from a compare_lost result: a symbol, the paired
    difference of accuracy lost (points; + = lost less) and its 95% interval."""
    if state in ("loses less", "loses more", "no measurable difference"):
        sym = {"loses less": "▲", "loses more": "▼"}.get(state, "·")
        return f"{sym} {pts(diff['mean'])} {interval(diff)}"
    return state


STRIP_KEY = (
    "*vs SGD*: accuracy lost minus SGD's, in points, paired over the same patterns, with its "
    "95% interval: ▲ loses measurably less, · no measurable difference, ▼ loses more."
)


def verdict_sentence(names: Sequence[str], here: Mapping, *, fault_label: str, ber: float) -> str:
    """The headline sentence at the chosen rate: what was lost, and what the paired intervals
    over the same patterns can and cannot say."""
    models = here["models"]
    head = f"**{fault_label}, bit error rate {fmt_ber(ber)}**"
    n = models[0]["trials"]
    if here["no_flips"]:
        return (
            f"{head}: **no bits flipped** in any of the {n} patterns, so every model keeps its "
            "fault-free accuracy and there is nothing to compare. Raise the rate."
        )
    text = (
        f"{head} (about {flips_text(models[0]['mean_changed'])} stored bits changed per network, "
        f"{n} patterns): {names[0]} loses {abs(models[0]['lost']['mean']):.1f} points. "
    )
    better = [
        (names[i], m) for i, m in enumerate(models) if i and m["vs_first"]["state"] == "loses less"
    ]
    same = [
        names[i]
        for i, m in enumerate(models)
        if i and m["vs_first"]["state"] not in ("loses less", "loses more")
    ]
    worse = [names[i] for i, m in enumerate(models) if i and m["vs_first"]["state"] == "loses more"]
    if better:
        verb = "lose" if len(better) > 1 else "loses"
        text += (
            f"Under the same faults **{', '.join(n for n, _ in better)}** {verb} measurably less "
            f"(paired 95% intervals above 0). " + _keeps_most(names, models)
        )
    if same:
        text += f"**No measurable difference** from {names[0]}: {', '.join(same)}. "
    if worse:
        text += f"Measurably **worse**: {', '.join(worse)}. "
    return text.strip()


def _keeps_most(names: Sequence[str], models: Sequence[Mapping]) -> str:
    """Which model lost least on average, over every model (not only those measurably better
    than the reference), and whether its lead over the reference is measured."""
    i = max(range(len(models)), key=lambda k: models[k]["lost"]["mean"])  # lost is ≤ 0
    lost = f"{abs(models[i]['lost']['mean']):.1f}"
    if i and models[i]["vs_first"]["state"] == "loses less":
        return f"**{names[i]}** keeps the most, losing {lost}. "
    return (
        f"The smallest mean loss is **{names[i]}**'s, {lost}, but its paired interval vs "
        f"{names[0]} includes 0: that lead is not measured. "
    )


def noise_warning(nz: Mapping, trials: int) -> str | None:
    """A warning when the quick curve's noise exceeds the differences it shows (else None)."""
    if not nz["warn"]:
        return None
    parts = []
    if nz["wiggle"] > WIGGLE_PT:
        parts.append(
            f"a curve rises by up to {nz['wiggle']:.1f} points as the rate rises (more faults "
            "cannot help: that is noise)"
        )
    if nz["halfwidth"] > nz["spread"]:
        parts.append(
            f"a model's own 95% interval here (±{nz['halfwidth']:.1f} points) is wider than "
            f"the gaps between the models ({nz['spread']:.1f} points)"
        )
    return (
        f"With {trials} patterns per rate, " + " and ".join(parts) + ": read no order into "
        "these curves. Only the paired ▲ / ▼ verdicts (the same patterns hit both models) "
        "measure a difference; press **Precise** for 300 patterns."
    )


def flatness_sentence(names: Sequence[str], here: Mapping) -> str:
    """Which models' loss rose less than the reference's over the same patterns (flatter along
    the moves faults make), decided by paired intervals over all patterns, never from one."""
    models = here["models"]
    if here["no_flips"]:
        return "No bits flipped: the loss did not move, so no model is flatter or sharper here."
    groups: dict[str, list[str]] = {}
    for i, m in enumerate(models[1:], start=1):
        groups.setdefault(m["flat_vs_first"]["state"], []).append(names[i])
    n = models[0]["trials"]
    text = (
        f"**Flatness along the real faults** (loss rise, paired over {n} patterns, vs {names[0]}): "
    )
    words = {
        "flatter": "rose measurably less (flatter)",
        "sharper": "rose measurably more (sharper)",
        "no measurable difference": "no measurable difference",
        "infinite": "a loss overflowed to infinity in some pattern: no flatness can be measured",
        "too few trials": "too few patterns to tell",
    }
    text += "; ".join(f"{', '.join(v)}: {words[k]}" for k, v in groups.items()) + "."
    return text


def clipping_sentence(
    names: Sequence[str], methods: Sequence[str], steps: Sequence[Mapping]
) -> str:
    """Why bounding the weights works at int8, from each model's measured step: which model's
    range is smallest, and whether each flatness method shrank its range or not."""
    ref = steps[0]
    small = min(range(len(steps)), key=lambda i: steps[i]["bit7_move_max"])
    ratio = ref["bit7_move_max"] / steps[small]["bit7_move_max"]
    text = (
        "**Why bounding the weights works at int8.** A weight is stored as q × s with step "
        "s = max|w| / 127 of its tensor; flipping bit 7 (the sign bit) changes q by 128, so it "
        f"moves the weight by 128·s, about the largest |w|. {names[0]}'s largest |w| is "
        f"{ref['max_abs_w']:.2f}: one bit-7 flip moves a weight by up to "
        f"{ref['bit7_move_max']:.2f}. {names[small]}'s largest |w| is "
        f"{steps[small]['max_abs_w']:.2f}, so the same flip moves it at most "
        f"{steps[small]['bit7_move_max']:.2f}, {ratio:.1f}× less."
    )
    for i, m in enumerate(methods):
        if m not in ("sar", "asam", "sam") or i == small:
            continue
        r = steps[i]["max_abs_w"] / ref["max_abs_w"]
        if r < 0.9:
            text += (
                f" {names[i]} shrank its range too (largest |w| {steps[i]['max_abs_w']:.2f}, "
                f"{r:.2f}× {names[0]}'s)."
            )
        else:
            text += (
                f" {names[i]} seeks a flat minimum but left its range as wide (largest |w| "
                f"{steps[i]['max_abs_w']:.2f}, {r:.2f}× {names[0]}'s): flatness alone does not "
                "shrink the step."
            )
    return text


def suite_note(head: Mapping | None, fault_label: str) -> str:
    """What the held-out suite table is, and which numbers on the page are in-sample."""
    insample = (
        "*In-sample:* the models above were all trained on these digits with seed 0 at their "
        "methods' default settings, and those defaults were chosen on tuning seeds that include "
        "seed 0: their numbers describe these five networks, not the methods. The suite's rows "
        "are the methods as the suite ran them (the labels say which variant)."
    )
    if head is None:
        return (
            "**Held-out suite:** it measures int8 and float16 only, so there is no held-out "
            f"result for {fault_label.split(':')[0]}. {insample}"
        )
    seeds = ", ".join(map(str, head["heldout_seeds"]))
    tuning = ", ".join(map(str, head.get("tuning_seeds", [])))
    held = " (some were also tuning seeds)" if any(r.get("in_sample") for r in head["rows"]) else ""
    chosen = f", settings chosen on seeds {tuning}" if tuning else ""
    return (
        f"**Held-out suite** ({head['n_tasks']} tasks, training seeds {seeds}{held}{chosen}): "
        "accuracy kept vs SGD in points, wins ▲ / ties · / losses ▼ over the tasks, and the "
        f"digits MLP with its seed-level 95% interval. {insample}"
    )


def suite_rows(head: Mapping) -> list[tuple[str, str, str, str]]:
    """(method, mean over tasks, W/T/L, digits MLP with interval) per headline row."""
    out = []
    for r in head["rows"]:
        td = r.get("task_delta")
        digits = f"{pts(td['mean'])} {interval(td)}" if td else "–"
        wtl = f"{r['wins']}▲ {r['ties']}· {r['losses']}▼"
        out.append((r["label"], pts(r["mean_delta"]), wtl, digits))
    return out


def worst_caption(names: Sequence[str], worst: Mapping, *, expert: bool) -> str:
    """The most harmful single flip of the sampled fault, in every model."""
    out = [
        f"{n}: {fmt_num(m['before'], 3)} → {fmt_num(m['after'], 3)}"
        for n, m in zip(names, worst["models"])
    ]
    where = f"{worst['param']}[{worst['index']}]" if expert else "one weight"
    return (
        f"Of the {worst['flips']} flips in pattern 0, this one ({where}, bit {worst['bit']}) "
        f"raised {names[0]}'s loss most on its own. The same flip in each model: "
        + "; ".join(out)
        + "."
    )


def curvature_panel(
    names: Sequence[str], lams: Sequence[float] | None, here: Mapping, *, expert: bool
) -> str:
    """Why curvature at the minimum and the loss rise under real faults can disagree."""
    curv = "top Hessian eigenvalue λ_max" if expert else "curvature along the steepest direction"
    text = ""
    if lams:
        order = sorted(range(len(lams)), key=lambda i: lams[i])
        listed = ", ".join(f"{names[i]} {fmt_num(lams[i], 3)}" for i in order)
        text += (
            f"**What the numbers say.** The {curv} at the trained weights, from flattest to "
            f"sharpest: {listed}. By that measure **{names[order[-1]]} is sharpest**. "
        )
    text += flatness_sentence(names, here) + "\n\n"
    text += (
        "**Why both can be true.** Curvature looks at the *one* direction in which the loss "
        "climbs fastest, for a tiny step. A bit flip does not move the weights in that "
        "direction: it moves a few weights, each by an amount set by its format (in int8, up "
        "to the largest weight of its tensor; in float32, a fraction of itself or, for an "
        "exponent bit, enormously). So a model can be steeper along one direction faults almost "
        "never take and still lose less under faults — and bounding the weights (clipping, "
        "RandBET) shrinks the int8 moves themselves, which no flat minimum does."
    )
    if expert:
        text += (
            " (λ_max: Lanczos on Hessian-vector products of the test loss; the flatness verdict: "
            "a paired 95% t-interval of the loss rise over the patterns, sar_core.stats.)"
        )
    return text
