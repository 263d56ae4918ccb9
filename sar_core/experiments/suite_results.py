"""Reading the task suite's results file: loading, method labels, headline and flat rows.

What the dashboard, the lesson, the README tables and the scripts read; nothing here trains.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sar_core.experiments.suite_config import TARGETS
from sar_core.stats.intervals import seed_level_interval
from sar_core.stats.verdicts import verdict

SCHEMA = "sar-lab-suite/2"
SCHEMA_V1 = "sar-lab-suite/1"
RESULTS_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "suite.json"


def load_results(path: str | Path | None = None) -> dict:
    """The suite's results (``path``; default: the bundled ``benchmarks/results/suite.json``).

    Raises ValueError naming the path when the file is missing or is not a suite results file.
    """
    p = Path(path) if path is not None else RESULTS_PATH
    if not p.is_file():
        raise ValueError(
            f"Invalid suite results path={str(p)!r}: no such file; run benchmarks/suite.py"
        )
    try:
        res = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Invalid suite results path={str(p)!r}: not JSON ({e})") from None
    if not isinstance(res, dict) or not str(res.get("schema", SCHEMA)).startswith("sar-lab-suite/"):
        raise ValueError(
            f"Invalid suite results path={str(p)!r}: schema {res.get('schema')!r} is not "
            "'sar-lab-suite/N'; run benchmarks/suite.py"
            if isinstance(res, dict)
            else f"Invalid suite results path={str(p)!r}: not a JSON object"
        )
    if not isinstance(res.get("tasks"), list) or not res["tasks"]:
        raise ValueError(f"Invalid suite results path={str(p)!r}: no tasks")
    return res


# Output labels: what each method name means in the results (SAR variants told apart).
LABELS_V1 = {  # schema 1 (the 2026-11 run): `sar` was SAR v2 with a tuned multiplier
    "sam": "SAM (tuned rho)",
    "asam": "ASAM (tuned rho)",
    "sar": "SAR v2 (fault geometry, tuned multiplier)",
    "sar@float16": "SAR v2 aimed at float16 (int8-tuned multiplier)",
    "fat": "fault-aware training (tuned rate)",
    "clip": "weight clipping (tuned w_max)",
    "randbet": "RandBET (tuned rate, clip's w_max)",
    "sar_clip": "SAR v2 + clipping (tuned)",
}


def method_label(results: dict, method: str) -> str:
    """Human label of a result's method (the results file's own labels first)."""
    labels = results.get("labels") or (LABELS_V1 if results.get("schema") == SCHEMA_V1 else {})
    return labels.get(method, method)


def _targets_of(results: dict) -> tuple[str, ...]:
    return tuple(results["tasks"][0]["targets"])


def _seed_ci(row: dict) -> dict:
    """Seed-level 95% CI (points) of a method - SGD difference from its per-seed deltas."""
    return seed_level_interval(row["delta_per_seed"]).to_dict()


def headline(results: dict, target: str, task: str | None = None) -> list[dict]:
    """Per non-SGD method at ``target``: mean delta over tasks, seed-level verdict counts.

    One dict per method, sorted by ``mean_delta`` (points) descending: ``method``, ``label``,
    ``mean_delta``, ``wins`` / ``ties`` / ``losses`` (verdicts of the seed-level interval over
    the held-out seeds' mean differences), ``task``, ``task_delta`` (that task's seed-level CI as
    ``{"mean", "lo", "hi", "n", "kind"}`` when ``task`` is given, else None),
    ``mean_clean_delta`` and ``in_sample`` (True when a reported seed was also a tuning seed).
    A method aimed at another target (``sar@float16``) is listed only under its own target.
    """
    targets = _targets_of(results)
    if target not in targets:
        raise ValueError(f"Invalid target={target!r}: this results file has {list(targets)}")
    tasks = results["tasks"]
    names = [t["task"] for t in tasks]
    if task is not None and task not in names:
        raise ValueError(f"Invalid task={task!r}: this results file has {names}")
    cfg = results.get("config", {})
    in_sample = bool(set(cfg.get("heldout_seeds", ())) & set(cfg.get("tuning_seeds", ())))
    methods = [m for m in tasks[0]["methods"] if m != "sgd"]
    out = []
    for m in methods:
        aim = m.partition("@")[2]
        if (aim and aim != target) or any(m not in t["methods"] for t in tasks):
            continue
        rows = [t["methods"][m] for t in tasks]
        cis = [_seed_ci(r[target]) for r in rows]
        verdicts = [verdict(c["lo"], c["hi"]) for c in cis]
        task_delta = None
        if task is not None:
            c = cis[names.index(task)]
            task_delta = {k: c[k] for k in ("mean", "lo", "hi", "n", "kind")}
        out.append(
            {
                "method": m,
                "label": method_label(results, m),
                "mean_delta": float(np.mean([c["mean"] for c in cis])),
                "wins": verdicts.count("win"),
                "ties": verdicts.count("tie"),
                "losses": verdicts.count("loss"),
                "task": task,
                "task_delta": task_delta,
                "mean_clean_delta": float(np.mean([r["clean_delta"] for r in rows])),
                "in_sample": in_sample,
            }
        )
    return sorted(out, key=lambda d: -d["mean_delta"])


def result_rows(results: dict, setting: str = "int8") -> list[dict]:
    """One flat row per task and method (for tables, CSV, and the dashboard's cross-task view)."""
    if not results.get("tasks") or setting not in _targets_of(results):
        have = list(_targets_of(results)) if results.get("tasks") else list(TARGETS)
        raise ValueError(f"Invalid setting={setting!r}: choose from {have}")
    rows = []
    for t in results["tasks"]:
        tgt = t["targets"][setting]
        for m, r in t["methods"].items():
            aim = m.partition("@")[2]
            if aim and aim != setting:
                continue
            fault = r[setting].get("fault_ci95", [float("nan")] * 2)
            rows.append(
                {
                    "task": t["task"],
                    "n_test": t["n_test"],
                    "setting": setting,
                    "ber": tgt["ber"],
                    "sgd_loss_pt": tgt["sgd_loss_pt"],
                    "method": m,
                    "label": method_label(results, m),
                    "params": json.dumps(t["selected"].get(m.split("@")[0], {})),
                    "clean": r["clean"],
                    "clean_delta": r["clean_delta"],
                    "robust": r[setting]["robust"],
                    "delta": r[setting]["delta"],
                    "ci95_low": r[setting]["ci95"][0],
                    "ci95_high": r[setting]["ci95"][1],
                    "ci_kind": "seed" if "seed_ci" in r[setting] else "fault (pooled trials)",
                    "fault_ci95_low": fault[0],
                    "fault_ci95_high": fault[1],
                    "verdict": r[setting]["verdict"],
                }
            )
    return rows
