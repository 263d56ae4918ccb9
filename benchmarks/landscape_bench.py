"""Benchmark: vmap-batched landscape grid vs a naive per-point loop, measured in one run.

    python benchmarks/landscape_bench.py [--steps 21] [--repeats 3]

For each bundled digits checkpoint (MLP and CNN) it evaluates the same steps x steps 2D grid
twice: with ``landscape.slice_2d`` (stacked parameter sets, torch.func.vmap, chunked) and with a
plain loop that builds one parameter dict per point and calls ``evaluate``. It checks that both
give the same losses and prints the best-of-repeats time of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sar_core import landscape as L  # noqa: E402
from sar_core.evaluate import as_tensors, evaluate  # noqa: E402
from sar_core.io import dataset_of, load_checkpoint  # noqa: E402


def naive_grid(model, X, y, d1, d2, axis):
    """Reference: one functional evaluation per grid point."""
    w = {n: p.detach() for n, p in model.named_parameters()}
    return [
        [evaluate(model, X, y, {n: w[n] + a * d1[n] + b * d2[n] for n in w}).loss for a in axis]
        for b in axis
    ]


def best_of(fn, repeats):
    """(best wall seconds, best CPU seconds of this process, last result)."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, grid {args.steps}^2")
    print("best of repeats; ratio = naive loop / vmap (wall, and CPU time of this process)")
    print(f"{'model':<18}{'vmap s':>8}{'loop s':>8}{'wall':>9}{'cpu':>9}{'max |dL|/L':>12}")
    for name in ("digits_mlp_sgd", "digits_cnn_sgd"):
        ck = load_checkpoint(ROOT / "assets" / f"{name}.safetensors")
        data = dataset_of(ck)
        X, y = as_tensors(data.X_test, data.y_test)
        d1, d2 = L.direction_pair(ck.model, 0)
        axis = L.grid_axis(args.steps, 1.0)
        L.slice_2d(ck.model, X, y, d1, d2, steps=3)  # warm-up (vmap tracing, allocator)
        fast_fn = partial(L.slice_2d, ck.model, X, y, d1, d2, steps=args.steps)
        t_vmap, c_vmap, fast = best_of(fast_fn, args.repeats)
        slow_fn = partial(naive_grid, ck.model, X, y, d1, d2, axis)
        t_loop, c_loop, slow = best_of(slow_fn, args.repeats)
        a, b = np.asarray(fast["loss"]), np.asarray(slow)
        err = float(np.max(np.abs(a - b) / np.abs(b)))
        print(
            f"{name:<18}{t_vmap:>8.2f}{t_loop:>8.2f}{t_loop / t_vmap:>8.1f}x"
            f"{c_loop / c_vmap:>8.1f}x{err:>12.1e}"
        )
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
