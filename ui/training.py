"""Train page helpers: the plans one click trains, and the tables / points drawn from a job record.

Every plan shares one base config (epochs, lr, batch size, seed, fault model): the methods differ
only in the optimizer and its radius, as sar_core.training requires for a fair comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sar_core.plots.style import method_label
from sar_core.training import TrainConfig
from ui.widgets import fmt_ci

# light to dark vermillion: SAR's colour, one shade per rho of a sweep
RHO_SHADES = ["#F5B183", "#EE8A4E", "#E3692A", "#D55E00", "#A94A00", "#7A3600", "#4D2200"]


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
        raise ValueError("Invalid methods=[]: select at least one method to train")
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
        raise ValueError("Invalid rho list: give at least one ρ value, e.g. 0.1, 0.5, 1")
    plans = []
    if with_reference:
        cfg = TrainConfig(method="sgd", **base)
        plans.append({"label": "SGD", "method": "sgd", "config": cfg, "name": f"my {tag} · SGD"})
    for i, r in enumerate(rhos):
        cfg = TrainConfig(method="sar", rho=r, geometry=geometry, rho_mode="fixed", **base)
        shade = RHO_SHADES[min(i * len(RHO_SHADES) // len(rhos), len(RHO_SHADES) - 1)]
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
                "model": run["model"] or "(stopped, not saved)",
                "epochs": len(run["history"]),
                "clean accuracy": last.get("test_acc"),
                faulty_column(rec): s["mean_accuracy"] if s else None,
                "95% CI": fmt_ci(s["ci95"]) if s else "",
                "vs first (pt)": 100 * s["paired_difference"]["mean"] if s else None,
                "train time (s)": sum(r["seconds"] for r in run["history"]),
            }
        )
    return rows


def rho_points(rec: Mapping) -> tuple[list[dict], dict | None]:
    """(SAR points by rho, SGD reference or None) for sar_core.plots.training.rho_sweep_figure."""
    points, reference = [], None
    for plan, run, s in zip(rec["plans"], rec["runs"], rec.get("faulty") or []):
        row = {
            "rho": plan.get("rho"),
            "method": plan["method"],
            "clean_accuracy": run["history"][-1]["test_acc"],
            "mean_accuracy": s["mean_accuracy"],
            "ci95": s["ci95"],
        }
        if plan.get("rho") is None:
            reference = row
        else:
            points.append(row)
    return points, reference
