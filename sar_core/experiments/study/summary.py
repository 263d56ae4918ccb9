"""Cross-seed statistics of study result rows: pooled cells, verdicts, the cross-task summary.

Across seeds, a cell (task, method, fault point) pools the trials of all seeds (n = seeds x
trials) and gives their mean with a Student-t 95% interval, as the task suite does
(sar_core.experiments.suite): it captures fault-pattern noise, not training-seed noise. A paired difference
is a win when its interval lies above zero, a loss when below, a tie otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def pooled(means, stds, ns) -> tuple[float, float, float]:
    """Mean and 95% t-interval of all trials of several seeds pooled, from per-seed summaries.

    Exact for the pooled sample: N = sum n_i, mean = sum n_i m_i / N, and the sum of squares is
    sum (n_i - 1) s_i^2 + n_i (m_i - mean)^2 (a seed with one trial adds no within-seed term).
    """
    from scipy import stats

    m, s, n = (np.asarray(v, dtype=np.float64) for v in (means, stds, ns))
    total = n.sum()
    mean = float((n * m).sum() / total)
    if total < 2:
        return mean, math.nan, math.nan
    within = np.where(n > 1, (n - 1) * np.nan_to_num(s, nan=0.0) ** 2, 0.0)
    var = float((within + n * (m - mean) ** 2).sum() / (total - 1))
    half = float(stats.t.ppf(0.975, total - 1) * math.sqrt(var / total))
    return mean, mean - half, mean + half


def aggregate(rows: Sequence[Mapping]) -> list[dict]:
    """One dict per (task, method, fault, level): means over seeds with 95% intervals."""
    cells: dict[tuple, list[Mapping]] = {}
    for r in rows:
        cells.setdefault((r["task"], r["method"], r["fault"], float(r["level"])), []).append(r)
    out = []
    for (task, method, fault, level), rs in cells.items():
        ns = [r.get("trials", 1) for r in rs]
        acc = pooled([r["mean_accuracy"] for r in rs], [r.get("std", math.nan) for r in rs], ns)
        d = [r.get("delta", math.nan) for r in rs]
        delta = pooled(d, [r.get("delta_std", math.nan) for r in rs], ns)
        sharp = [r.get("sharpness", math.nan) for r in rs]
        out.append(
            {
                "task": task,
                "method": method,
                "optimizer": rs[0].get("optimizer", method),
                "fault": fault,
                "level": level,
                "level_key": rs[0].get("level_key", "ber"),
                "level_label": rs[0].get("level_label", f"{level:g}"),
                "seeds": len(rs),
                "clean": float(np.mean([r["clean_accuracy"] for r in rs])),
                "acc": acc,
                "delta": delta,
                "is_reference": method == rs[0].get("reference"),
                "sharpness": float(np.mean(sharp)) if sharp else math.nan,
                "n_test": rs[0].get("n_test"),
            }
        )
    return out


def verdict(delta: tuple[float, float, float]) -> str:
    """win / loss / tie from a (mean, lo, hi) interval (the one rule: sar_core.stats.verdicts)."""
    from sar_core.stats.verdicts import verdict as rule

    return rule(delta[1], delta[2])


def summary_rows(cells: Sequence[dict]) -> list[dict]:
    """Cross-task summary per (method, fault): comparisons, mean Δ, wins / ties / losses, and
    the clean-accuracy difference to the reference (mean and worst over tasks)."""
    groups: dict[tuple, list[dict]] = {}
    ref_clean = {c["task"]: c["clean"] for c in cells if c["is_reference"]}
    for c in cells:
        if not c["is_reference"]:
            groups.setdefault((c["method"], c["fault"]), []).append(c)
    out = []
    for (method, fault), cs in sorted(groups.items()):
        verdicts = [verdict(c["delta"]) for c in cs]
        clean = {c["task"]: c["clean"] - ref_clean.get(c["task"], math.nan) for c in cs}
        out.append(
            {
                "method": method,
                "fault": fault,
                "comparisons": len(cs),
                "tasks": len({c["task"] for c in cs}),
                "mean_delta": float(np.mean([c["delta"][0] for c in cs])),
                "wins": verdicts.count("win"),
                "ties": verdicts.count("tie"),
                "losses": verdicts.count("loss"),
                "mean_clean_delta": float(np.mean(list(clean.values()))),
                "worst_clean_delta": float(np.min(list(clean.values()))),
            }
        )
    return out


def rows_from_sweep(
    levels,
    *,
    models: Sequence[str],
    methods: Sequence[str],
    task: str = "dashboard",
    fault: str = "faults",
    level_key: str = "ber",
    sharpness: Sequence[float] | None = None,
    sharpness_measure: str = "sharpness",
) -> list[dict]:
    """Report rows from a BER sweep of several models (``sweeps.iter_sweep``'s (level,
    summaries) pairs, or dicts with ``level`` and ``summaries``); the first model is the
    reference. For the dashboard's "Download HTML report": ``html_report(rows_from_sweep(...))``.
    """
    rows = []
    for item in levels:
        level, summaries = (item["level"], item["summaries"]) if isinstance(item, Mapping) else item
        for i, (name, method, s) in enumerate(zip(models, methods, summaries)):
            d = s.get("paired_difference") or {}
            dci = d.get("ci95") or [math.nan, math.nan]
            rows.append(
                {
                    "task": task,
                    "seed": 0,
                    "method": name,
                    "optimizer": method,
                    "fault": fault,
                    "level_key": level_key,
                    "level": float(level),
                    "level_label": f"{float(level):g}",
                    "trials": s.get("trials", 1),
                    "clean_accuracy": s["clean_accuracy"],
                    "mean_accuracy": s["mean_accuracy"],
                    "std": s.get("std", math.nan),
                    "ci95_low": s["ci95"][0],
                    "ci95_high": s["ci95"][1],
                    "reference": models[0],
                    "delta": d.get("mean", math.nan),
                    "delta_ci95_low": dci[0],
                    "delta_ci95_high": dci[1],
                    "delta_std": d.get("std", math.nan),
                    "sharpness_measure": sharpness_measure,
                    "sharpness": sharpness[i] if sharpness is not None else math.nan,
                }
            )
    return rows
