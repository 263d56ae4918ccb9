"""The task suite: targets by rule, tuning on tuning seeds, judgement on held-out seeds vs SGD.

Protocol (``benchmarks/suite.py`` runs it; the dashboard and the README read its results file):
1. Targets per task, fixed by a rule on the SGD models of the tuning seeds: for every target
   (int8 per tensor, int8 per output channel, float16; all bits of the weights) the *smallest*
   BER of a fixed log grid (4 points per decade) at which SGD's accuracy loss (clean accuracy -
   mean accuracy under faults, averaged over the tuning seeds) is >= 5 points; ``in_band``
   records whether that loss is also <= 30 points.
2. Every method runs at its library defaults (no hyperparameter set), as a user gets it; the
   targeted ones (sar, fat, randbet, sar_clip) are given the task's int8 target. One tuned entry
   (``asam_tuned``) has its rho chosen on the tuning seeds from a grid, by the mean accuracy at
   the int8 target. ``sar@<target>`` is the default SAR aimed at another target.
3. Held-out seeds (>= 5): every method is trained once per seed by the study runner
   (``sar_core.experiments.study``, local executor); all models of a seed see the same fault
   patterns (campaign seed 1000 + seed). Per task, method and target: the per-seed mean paired
   difference vs SGD (points), and the seed-level 95% interval (Student t over the per-seed
   means, ``sar_core.stats.intervals.seed_level_interval``); verdicts ▲/▼/· come from that
   interval (``sar_core.stats.verdicts``). The fault-only interval (pooled trials) is stored
   beside it as ``fault_ci95``, labelled, never used for a verdict.

The suite's modules: ``suite_config`` (tasks, targets, methods, ``SuiteConfig``),
``suite_tuning`` (stage 1), ``suite_spec`` (stage 2 as a study spec), ``suite_stats`` (held-out
deltas, intervals, verdicts), ``suite_results`` (reading a results file), ``suite_report``
(markdown tables); this one runs both stages (``run_suite``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sar_core.experiments.suite_config import LABELS, SuiteConfig
from sar_core.experiments.suite_results import SCHEMA
from sar_core.experiments.suite_spec import heldout_spec
from sar_core.experiments.suite_stats import heldout_rows, summarize_suite
from sar_core.experiments.suite_tuning import prepare_task


def _pool_map(fn, items: list, workers: int, on_item=None) -> list:
    """``fn`` over ``items`` in ``workers`` spawned processes (one torch thread each), in order."""
    if workers <= 1:
        out = []
        for it in items:
            out.append(fn(*it))
            if on_item:
                on_item(out[-1])
        return out
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
        out = []
        for res in pool.imap(_star, [(fn, it) for it in items]):
            out.append(res)
            if on_item:
                on_item(res)
    return out


def run_suite(cfg: SuiteConfig, study_dir: str | Path, *, workers: int = 1, on_event=None) -> dict:
    """Stage 1 (targets, tuning) per task in ``workers`` processes, stage 2 as a study.

    ``study_dir``: the study runner's directory for the held-out stage (cached by content hash:
    an interrupted run resumes there). ``on_event`` receives progress dicts.
    """
    from sar_core.experiments.study.cache import Store
    from sar_core.experiments.study.plan import make_plan
    from sar_core.experiments.study.results import collect
    from sar_core.experiments.study.run import run_study
    from sar_core.experiments.study.spec import parse_spec

    t0 = time.perf_counter()
    order = sorted(cfg.tasks, key=lambda t: ("mnist1d" not in t, "digits" not in t))

    cache = Path(study_dir) / "tuning"
    skip = ("tasks", "heldout_seeds", "trials_eval")
    # as JSON reads it back (tuples become lists), so a stored key compares equal
    key = json.loads(json.dumps({k: v for k, v in cfg.to_dict().items() if k not in skip}))
    done = {}
    for t in order:  # stage 1 of a task is reused when its settings are unchanged (a resumed run)
        f = cache / f"{t}.json"
        if f.is_file() and json.loads(f.read_text()).get("key") == key:
            done[t] = json.loads(f.read_text())["prepared"]
    todo = [(t, cfg) for t in order if t not in done]

    def stage1_done(res: dict) -> None:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / f"{res['task']}.json").write_text(json.dumps({"key": key, "prepared": res}))
        if on_event:
            on_event({"stage": "tuning", "task": res["task"], "seconds": time.perf_counter() - t0})

    for res in _pool_map(prepare_task, todo, workers, stage1_done):
        done[res["task"]] = res
    prepared = [done[t] for t in cfg.tasks]
    t1 = time.perf_counter()
    spec = parse_spec(heldout_spec(cfg, prepared))
    plan = make_plan(spec)  # collected below from this very plan (its keys hash the code)
    run = run_study(
        spec, study_dir, executor="local", workers=workers, on_event=on_event, plan=plan
    )
    if run["failed"]:
        first = "; ".join(f"{k}: {v}" for k, v in list(run["failed"].items())[:3])
        raise RuntimeError(
            f"suite held-out study had {len(run['failed'])} failed tasks, first: {first}"
        )
    tables = collect(plan, Store(study_dir))
    heldout = heldout_rows(tables, cfg)
    tasks = [{**p, "methods": heldout[p["task"]]} for p in prepared]
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": cfg.to_dict(),
        "labels": {m: LABELS.get(m, m) for m in cfg.entries},
        "defaults": _defaults(),
        "workers": workers,
        "run_seconds": time.perf_counter() - t0,
        "stage_seconds": {"tuning": t1 - t0, "heldout": time.perf_counter() - t1},
        "study": {"dir": str(study_dir), "plan": {k: run[k] for k in ("train", "campaign")}},
        "tasks": tasks,
        "summary": summarize_suite(tasks, cfg.targets),
    }


def _defaults() -> dict:
    """The library defaults the held-out methods ran with (recorded with the results)."""
    from sar_core.training.config import DEFAULT_RHO, DEFAULT_W_MAX_REL
    from sar_core.training.optim import (
        SAR_DEFAULT_FAULT_SAMPLE,
        SAR_DEFAULT_GEOMETRY,
        SAR_DEFAULT_RANGE_GRAD,
    )

    return {
        "rho": dict(DEFAULT_RHO),
        "sar_geometry": SAR_DEFAULT_GEOMETRY,
        "sar_range_grad": SAR_DEFAULT_RANGE_GRAD,
        "sar_fault_sample": SAR_DEFAULT_FAULT_SAMPLE,
        "w_max_rel": DEFAULT_W_MAX_REL,
    }


def _worker_init() -> None:
    from sar_core.runtime import configure_threads

    configure_threads(1)


def _star(args):
    fn, it = args
    return fn(*it)
