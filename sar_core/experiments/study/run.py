"""run_study: plan a spec, run its unfinished tasks on an executor, write the tables."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from sar_core.experiments.study.cache import Store, atomic_write
from sar_core.experiments.study.executors import run_local, run_ray
from sar_core.experiments.study.plan import Plan, describe, make_plan
from sar_core.experiments.study.results import collect, write_tables
from sar_core.experiments.study.spec import StudySpec, load_spec, parse_spec
from sar_core.validate import check_choice, check_int

EXECUTORS = ("local", "ray")


def versions() -> dict:
    """Versions of Python and of the packages that compute or store a study's numbers."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for pkg in ("torch", "numpy", "scipy", "scikit-learn", "mnist1d", "pyarrow", "plotly", "ray"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _check_args(executor: str, workers: int | None, address: str | None) -> None:
    check_choice("executor", executor, EXECUTORS)
    if workers is not None:
        check_int("workers", workers, low=1, high=4096)
    if address is not None and executor != "ray":
        raise ValueError(f"Invalid address={address!r}: --address needs --executor ray")
    if address is not None and workers is not None:
        raise ValueError(
            f"Invalid workers={workers} with address={address!r}: the cluster's CPUs do the work; "
            "--workers sizes the local pool or a local Ray instance only"
        )


def _spec(spec: StudySpec | str | Path) -> StudySpec:
    if isinstance(spec, StudySpec):
        return spec
    return load_spec(spec)


def run_study(
    spec: StudySpec | str | Path,
    out: str | Path,
    *,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    on_event: Callable[[dict], None] | None = None,
    command: Sequence[str] | None = None,
    plan: Plan | None = None,
) -> dict:
    """Run a study into ``out`` (finished tasks are skipped) and write its tables.

    ``executor``: "local" (process pool of ``workers``, default: the cores this process may use)
    or "ray" (``address`` None starts a local instance with ``workers`` CPUs; "auto" or
    "ray://host:port" joins a cluster). ``plan``: the spec's plan made by the caller (so the
    caller can collect exactly these tasks afterwards, even if the code changes meanwhile).
    Returns counts, failures and the table paths.
    """
    _check_args(executor, workers, address)
    spec = _spec(spec)
    store = Store(out)
    if plan is None:
        plan = make_plan(spec)
    elif plan.spec is not spec:
        raise ValueError("Invalid plan: it was made from another spec; pass make_plan(spec)")
    run_id = uuid.uuid4().hex[:12]
    atomic_write(store.root / "spec.toml", spec.text.encode())
    t0 = time.time()
    record = {
        "run_id": run_id,
        "command": list(command) if command else None,
        "executor": executor,
        "workers": workers,
        "address": address,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)),
        "versions": versions(),
        "plan": describe(plan),
    }
    try:
        if executor == "local":
            outcome = run_local(plan, store, workers=workers, on_event=on_event, run_id=run_id)
        else:
            outcome = run_ray(
                plan, store, address=address, workers=workers, on_event=on_event, run_id=run_id
            )
    except KeyboardInterrupt:
        record.update(status="interrupted", seconds=time.time() - t0)
        store.append_run(record)
        raise
    paths = write_tables(collect(plan, store), store.root)
    record.update(
        status="failed" if outcome.failed else "ok",
        seconds=time.time() - t0,
        ran=outcome.ran,
        cached=outcome.cached,
        failed=len(outcome.failed),
        worker_cpus=outcome.workers,
    )
    store.append_run(record)
    return {
        "out": str(store.root),
        "study": spec.name,
        **describe(plan),
        **{k: record[k] for k in ("ran", "cached", "executor", "seconds")},
        "failed": outcome.failed,
        "workers": outcome.workers,
        **paths,
    }


__all__ = ["EXECUTORS", "parse_spec", "run_study", "versions"]
