"""Tidy tables of a study from its cache: one row per (task, seed, method, fault point), per trial,
and per model (and, for a spec with ``[report]``, one per double-win report row); written as
Parquet (pyarrow) and CSV.

Wall times are left out of the tables (they go to ``timings.json``): the tables of a spec are
the same numbers on every executor and worker count, so they can be compared byte for byte.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from sar_core.experiments.study.cache import Store, atomic_write, numbers
from sar_core.experiments.study.plan import CampaignRef, Plan, campaign_seed

RESULT_COLUMNS = (
    "study",
    "task",
    "dataset",
    "arch",
    "seed",
    "method",
    "optimizer",
    "fault",
    "format",
    "level_key",
    "level",
    "level_label",
    "trials",
    "campaign_seed",
    "n_test",
    "clean_accuracy",
    "deployed_accuracy",
    "mean_accuracy",
    "std",
    "ci95_low",
    "ci95_high",
    "mean_flips",
    "n_sites",
    "reference",
    "delta",
    "delta_ci95_low",
    "delta_ci95_high",
    "delta_std",
    "sharpness_measure",
    "sharpness",
    "fault_model",
    "model_key",
    "campaign_key",
)


def _task_spec(plan: Plan, name: str):
    return next(t for t in plan.spec.tasks if t.name == name)


def _paired(ref: list[float], acc: list[float]) -> tuple[float, float, float, float]:
    from sar_core.stats.intervals import summarize

    s = summarize(np.asarray(acc) - np.asarray(ref))
    return s["mean"], s["ci95"][0], s["ci95"][1], s["std"]


def _campaign_row(plan: Plan, store: Store, c: CampaignRef, res: dict, ref_res: dict | None):
    from sar_core.data.io import dumps

    spec, t = plan.spec, _task_spec(plan, c.task)
    sh = next(m.sharpness_key for m in plan.models if m.key == c.model_key)
    sharp = store.load(plan.tasks[sh])["value"] if sh and store.has(plan.tasks[sh]) else math.nan
    delta = _paired(ref_res["accuracy"], res["accuracy"]) if ref_res else (math.nan,) * 4
    cfg = plan.tasks[c.model_key].inputs["config"]
    return {
        "study": spec.name,
        "task": c.task,
        "dataset": t.dataset,
        "arch": t.arch,
        "seed": c.seed,
        "method": c.method,
        "optimizer": cfg["method"],
        "fault": c.point.setting,
        "format": c.point.fault["format"],
        "level_key": c.point.level_key,
        "level": c.point.level,
        "level_label": c.point.label,
        "trials": res["trials"],
        "campaign_seed": campaign_seed(spec, c.seed),
        "n_test": res["n_test"],
        "clean_accuracy": res["clean_accuracy"],
        "deployed_accuracy": res["deployed_accuracy"],
        "mean_accuracy": res["mean_accuracy"],
        "std": res["std"],
        "ci95_low": res["ci95"][0],
        "ci95_high": res["ci95"][1],
        "mean_flips": res.get("mean_flips", math.nan),
        "n_sites": res.get("n_sites", -1),
        "reference": spec.reference,
        "delta": delta[0],
        "delta_ci95_low": delta[1],
        "delta_ci95_high": delta[2],
        "delta_std": delta[3],
        "sharpness_measure": spec.sharpness["measure"],
        "sharpness": sharp,
        "fault_model": dumps(c.point.fault),
        "model_key": c.model_key,
        "campaign_key": c.key,
    }


def _load(store: Store, plan: Plan, key: str) -> dict:
    return {k: numbers(v) for k, v in store.load(plan.tasks[key]).items()}


def collect(plan: Plan, store: Store) -> dict[str, list[dict]]:
    """Rows of the results, trials and models tables for every finished task of the plan."""
    done = {k for k, t in plan.tasks.items() if store.has(t)}
    camp = {c.key: _load(store, plan, c.key) for c in plan.campaigns if c.key in done}
    by_cell = {
        (c.task, c.seed, c.method, c.point.setting, c.point.level): c for c in plan.campaigns
    }
    results, trials = [], []
    for c in plan.campaigns:
        if c.key not in camp:
            continue
        ref = by_cell.get((c.task, c.seed, plan.spec.reference, c.point.setting, c.point.level))
        row = _campaign_row(plan, store, c, camp[c.key], camp.get(ref.key) if ref else None)
        results.append(row)
        r = camp[c.key]
        for i, (a, loss, f) in enumerate(zip(r["accuracy"], r["loss"], r["flips"])):
            trials.append(
                {
                    **{k: row[k] for k in ("task", "seed", "method", "fault", "level")},
                    "trial": i,
                    "accuracy": a,
                    "loss": loss,
                    "flips": f,
                }
            )
    tables = {"results": results, "trials": trials, "models": _models(plan, store, done)}
    if plan.reports:  # the double-win report's deterministic columns (latency etc.: measured)
        from sar_core.experiments.study.double_win import report_rows

        tables["double_win"] = report_rows(plan, store, measured=False)
    return tables


def _models(plan: Plan, store: Store, done: set[str]) -> list[dict]:
    from sar_core.data.io import dumps

    rows = []
    for m in plan.models:
        if m.key not in done:
            continue
        r = _load(store, plan, m.key)
        sharp = math.nan
        if m.sharpness_key in done:
            sharp = _load(store, plan, m.sharpness_key)["value"]
        rows.append(
            {
                "task": m.task,
                "seed": m.seed,
                "method": m.method,
                "clean_accuracy": r["clean_accuracy"],
                "test_loss": r["test_loss"],
                "epochs": r["epochs"],
                "n_params": r["n_params"],
                "sharpness_measure": plan.spec.sharpness["measure"],
                "sharpness": sharp,
                "checkpoint": str(store.checkpoint_path(m.key).relative_to(store.root)),
                "config": dumps(plan.tasks[m.key].inputs["config"]),
                "model_key": m.key,
            }
        )
    return rows


def write_tables(tables: dict[str, list[dict]], out: str | Path) -> dict[str, str]:
    """Write each table as <name>.parquet and <name>.csv (trials: Parquet only); returns paths."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from sar_core.data.io import rows_to_csv

    out = Path(out)
    paths = {}
    for name, rows in tables.items():
        if not rows:
            continue
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buf)
        atomic_write(out / f"{name}.parquet", buf.getvalue())
        paths[f"{name}_parquet"] = str(out / f"{name}.parquet")
        if name != "trials":
            atomic_write(out / f"{name}.csv", rows_to_csv(rows).encode())
            paths[f"{name}_csv"] = str(out / f"{name}.csv")
    return paths


def read_table(path: str | Path) -> list[dict]:
    """Rows of a Parquet table written by ``write_tables``."""
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
