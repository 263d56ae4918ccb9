"""Time of one training step per method relative to an SGD step, measured interleaved.

Digits MLP (64-128-64-10) and CNN, batch 64, one thread. Each round times every method for
``--steps`` steps in turn, so load changes hit all methods alike; the table shows the median over
rounds of (method step time / SGD step time) and the load average.

Run:  OMP_NUM_THREADS=1 python benchmarks/sam_step_bench.py [--rounds 7] [--steps 50]
"""

from __future__ import annotations

import argparse
import os
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
    "sar v3 + sampled fault": dict(method="sar", fault_sample=True),
    "sar v2 int8": dict(method="sar", geometry="fault", rho=0.015, range_grad=False),
    "sar v2 float16": dict(
        method="sar", geometry="fault", rho=0.015, fault_model=FaultModel("float16", ber=1e-4)
    ),
}


def _time(arch: str, kw: dict, steps: int, data) -> float:
    spec = spec_for(data, arch)
    model = build_model(spec, 0)
    cfg = TrainConfig(epochs=1, **kw)
    opt = _optimizer(model, cfg)
    X = torch.as_tensor(data.X_train[:64])
    y = torch.as_tensor(data.y_train[:64])
    model.train()
    _batch_step(model, opt, cfg, X, y, None)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        _batch_step(model, opt, cfg, X, y, None)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=50)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=0)
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| arch | method | step (ms, median) | ratio vs SGD (median over rounds) |")
    print("|---|---|---|---|")
    for arch in ("mlp", "cnn"):
        times = {m: [] for m in METHODS}
        for _ in range(a.rounds):
            for m, kw in METHODS.items():
                times[m].append(_time(arch, kw, a.steps, data))
        sgd = np.asarray(times["sgd"])
        for m, ts in times.items():
            ratio = np.median(np.asarray(ts) / sgd)
            print(f"| {arch} | {m} | {1e3 * np.median(ts):.3f} | {ratio:.2f} |")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
