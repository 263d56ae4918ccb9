"""The SAR Lab task suite: targets by rule, tuning on seeds 0-1, judgement on held-out seeds 2-4.

The protocol is documented in ``sar_core/experiments/suite.py``. This script runs it, writes
``<out>.json`` (read by the dashboard), ``<out>.csv`` (one row per task, setting and method) and
``<out>.md`` (the tables), and prints the README tables in Markdown.

Run:  OMP_NUM_THREADS=1 python benchmarks/suite.py [--workers 2] [--quick] [--tasks a,b]
      [--out benchmarks/results/suite]
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

from sar_core.experiments.suite import (  # noqa: E402
    TASKS,
    SuiteConfig,
    quick_config,
    result_rows,
    run_suite,
)
from sar_core.experiments.suite_report import markdown_details, markdown_table

MARK = {"win": "▲", "loss": "▼", "tie": "·"}


def compact_table(results: dict, setting: str = "int8") -> str:
    """README headline: per task, SGD's robust accuracy and every method's paired delta."""
    methods = [m for m in results["tasks"][0]["methods"] if m != "sgd"]
    head = f"| task (test n) | {setting} BER (SGD loss) | SGD clean / robust % | "
    lines = [head + " | ".join(methods) + " |", "|---" * (3 + len(methods)) + "|"]
    for t in results["tasks"]:
        tg, r = t["targets"][setting], t["methods"]
        cells = [f"{r[m][setting]['delta']:+.1f} {MARK[r[m][setting]['verdict']]}" for m in methods]
        lines.append(
            f"| {t['task']} ({t['n_test']}) | {tg['ber']:.3g} ({tg['sgd_loss_pt']:.1f} pt) "
            f"| {r['sgd']['clean']:.1f} / {r['sgd'][setting]['robust']:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def write_outputs(results: dict, out: Path) -> None:
    """<out>.json, <out>.csv and <out>.md from a results dict; print the Markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    rows = result_rows(results, "int8") + result_rows(results, "float16")
    with out.with_suffix(".csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    seeds = results["config"]["heldout_seeds"]
    parts = []
    for setting in ("int8", "float16"):
        parts.append(f"### {setting} target setting (held-out seeds {list(seeds)})")
        parts.append(compact_table(results, setting))
        parts.append(markdown_table(results, setting))
    parts += ["### Targets, selections and per-seed deltas", markdown_details(results)]
    text = "\n\n".join(parts)
    out.with_suffix(".md").write_text(text + "\n")
    print(text)


def _overrides(cfg, methods: str | None, grids: list[str]):
    if methods:
        ms = tuple(m.strip() for m in methods.split(","))
        if ms[0] != "sgd" or any(m not in cfg.methods for m in ms):
            raise ValueError(f"Invalid --methods={methods!r}: sgd first, then from {cfg.methods}")
        cfg = replace(cfg, methods=ms)
    new = dict(cfg.grids)
    for g in grids:
        m, _, vals = g.partition("=")
        try:
            values = tuple(float(v) for v in vals.split(","))
        except ValueError:
            values = ()
        if m not in new or not values:
            raise ValueError(f"Invalid --grid={g!r}: use METHOD=v1,v2 with METHOD in {list(new)}")
        new[m] = (new[m][0], values)
    return replace(cfg, grids=new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (one task, 2 epochs)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes, 1 thread each")
    ap.add_argument("--tasks", default=None, help=f"comma list from {','.join(TASKS)}")
    ap.add_argument("--out", default="benchmarks/results/suite", help="path without extension")
    ap.add_argument("--render", default=None, help="a results JSON: rewrite CSV/MD, no run")
    ap.add_argument("--methods", default=None, help="comma list (sgd first), e.g. sgd,asam,sar")
    ap.add_argument(
        "--grid", action="append", default=[], help="override a grid: METHOD=v1,v2,... (repeatable)"
    )
    a = ap.parse_args(argv)
    if a.render:
        results = json.loads(Path(a.render).read_text())
        write_outputs(results, Path(a.out))
        return 0
    cfg = quick_config() if a.quick else SuiteConfig()
    if a.tasks:
        tasks = tuple(t.strip() for t in a.tasks.split(","))
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            print(
                f"error: unknown task {unknown[0]!r}; choose from {', '.join(TASKS)}",
                file=sys.stderr,
            )
            return 2
        cfg = replace(cfg, tasks=tasks)
    try:
        cfg = _overrides(cfg, a.methods, a.grid)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    load0 = os.getloadavg()[0]

    def progress(res: dict) -> None:
        print(f"[{time.time() - t0:6.0f} s] {res['task']} done", file=sys.stderr, flush=True)

    results = run_suite(cfg, workers=max(1, a.workers), on_task=progress)
    results["load_average"] = {"start": load0, "end": os.getloadavg()[0]}
    write_outputs(results, Path(a.out))
    print(
        f"\n{len(cfg.tasks)} tasks, {results['run_seconds']:.0f} s with {a.workers} workers "
        f"(load average {load0:.1f} -> {os.getloadavg()[0]:.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
