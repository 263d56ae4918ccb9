"""Time of one training step per method relative to an SGD step, measured interleaved.

Digits MLP (64-128-64-10) and CNN, batch 64, one thread. Each round times, for every method,
``--steps`` SGD steps and right after ``--steps`` steps of the method (methods in a rotated order),
so load changes hit both alike; the table shows the median over rounds of (method step time /
the SGD step time just before it), by wall clock and by this thread's CPU time (which leaves out
the time other processes hold the core), and the load average. ``--busy N`` starts N busy loops (``python -c "while 1: pass"``) for the measurement
and stops them after, to see the ratios on a loaded machine.

Run:  OMP_NUM_THREADS=1 python benchmarks/sam_step_bench.py [--rounds 7] [--steps 50] [--busy 2]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sar_core.data.datasets import load_dataset  # noqa: E402
from sar_core.data.models import build_model  # noqa: E402
from sar_core.faults.model import FaultModel  # noqa: E402
from sar_core.training.loop import TrainConfig, _batch_step, _optimizer, spec_for  # noqa: E402

METHODS = {
    "sgd": dict(method="sgd"),
    "sam": dict(method="sam"),
    "asam": dict(method="asam"),
    "sar (default: v3 int8)": dict(method="sar"),
    "sar v3 without the fault mean": dict(method="sar", fault_mean=0.0),
    "sar v3 int8 per channel": dict(
        method="sar", fault_model=FaultModel("int8", ber=1e-2, granularity="channel")
    ),
    "sar v3 + sampled fault": dict(method="sar", fault_sample=True),
    "sar v2 int8": dict(method="sar", geometry="fault", rho=0.015, range_grad=False),
    "sar v2 float16": dict(
        method="sar", geometry="fault", rho=0.015, fault_model=FaultModel("float16", ber=1e-4)
    ),
}


def _time(arch: str, kw: dict, steps: int, data) -> tuple[float, float]:
    """(wall, CPU) seconds per step of ``steps`` steps after one warm-up step."""
    spec = spec_for(data, arch)
    model = build_model(spec, 0)
    cfg = TrainConfig(epochs=1, **kw)
    opt = _optimizer(model, cfg)
    X = torch.as_tensor(data.X_train[:64])
    y = torch.as_tensor(data.y_train[:64])
    model.train()
    _batch_step(model, opt, cfg, X, y, None)  # warm-up
    t0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(steps):
        _batch_step(model, opt, cfg, X, y, None)
    return (time.perf_counter() - t0) / steps, (time.thread_time() - c0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--busy", type=int, default=0, help="busy loops running meanwhile")
    ap.add_argument("--only", default="", help="comma-separated method names (sgd always runs)")
    a = ap.parse_args()
    methods = dict(METHODS)
    if a.only:
        keep = {"sgd", *a.only.split(",")}
        methods = {m: kw for m, kw in METHODS.items() if m in keep}
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=0)
    busy = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(a.busy)]
    try:
        time.sleep(1.0 if busy else 0.0)
        print(f"busy loops: {a.busy}; load average before: {os.getloadavg()[0]:.2f}")
        print("| arch | method | step ms (wall) | ratio vs SGD (wall) | ratio vs SGD (CPU) |")
        print("|---|---|---|---|---|")
        names = list(methods)
        for arch in ("mlp", "cnn"):
            wall = {m: [] for m in methods}  # (method, SGD just before) per round
            cpu = {m: [] for m in methods}
            for r in range(a.rounds):
                for m in names[r % len(names) :] + names[: r % len(names)]:
                    ref = _time(arch, methods["sgd"], a.steps, data)
                    got = _time(arch, methods[m], a.steps, data)
                    wall[m].append((got[0], ref[0]))
                    cpu[m].append((got[1], ref[1]))
            for m in methods:
                w, c = np.asarray(wall[m]), np.asarray(cpu[m])
                rw, rc = np.median(w[:, 0] / w[:, 1]), np.median(c[:, 0] / c[:, 1])
                print(f"| {arch} | {m} | {1e3 * np.median(w[:, 0]):.3f} | {rw:.2f} | {rc:.2f} |")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        for p in busy:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
