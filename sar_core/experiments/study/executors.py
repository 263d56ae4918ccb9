"""Run a plan's unfinished tasks: a local process pool, or Ray tasks.

Both executors run the same worker functions with the same inputs, so they store the same
numbers; they differ only in where the work runs. The driver alone writes to the study directory
(``Store.save`` as each result arrives), so an interrupted run keeps every result it received.
Progress goes to ``on_event(dict)``; failures are collected per task and returned, and the tasks
that depend on a failed task are reported as skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sar_core.experiments.study.cache import Store
from sar_core.experiments.study.plan import Plan, Task

Event = Callable[[dict], None]


@dataclass
class Outcome:
    """What one run did: tasks run, found in the cache, failed (label -> error)."""

    ran: int = 0
    cached: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    workers: int = 0


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {' '.join(str(e).split())}"[:500]


class _State:
    """Bookkeeping shared by the executors: what is done, failed, ready."""

    def __init__(self, plan: Plan, store: Store, on_event: Event | None, run_id: str) -> None:
        self.plan, self.store, self.run_id = plan, store, run_id
        self.on_event = on_event or (lambda e: None)
        self.todo = [t for t in plan.ordered() if not store.has(t)]
        self.done_keys = set(plan.tasks) - {t.key for t in self.todo}
        self.out = Outcome(cached=len(plan.tasks) - len(self.todo))
        self.total = len(plan.tasks)
        self.failed_keys: set[str] = set()

    def done(self) -> int:
        return self.out.cached + self.out.ran + len(self.out.failed)

    def finish(self, task: Task, result: dict, ckpt: bytes | None) -> None:
        self.store.save(task, result, ckpt, self.run_id)
        self.done_keys.add(task.key)
        self.out.ran += 1
        self._event(task, "ok")

    def fail(self, task: Task, error: str) -> None:
        self.failed_keys.add(task.key)
        self.out.failed[task.label] = error
        self._event(task, "failed", error)

    def blocked(self, task: Task) -> bool:
        """A dependency failed: the task is reported as skipped."""
        bad = [d for d in task.deps if d in self.failed_keys]
        if bad:
            self.fail(task, f"skipped: {self.plan.tasks[bad[0]].label} failed")
        return bool(bad)

    def _event(self, task: Task, status: str, error: str | None = None) -> None:
        self.on_event(
            {
                "done": self.done(),
                "total": self.total,
                "task": task.label,
                "kind": task.kind,
                "status": status,
                "error": error,
            }
        )


def run_local(
    plan: Plan, store: Store, *, workers: int | None, on_event: Event | None, run_id: str
) -> Outcome:
    """Run unfinished tasks on a process pool (spawned workers, one torch thread each)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from sar_core.experiments.study.worker import init_worker

    st = _State(plan, store, on_event, run_id)
    st.out.workers = workers or default_workers()
    retries = {t.key: plan.spec.max_retries for t in st.todo}
    waiting, running, ckpts = list(st.todo), {}, {}
    ctx = mp.get_context("spawn")  # fork after torch has loaded is unsafe with its thread pools
    pool = ProcessPoolExecutor(st.out.workers, mp_context=ctx, initializer=init_worker)
    try:
        while waiting or running:
            _submit_ready(st, pool, waiting, running, ckpts)
            if not running:  # nothing can start: a dependency is missing from the cache
                for task in waiting:
                    st.fail(task, "skipped: its model is not in the cache")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                _receive(st, fut, running.pop(fut), retries, waiting)
            if getattr(pool, "_broken", False):  # the others in flight died with it: resubmit
                waiting[:0] = list(running.values())
                running = {}
                _stop_pool(pool)
                pool = ProcessPoolExecutor(st.out.workers, mp_context=ctx, initializer=init_worker)
    finally:
        _stop_pool(pool)
    return st.out


def _submit_ready(st: _State, pool, waiting: list, running: dict, ckpts: dict) -> None:
    """Submit every waiting task whose model exists; drop those whose model failed."""
    from sar_core.experiments.study.worker import run_task

    for task in list(waiting):
        if st.blocked(task):
            waiting.remove(task)
        elif all(d in st.done_keys for d in task.deps):
            waiting.remove(task)
            for dep in task.deps:
                if dep not in ckpts:
                    ckpts[dep] = st.store.read_checkpoint(dep)
            ck = ckpts[task.deps[0]] if task.deps else None
            if task.kind == "report":  # every method's model of a task and seed
                ck = [ckpts[d] for d in task.deps]
            running[pool.submit(run_task, task.kind, task.inputs, ck)] = task


def _receive(st: _State, fut, task: Task, retries: dict, waiting: list) -> None:
    """Store a finished task, or record its failure; a task whose worker died is retried."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        result, ck = fut.result()
    except BrokenProcessPool as e:  # a worker died (killed, out of memory)
        if retries[task.key] > 0:
            retries[task.key] -= 1
            waiting.insert(0, task)
        else:
            st.fail(task, _one_line(e))
        return
    except Exception as e:  # noqa: BLE001 - reported per task
        st.fail(task, _one_line(e))
        return
    st.finish(task, result, ck)


def _stop_pool(pool) -> None:
    """Shut the pool down without waiting for running tasks (after Ctrl-C they are abandoned)."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)


