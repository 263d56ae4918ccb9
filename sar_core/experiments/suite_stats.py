"""The task suite's held-out statistics: method - SGD deltas, seed-level intervals, verdicts.

``heldout_rows`` turns a study's collected tables into the per-task results; ``summarize_suite``
counts wins / ties / losses across tasks. Intervals and verdicts come from ``sar_core.stats``.
"""

from __future__ import annotations

import numpy as np

from sar_core.experiments.suite_config import TARGETS, SuiteConfig
from sar_core.stats.intervals import fault_level_interval, seed_level_interval
from sar_core.stats.verdicts import verdict


def _stats(per_seed_trials: list, ref_trials: list) -> dict:
    """Method - SGD (points) at one target from per-seed arrays of per-trial accuracies."""
    d_seed = [100 * (np.asarray(a) - np.asarray(b)) for a, b in zip(per_seed_trials, ref_trials)]
    seed = seed_level_interval(d_seed)
    fault = fault_level_interval(d_seed)
    return {
        "robust": float(100 * np.mean([np.mean(a) for a in per_seed_trials])),
        "delta": seed.mean,
        "ci95": [seed.lo, seed.hi],
        "seed_ci": seed.to_dict(),
        "fault_ci95": [fault.lo, fault.hi],
        "delta_per_seed": [float(d.mean()) for d in d_seed],
        "verdict": verdict(seed.lo, seed.hi),
    }


def _delta(accs: dict, base: str, m: str) -> dict:
    """``_stats`` of method ``m`` vs ``base`` from {method: [per-seed trial accuracies]}."""
    return _stats(accs[m], accs[base])


def heldout_rows(tables: dict, cfg: SuiteConfig) -> dict:
    """Per task: the methods dict of the results from a study's collected tables."""
    trials: dict = {}
    for r in tables["trials"]:
        key = (r["task"], r["method"], r["fault"], r["seed"])
        trials.setdefault(key, []).append((r["trial"], r["accuracy"]))
    clean = {
        (m["task"], m["method"], m["seed"]): 100 * m["clean_accuracy"] for m in tables["models"]
    }
    out: dict = {}
    for task in cfg.tasks:
        seeds = cfg.heldout_seeds
        acc = {
            (m, t): [np.array([a for _, a in sorted(trials[(task, m, t, s)])]) for s in seeds]
            for m in cfg.entries
            for t in cfg.targets
        }
        sgd_clean = [clean[(task, "sgd", s)] for s in seeds]
        methods = {}
        for m in cfg.entries:
            c = [clean[(task, m, s)] for s in seeds]
            cd = seed_level_interval(np.subtract(c, sgd_clean))
            row = {
                "clean": float(np.mean(c)),
                "clean_per_seed": c,
                "clean_delta": cd.mean,
                "clean_ci95": [cd.lo, cd.hi],
            }
            for t in cfg.targets:
                row[t] = _stats(acc[(m, t)], acc[("sgd", t)])
            methods[m] = row
        out[task] = methods
    return out


def summarize_suite(tasks: list[dict], targets: tuple[str, ...] | None = None) -> dict:
    """Across tasks, per target and method: mean delta, seed-level wins / ties / losses, clean."""
    targets = targets or tuple(t for t in TARGETS if t in tasks[0]["methods"]["sgd"])
    out: dict = {}
    for s in targets:
        out[s] = {}
        for m in tasks[0]["methods"]:
            aim = m.partition("@")[2]
            if m == "sgd" or (aim and aim != s) or any(m not in t["methods"] for t in tasks):
                continue
            rows = [t["methods"][m] for t in tasks]
            vs = [verdict(*r[s]["ci95"]) for r in rows]
            out[s][m] = {
                "mean_delta": float(np.mean([r[s]["delta"] for r in rows])),
                "wins": vs.count("win"),
                "ties": vs.count("tie"),
                "losses": vs.count("loss"),
                "mean_clean_delta": float(np.mean([r["clean_delta"] for r in rows])),
                "min_clean_delta": float(np.min([r["clean_delta"] for r in rows])),
            }
    return out
