"""The SAR Lab task suite: targets by rule, tuning on seeds 0-1, judgement on held-out seeds 2-6.

The protocol is documented in ``sar_core/experiments/suite.py``. Stage 1 (targets, tuned ASAM)
runs per task in worker processes; stage 2 (held-out seeds) runs through the project's study
runner (local executor) in ``<out>_study/`` (cached: a rerun resumes). Writes ``<out>.json``
(read by the dashboard and ``scripts/results_table.py``), ``<out>.csv`` (one row per task,
target and method) and ``<out>.md`` (the tables), and prints the tables in Markdown.

Run:  OMP_NUM_THREADS=1 python benchmarks/suite.py [--workers 2] [--quick] [--tasks a,b]
      [--seeds 2,3,4,5,6] [--epochs 20] [--trials 40] [--out benchmarks/results/suite]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sar_core.experiments.suite import run_suite  # noqa: E402
from sar_core.experiments.suite_config import TASKS, SuiteConfig, quick_config  # noqa: E402
from sar_core.experiments.suite_report import (  # noqa: E402
    compact_table,
    markdown_details,
    markdown_table,
)
from sar_core.experiments.suite_results import result_rows  # noqa: E402


def write_outputs(results: dict, out: Path) -> None:
    """<out>.json, <out>.csv and <out>.md from a results dict; print the Markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    targets = list(results["tasks"][0]["targets"])
    rows = [r for t in targets for r in result_rows(results, t)]
    with out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    seeds = results["config"]["heldout_seeds"]
    parts = []
    for setting in targets:
        parts.append(f"### {setting} target setting (held-out seeds {list(seeds)})")
        parts.append(compact_table(results, setting))
        parts.append(markdown_table(results, setting))
    parts += ["### Targets, selections and per-seed deltas", markdown_details(results)]
    text = "\n\n".join(parts)
    out.with_suffix(".md").write_text(text + "\n")
    print(text)


def variants(task: str, seeds: list[int], epochs: int, named: dict, targets: dict) -> list[dict]:
    """Tuning-seed comparison of training variants (how the defaults were chosen).

    Each variant (TrainConfig fields) is trained per seed; targeted methods get the task's int8
    target; all models of a seed are paired under the same 30 fault patterns (seed 100 + seed).
    """
    import numpy as np

    from sar_core.analysis.campaign import compare
    from sar_core.experiments.suite_config import target_model
    from sar_core.experiments.suite_tuning import _load
    from sar_core.training.loop import TrainConfig, train

    fm = target_model("int8", targets[task])
    out: dict = {}
    for seed in seeds:
        data, spec = _load(task, seed)
        models = []
        for name, kw in named.items():
            kw = dict(kw)
            if kw.get("method") in ("sar", "sar_clip", "fat", "randbet"):
                kw["fault_model"] = fm
            t0 = time.perf_counter()
            r = train(spec, data, TrainConfig(epochs=epochs, seed=seed, **kw), device="cpu")
            models.append(r.model)
            row = out.setdefault(name, {"clean": [], "robust": [], "seconds": []})
            row["clean"].append(100 * r.clean_accuracy)
            row["seconds"].append(time.perf_counter() - t0)
        res = compare(models, data.X_test, data.y_test, fm, trials=30, seed=100 + seed)
        for name, rr in zip(named, res["results"]):
            out[name]["robust"].append(100 * rr.summary()["mean_accuracy"])
    base = out[next(iter(named))]
    return [
        {
            "task": task,
            "variant": n,
            "config": named[n],
            "clean": float(np.mean(v["clean"])),
            "clean_delta": float(np.mean(v["clean"]) - np.mean(base["clean"])),
            "robust": float(np.mean(v["robust"])),
            "delta": float(np.mean(v["robust"]) - np.mean(base["robust"])),
            "robust_per_seed": v["robust"],
            "seconds": float(np.mean(v["seconds"])),
        }
        for n, v in out.items()
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (one task, 2 epochs)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes, 1 thread each")
    ap.add_argument("--tasks", default=None, help=f"comma list from {','.join(TASKS)}")
    ap.add_argument("--seeds", default=None, help="held-out seeds, comma list (default 2-6)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs of every model")
    ap.add_argument("--trials", type=int, default=None, help="fault trials per held-out model")
    ap.add_argument("--out", default="benchmarks/results/suite", help="path without extension")
    ap.add_argument("--render", default=None, help="a results JSON: rewrite CSV/MD, no run")
    ap.add_argument(
        "--study-dir", default=None, help="the held-out study's directory (default <out>_study)"
    )
    ap.add_argument(
        "--variants",
        default=None,
        help="JSON {name: TrainConfig fields}, first = reference: tuning-seed comparison "
        "(--tasks, --seeds default 0,1, --epochs default 20; targets from --targets-from)",
    )
    ap.add_argument("--targets-from", default=None, help="results JSON whose int8 targets to use")
    a = ap.parse_args(argv)
    if a.variants:
        from sar_core.experiments.suite_results import load_results

        res = load_results(a.targets_from)
        targets = {t["task"]: t["targets"]["int8"]["ber"] for t in res["tasks"]}
        seeds = [int(x) for x in (a.seeds or "0,1").split(",")]
        rows = []
        for task in (a.tasks or ",".join(targets)).split(","):
            rows += variants(task, seeds, a.epochs or 20, json.loads(a.variants), targets)
        print(json.dumps(rows))
        return 0
    if a.render:
        results = json.loads(Path(a.render).read_text())
        write_outputs(results, Path(a.out))
        return 0
    cfg = quick_config() if a.quick else SuiteConfig()
    try:
        changes: dict = {}
        if a.tasks:
            changes["tasks"] = tuple(t.strip() for t in a.tasks.split(","))
        if a.seeds:
            changes["heldout_seeds"] = tuple(int(s) for s in a.seeds.split(","))
        if a.epochs:
            changes["epochs"] = a.epochs
        if a.trials:
            changes["trials_eval"] = a.trials
        cfg = replace(cfg, **changes)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    load0 = os.getloadavg()[0]
    done = {"n": 0}

    def progress(ev: dict) -> None:
        if ev.get("stage") == "tuning":
            print(
                f"[{time.time() - t0:6.0f} s] tuning {ev['task']} done", file=sys.stderr, flush=True
            )
        elif ev.get("status") in ("ok", "failed"):
            done["n"] += 1
            if done["n"] % 25 == 0 or ev.get("status") == "failed":
                print(
                    f"[{time.time() - t0:6.0f} s] held-out: {done['n']} study tasks "
                    f"({ev.get('status')})",
                    file=sys.stderr,
                    flush=True,
                )

    out = Path(a.out)
    study = Path(a.study_dir) if a.study_dir else out.parent / (out.name + "_study")
    results = run_suite(cfg, study, workers=max(1, a.workers), on_event=progress)
    results["load_average"] = {"start": load0, "end": os.getloadavg()[0]}
    write_outputs(results, out)
    print(
        f"\n{len(cfg.tasks)} tasks, {results['run_seconds']:.0f} s with {a.workers} workers "
        f"(load average {load0:.1f} -> {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
