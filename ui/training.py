"""Train page helpers: the plans one click trains, and the tables / points drawn from a job record.

Every plan shares one base config (epochs, lr, batch size, seed, fault model): the methods differ
only in the optimizer and its radius, as sar_core.training.loop requires for a fair comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import streamlit as st

from sar_core.plots.style import method_label, sequential_colors
from sar_core.training.loop import TrainConfig
from ui.layout import clip01, fmt_ci


def compare_plans(
    methods: Sequence[str],
    base: Mapping,
    *,
    tag: str,
    rho_of: Mapping[str, float],
    geometry: str,
    rho_mode: str,
) -> list[dict]:
    """One plan per method (SAR gets the geometry and rho mode; SAM / ASAM / SAR their rho)."""
    if not methods:
        raise ValueError("Choose at least one method to train.")
    plans = []
    for m in methods:
        cfg = TrainConfig(
            method=m,
            rho=rho_of.get(m),
            geometry=geometry if m == "sar" else None,
            rho_mode=rho_mode if m == "sar" else "fixed",
            **base,
        )
        label = method_label(m)
        plans.append({"label": label, "method": m, "config": cfg, "name": f"my {tag} · {label}"})
    return plans


def rho_sweep_plans(
    rhos: Sequence[float], base: Mapping, *, tag: str, geometry: str, with_reference: bool
) -> list[dict]:
    """SAR at every rho (fixed radius), optionally preceded by an SGD reference."""
    rhos = sorted(set(rhos))
    if not rhos:
        raise ValueError("Type at least one ρ value, like 0.1, 0.5, 1.")
    shades = sequential_colors(len(rhos))  # one distinguishable colour per rho, dark to light
    plans = []
    if with_reference:
        cfg = TrainConfig(method="sgd", **base)
        plans.append({"label": "SGD", "method": "sgd", "config": cfg, "name": f"my {tag} · SGD"})
    for i, r in enumerate(rhos):
        cfg = TrainConfig(method="sar", rho=r, geometry=geometry, rho_mode="fixed", **base)
        shade = shades[i]
        plans.append(
            {
                "label": f"SAR ρ={r:g}",
                "method": "sar",
                "config": cfg,
                "rho": r,
                "color": shade,
                "name": f"my {tag} · SAR ρ={r:g}",
            }
        )
    return plans


def faulty_column(rec: Mapping) -> str:
    """Name of the table column with the accuracy under the job's fault model."""
    return f"under faults ({rec['fault_label']})"


def results_rows(rec: Mapping) -> list[dict]:
    """One table row per run: epochs done, clean accuracy, accuracy under faults, time."""
    faulty = rec.get("faulty") or []
    rows = []
    for i, run in enumerate(rec["runs"]):
        last = run["history"][-1] if run["history"] else {}
        s = faulty[i] if i < len(faulty) else None
        rows.append(
            {
                "run": run["label"],
                "model": run["model"]
                or ("(diverged, not saved)" if run.get("diverged") else "(stopped, not saved)"),
                "epochs": len(run["history"]),
                "clean accuracy": last.get("test_acc"),
                faulty_column(rec): s["mean_accuracy"] if s else None,
                "95% CI": fmt_ci(s["ci95"]) if s else "",
                "vs first model (pt)": 100 * s["paired_difference"]["mean"] if s else None,
                "train time (s)": sum(r["seconds"] for r in run["history"]),
            }
        )
    return rows


def rho_points(rec: Mapping) -> tuple[list[dict], dict | None]:
    """(SAR points by rho, SGD reference or None) for sar_core.plots.training.rho_sweep_figure."""
    points, reference = [], None
    for plan, run, s in zip(rec["plans"], rec["runs"], rec.get("faulty") or []):
        if s is None:  # diverged: no model to measure
            continue
        row = {
            "rho": plan.get("rho"),
            "method": plan["method"],
            "clean_accuracy": run["history"][-1]["test_acc"],
            "mean_accuracy": s["mean_accuracy"],
            "ci95": [clip01(s["ci95"][0]), clip01(s["ci95"][1])],
        }
        if plan.get("rho") is None:
            reference = row
        else:
            points.append(row)
    return points, reference


def _trend(values: Sequence[float]) -> str:
    """'rose' / 'fell' (every step the same way), 'peaked' / 'dipped' (one turn), else 'varied'."""
    steps = [b - a for a, b in zip(values, values[1:])]
    if all(d >= 0 for d in steps):
        return "rose"
    if all(d <= 0 for d in steps):
        return "fell"
    best = max(range(len(values)), key=values.__getitem__)
    worst = min(range(len(values)), key=values.__getitem__)
    up = all(d >= 0 for d in steps[:best]) and all(d <= 0 for d in steps[best:])
    down = all(d <= 0 for d in steps[:worst]) and all(d >= 0 for d in steps[worst:])
    return "peaked" if up else "dipped" if down else "varied"


