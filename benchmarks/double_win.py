"""Double-win table: a study spec run by the study runner, then tabulated over held-out seeds.

    OMP_NUM_THREADS=1 python benchmarks/double_win.py --workers 1      # studies/double_win.toml
    python benchmarks/double_win.py --spec my.toml --out /tmp/dw --study-dir /tmp/dw_study
    python benchmarks/double_win.py --render          # rewrite OUT.md from OUT.json
    python benchmarks/double_win.py --latency 15      # latency noise floor on the demo models

The spec (default ``studies/double_win.toml``) names the methods, tasks, seeds, fault model and
the ``[report]`` settings; ``sar_core.experiments.study.run_study`` trains every model and runs
one ``report`` task per task and seed (``sar_core.experiments.report.double_win_report``, the
function behind ``python -m sar_core report``), cached in ``--study-dir``: a rerun, or a run
after an interruption, computes only what is missing. Then this script writes OUT.json (spec,
per-seed rows, the summary over seeds with seed-level 95% intervals of Δ vs the reference from
``sar_core.stats.seed_level_interval``) and OUT.md (caption and table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

SCHEMA = "sar-lab/double-win/2"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def run(spec_path: str, study_dir: str, *, executor: str, workers: int | None, address) -> dict:
    """Run the study (cached) and return the double-win results dict (meta, summary, rows)."""
    from sar_core.data.io import jsonable
    from sar_core.experiments.study.cache import Store
    from sar_core.experiments.study.double_win import report_rows, summary_rows
    from sar_core.experiments.study.plan import make_plan
    from sar_core.experiments.study.run import run_study, versions
    from sar_core.experiments.study.spec import load_spec

    spec = load_spec(spec_path)
    if spec.report is None:
        raise ValueError(f"Invalid spec={spec_path!r}: it has no [report] table")
    plan = make_plan(spec)  # collected below from this very plan (its keys hash the code)
    load0 = os.getloadavg()
    t0 = time.time()
    res = run_study(
        spec, study_dir, executor=executor, workers=workers, address=address, plan=plan,
        command=sys.argv, on_event=_progress(t0),
    )  # fmt: skip
    if res["failed"]:
        raise RuntimeError(f"{len(res['failed'])} study tasks failed: {res['failed']}")
    rows = report_rows(plan, Store(study_dir))
    meta = {
        "schema": SCHEMA,
        "study": spec.name,
        "spec": spec_path,
        "spec_text": spec.text,
        "tasks": [{"name": t.name, "dataset": t.dataset, "arch": t.arch} for t in spec.tasks],
        "methods": list(spec.methods),
        "reference": spec.reference,
        "seeds": list(spec.seeds),
        "epochs": sorted({plan.tasks[m.key].inputs["config"]["epochs"] for m in plan.models}),
        "trials": spec.trials,
        "report": spec.report,
        "configs": {
            f"{m.task}/{m.method}": plan.tasks[m.key].inputs["config"]
            for m in plan.models
            if m.seed == spec.seeds[0]
        },
        "code_version": plan.code,
        "git_commit": _git_commit(),
        "versions": versions(),
        "study_run": {k: res[k] for k in ("tasks", "ran", "cached", "executor", "workers")},
        "seconds": time.time() - t0,
        "load_average": {"start": load0, "end": os.getloadavg()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return jsonable({"meta": meta, "summary": summary_rows(rows), "rows": rows})


def _progress(t0: float):
    done = {"n": 0}

    def on_event(ev: dict) -> None:
        done["n"] += 1
        if ev["status"] == "failed" or ev["kind"] == "report" or done["n"] % 20 == 0:
            sys.stderr.write(
                f"[{time.time() - t0:6.0f} s] {ev['done']}/{ev['total']} {ev['task']}: "
                f"{ev['status']}{' ' + ev['error'] if ev['error'] else ''}\n"
            )

    return on_event


def markdown(results: dict) -> str:
    """OUT.md: caption, table, the command."""
    from sar_core.experiments.study.double_win import caption, claims, markdown_table

    meta = results["meta"]
    table = markdown_table(results["summary"], attack_budget=meta["report"]["attack"]["max_flips"])
    return (
        f"{caption(meta)}\n\n{table}\n\n{claims(results['summary'])}\n\n"
        "Produced by `OMP_NUM_THREADS=1 python "
        f"benchmarks/double_win.py --spec {meta['spec']}` (study `{meta['study']}`, code "
        f"{meta['code_version']}, commit {meta['git_commit']}).\n"
    )


def latency_table(rounds: int) -> str:
    """Range restriction vs plain (and plain vs itself: the noise floor) on the demo models."""
    import torch

    from sar_core.analysis.mitigations import latency_ratio, profile_bounds, range_restricted
    from sar_core.data.io import dataset_of, load_checkpoint

    lines = [
        f"Latency ratios (median of {rounds} interleaved rounds of 5 forward passes over the "
        f"test split, 1 thread), load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs.",
        "",
        "| model | SGD vs itself (noise floor) | SAR vs SGD | SGD + range restriction vs SGD |",
        "|---|---|---|---|",
    ]
    for arch in ("mlp", "cnn"):
        sgd = load_checkpoint(ROOT / "assets" / f"digits_{arch}_sgd.safetensors")
        sar = load_checkpoint(ROOT / "assets" / f"digits_{arch}_sar.safetensors").model
        d = dataset_of(sgd)
        X = torch.as_tensor(d.X_test)
        rr = range_restricted(sgd.model, profile_bounds(sgd.model, d.X_train))
        with torch.no_grad():
            r = [
                latency_ratio(lambda f=f, X=X: f(X), lambda m=sgd.model, X=X: m(X), rounds=rounds)
                for f in (sgd.model, sar, rr)
            ]
        lines.append(f"| digits {arch} | {r[0]:.3f} | {r[1]:.3f} | {r[2]:.3f} |")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="studies/double_win.toml", help="study spec with [report]")
    p.add_argument("--out", default="benchmarks/results/double_win", help="OUT.json, OUT.md")
    p.add_argument("--study-dir", default=None, help="study directory (default: /tmp/sar_<name>)")
    p.add_argument("--executor", default="local", choices=("local", "ray"))
    p.add_argument("--address", default=None, help="ray: 'auto' or ray://host:port")
    p.add_argument("--workers", type=int, default=None, help="local pool size (default: cores)")
    p.add_argument("--render", action="store_true", help="only rewrite OUT.md from OUT.json")
    p.add_argument("--latency", type=int, default=0, help="only the latency table, N rounds")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    from sar_core.runtime import configure_threads

    configure_threads(1)  # the project's one place that sets torch's threads
    from sar_core.data.io import jsonable

    out = Path(a.out)
    if a.latency:
        table = latency_table(a.latency)
        Path(str(out) + "_latency.md").write_text(table)
        sys.stdout.write(table)
        return 0
    if a.render:  # the summary is recomputed from the per-seed rows (its current definition)
        from sar_core.experiments.study.double_win import summary_rows

        results = json.loads(out.with_suffix(".json").read_text())
        results["summary"] = jsonable(summary_rows(results["rows"]))
        out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    else:
        from sar_core.experiments.study.spec import load_spec

        try:
            name = load_spec(a.spec).name
            study_dir = a.study_dir or f"/tmp/sar_{name}"
            results = run(
                a.spec, study_dir, executor=a.executor, workers=a.workers, address=a.address
            )
        except ValueError as e:
            sys.stderr.write(f"error: {' '.join(str(e).split())}\n")
            return 2
        except RuntimeError as e:  # failed tasks: finished ones are cached, rerun to resume
            sys.stderr.write(f"error: {e}\n")
            return 1
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    out.with_suffix(".md").write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