def _ray_init(address: str | None, workers: int | None) -> bool:
    """Connect to Ray (or start a local instance); True when this call started it.

    ``address``: ``"auto"`` (a cluster this machine belongs to), ``HOST:PORT``, or
    ``ray://HOST:PORT`` (Ray Client, from elsewhere). The cluster's workers get this ``sar_core``
    package as a directory (``py_modules``; a module object cannot be pickled for Ray Client).
    ``ray start --head`` turns token authentication on when its machine holds a token (Ray 2.60);
    Ray sends the local token only to a cluster found by ``"auto"``. For an explicit address, a
    token given in ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH`` (``RAY_AUTH_MODE`` unset) switches
    token mode on here, so that the README's Ray Client line needs only that variable.
    """
    import ray

    if ray.is_initialized():
        return False
    if not address:  # Ray gives a 1-CPU task OMP_NUM_THREADS=1; the task also sets torch's threads
        ray.init(
            num_cpus=workers or default_workers(), include_dashboard=False, log_to_driver=False
        )
        return True
    import sar_core

    given = any(os.environ.get(k) for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"))
    if address != "auto" and given and "RAY_AUTH_MODE" not in os.environ:
        # Ray's own switch (it also refreshes Ray's cached config, which the variable alone won't)
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )

        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    package = str(Path(sar_core.__file__).resolve().parent)
    try:
        ray.init(address=address, runtime_env={"py_modules": [package]}, log_to_driver=False)
    except ConnectionError as e:
        if address == "auto":
            raise
        raise ConnectionError(
            f"could not connect to the Ray cluster at {address} ({' '.join(str(e).split())}). "
            "Check that its port is reachable; a head with token authentication needs its token "
            "here: export RAY_AUTH_TOKEN=<output of `ray get-auth-token` on the head>"
        ) from e
    return True


def _ray_train(inputs, data):
    from sar_core.experiments.study.worker import train_task

    return train_task(inputs, data)


def _ray_sharpness(inputs, data, ckpt):
    from sar_core.experiments.study.worker import sharpness_task

    return sharpness_task(inputs, data, ckpt)


def _ray_campaign(inputs, data, ckpt):
    from sar_core.experiments.study.worker import campaign_task

    return campaign_task(inputs, data, ckpt)


def _ray_report(inputs, data, *ckpts):
    from sar_core.experiments.study.worker import report_task

    return report_task(inputs, data, list(ckpts))


def run_ray(
    plan: Plan,
    store: Store,
    *,
    address: str | None,
    workers: int | None,
    on_event: Event | None,
    run_id: str,
) -> Outcome:
    """Run unfinished tasks as Ray tasks: datasets and models go through the object store once.

    A campaign or sharpness task receives its model (a report task: every method's model) as
    the train task's ObjectRef, so Ray starts it when the models exist (the dependency graph is
    Ray's). ``max_retries`` re-runs a task whose
    worker died; an exception inside a task is reported for that task and its dependents.
    """
    import ray

    from sar_core.experiments.study.worker import load_data

    st = _State(plan, store, on_event, run_id)
    started = _ray_init(address, workers)
    pending: dict = {}
    try:
        st.out.workers = int(ray.cluster_resources().get("CPU", 0))
        opts = dict(num_cpus=plan.spec.cpus_per_task, max_retries=plan.spec.max_retries)
        remote = {
            "train": ray.remote(_ray_train).options(num_returns=2, **opts),
            "sharpness": ray.remote(_ray_sharpness).options(**opts),
            "campaign": ray.remote(_ray_campaign).options(**opts),
            "report": ray.remote(_ray_report).options(**opts),
        }
        data_refs: dict[str, object] = {}
        model_refs: dict[str, object] = {}
        for task in st.todo:
            dkey = repr(sorted(task.inputs["data"].items()))
            if dkey not in data_refs:
                data_refs[dkey] = ray.put(load_data(task.inputs["data"]))
            if task.kind == "train":
                meta, ck = remote["train"].remote(task.inputs, data_refs[dkey])
                model_refs[task.key] = ck
                pending[meta] = (task, ck)
                continue
            for dep in task.deps:
                if dep not in model_refs:
                    model_refs[dep] = ray.put(store.read_checkpoint(dep))
            models = [model_refs[d] for d in task.deps]  # one model; a report: every method's
            ref = remote[task.kind].remote(task.inputs, data_refs[dkey], *models)
            pending[ref] = (task, None)
        _ray_collect(st, pending)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    return st.out


def _ray_collect(st: _State, pending: dict) -> None:
    import ray

    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            task, ck_ref = pending.pop(ref)
            if any(d in st.failed_keys for d in task.deps):
                st.blocked(task)
                continue
            try:
                if ck_ref is not None:
                    result, ck = ray.get([ref, ck_ref])
                else:
                    result, ck = ray.get(ref), None
            except Exception as e:  # noqa: BLE001 - RayTaskError wraps the task's exception
                cause = getattr(e, "cause", None) or e
                st.fail(task, _one_line(cause))
                continue
            st.finish(task, result, ck)