def rho_caption(points: Sequence[Mapping], reference: Mapping | None) -> str:
    """What the rho-sweep chart shows, computed from its points (never a fixed claim)."""
    pts = sorted((p for p in points if p.get("mean_accuracy") is not None), key=lambda p: p["rho"])
    if len(pts) < 2:
        return "One ρ only: add more values to see a trend."
    acc = [p["mean_accuracy"] for p in pts]
    trend = _trend(acc)
    first, last = pts[0], pts[-1]
    best = max(pts, key=lambda p: p["mean_accuracy"])

    def at(p: Mapping) -> str:
        return f"{100 * p['mean_accuracy']:.1f}% at ρ={p['rho']:g}"

    if trend in ("rose", "fell"):
        text = f"Under faults, accuracy {trend} with ρ: {at(first)} → {at(last)}."
    elif trend == "peaked":
        text = f"Under faults, accuracy peaked at {at(best)} ({at(first)}, {at(last)})."
    else:
        text = (
            f"Under faults, accuracy went up and down with ρ (best {at(best)}; {at(first)}, "
            f"{at(last)}): it is not monotonic in ρ here."
        )
    lows = [p["ci95"][0] for p in pts]
    highs = [p["ci95"][1] for p in pts]
    if all(v is not None for v in lows + highs) and max(lows) <= min(highs):
        text += " All 95% intervals overlap: more trials would be needed to call a difference."
    clean = [p["clean_accuracy"] for p in pts]
    text += f" Clean accuracy {_trend(clean)} ({100 * clean[0]:.1f}% → {100 * clean[-1]:.1f}%)."
    if reference is not None:
        text += f" SGD reference under faults: {100 * reference['mean_accuracy']:.1f}%."
    return text + " Paired trials: every point saw the same fault patterns."


def describe_target(data, arch: str, widths, fm, *, rho: float, seed: int) -> dict:
    """sar_core.training.fault_geometry.describe_sar for the model this page would train (its initial weights)."""
    key = (data.name, data.seed, arch, tuple(widths or ()), fm.to_dict(), rho, seed)
    return _describe(key, data)


@st.cache_data(show_spinner=False, max_entries=64)
def _describe(key: tuple, _data) -> dict:  # cached: the panel sits in the page body (every rerun)
    from sar_core.faults.model import FaultModel
    from sar_core.training.fault_geometry import describe_sar
    from sar_core.training.loop import spec_for

    _, _, arch, widths, fm, rho, seed = key
    return describe_sar(
        spec_for(_data, arch, widths or None), FaultModel.from_dict(fm), rho=rho, seed=seed
    )


def describe_rows(desc: Mapping) -> list[dict]:
    """The per-layer part of describe_sar as table rows (eligible layers only)."""
    rows = []
    for layer in desc["layers"]:
        if not layer.get("eligible"):
            continue
        rows.append(
            {
                "parameter": layer["name"],
                "shape": " × ".join(map(str, layer["shape"])),
                "mean |w|": layer.get("abs_w_mean"),
                "intensity T (mean)": layer.get("t_mean"),
                "T min": layer.get("t_min"),
                "T max": layer.get("t_max"),
                "int8 scale": layer.get("int8_scale_max"),
                "uncovered sites": layer.get("uncovered_sites"),
            }
        )
    for col in ("int8 scale", "uncovered sites"):  # int8 targets have a scale, floats the other
        if all(r[col] is None for r in rows):
            for r in rows:
                del r[col]
    return rows


def fmt_count(x: float) -> str:
    """An expected count for prose: '1,360', '12.5', '0.034' (never '1.36e+03')."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def describe_text(desc: Mapping) -> str:
    """Plain sentences about what SAR v2 derives from the target fault model."""
    cov, exc = desc["covered_bits"], desc["excluded_bits"]
    text = (
        f"At this fault model about **{fmt_count(desc['expected_flips'])} bits flip** per pass "
        "over the "
        f"{desc['eligible_weights']:,} eligible weights. SAR's *fault* geometry scales each "
        "weight's neighbourhood by how far a flip moves it (the intensity T below) and sets the "
        f"radius to ρ × √E[n] = {desc['multiplier']:g} × {desc['fault_radius']:.3g} = "
        f"**{desc['rho']:.3g}** (expected size of a fault, in weight units: "
        f"{desc['expected_perturbation_norm']:.3g})."
    )
    if exc:
        text += (
            f" Bit{'s' if len(exc) > 1 else ''} {', '.join(map(str, exc))} "
            f"{'are' if len(exc) > 1 else 'is'} left out: one flip there is catastrophic "
            "(no radius can cover it)"
        )
        p = desc.get("p_any_excluded_flip")
        text += f"; the chance that any of them flips is {p:.3g}." if p is not None else "."
    text += f" Covered bits: {len(cov)}."
    n_out = desc.get("uncovered_sites") or 0
    if n_out:
        text += (
            f" At these weights {n_out:,} of the {desc['covered_sites']:,} covered sites move "
            f"their weight by more than {desc['uncovered_span']:g} × max|W| of its tensor "
            "(upward exponent flips, ×4 and beyond): they count 0 in T, since a jump that "
            "size is not a neighbourhood SAR can flatten."
        )
    return text
