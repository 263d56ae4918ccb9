"""Time of one training step per method relative to an SGD step, measured interleaved.

Digits MLP (64-128-64-10) and CNN, batch 64, one thread. Each round times every method for
``--steps`` steps in turn, so load changes hit all methods alike; the table shows the median over
rounds of (method step time / SGD step time of the same round), by wall clock and by this
thread's CPU time (which leaves out the time other processes hold the core), and the load
average. ``--busy N`` starts N busy loops (``python -c "while 1: pass"``) for the measurement
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
        for arch in ("mlp", "cnn"):
            wall = {m: [] for m in methods}
            cpu = {m: [] for m in methods}
            for _ in range(a.rounds):
                for m, kw in methods.items():
                    w, c = _time(arch, kw, a.steps, data)
                    wall[m].append(w)
                    cpu[m].append(c)
            for m in methods:
                rw = np.median(np.asarray(wall[m]) / np.asarray(wall["sgd"]))
                rc = np.median(np.asarray(cpu[m]) / np.asarray(cpu["sgd"]))
                ms = 1e3 * np.median(wall[m])
                print(f"| {arch} | {m} | {ms:.3f} | {rw:.2f} | {rc:.2f} |")
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    finally:
        for p in busy:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
