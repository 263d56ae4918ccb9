"""Benchmark: landscape vmap chunk size vs the plain forward passes a grid needs, per architecture.

    python benchmarks/landscape_chunks.py [--steps 21] [--chunks 1,2,4,8,16,32,64] [--repeats 3]

For the bundled digits MLP and CNN (360 test rows) it times ``combinations.evaluate_combinations`` on the same
steps x steps 2D grid with each fixed chunk size and with the automatic one (``auto``, from
``combinations.chunk_size_for``), and the limit: one plain ``model(X)`` per grid point with fixed
weights. Configurations are interleaved within each repeat; the table shows medians, the ratio to
the plain forwards (<= 1 means batching beats them), for the median and the best repeat (the
best is the least disturbed by other processes), and the load average. One thread. Chunk 1
is the unbatched path (one plain functional forward per point, no vmap).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sar_core.analysis import landscape as L  # noqa: E402
from sar_core.data.io import dataset_of, load_checkpoint  # noqa: E402
from sar_core.engine import combinations as C  # noqa: E402
from sar_core.engine.evaluate import as_tensors  # noqa: E402
from sar_core.runtime import configure_threads  # noqa: E402

CLOCK = time.perf_counter  # --cpu: time.process_time


def plain_forwards(model, X, y, points: int, loss: bool = False) -> float:
    """Seconds for ``points`` forward passes of the unmodified model on X (the limit), and with
    ``loss`` also the mean cross-entropy of each (what any landscape tool computes per point)."""
    with torch.no_grad():
        t0 = CLOCK()
        for _ in range(points):
            out = model(X)
            if loss:
                F.cross_entropy(out, y).item()
        return CLOCK() - t0


def grid(model, X, y, d1, d2, steps: int, config) -> tuple[float, list[float]]:
    """(seconds, losses) of one steps x steps grid with a fixed or automatic chunk size."""
    w = L._weights(model)
    axis = L.grid_axis(steps, 1.0)
    coeffs = [[1.0, a, b] for b in axis for a in axis]
    chunk, batched = config
    t0 = CLOCK()
    loss, _ = C.evaluate_combinations(
        model, X, y, [w, d1, d2], coeffs, chunk_size=chunk, batched=batched
    )
    return CLOCK() - t0, loss


def bench(name: str, steps: int, chunks: list[int], repeats: int) -> None:
    ck = load_checkpoint(ROOT / "assets" / f"{name}.safetensors")
    data = dataset_of(ck)
    X, y = as_tensors(data.X_test, data.y_test)
    d1, d2 = L.direction_pair(ck.model, 0)
    auto = C.chunk_size_for(ck.model, L._weights(ck.model), X)
    configs = [(None, None)] + [(c, b) for b in (False, True) for c in chunks if b or c == 16]
    times: dict = {c: [] for c in configs}
    fwd: list[float] = []
    fwd_loss: list[float] = []
    ref = None
    grid(ck.model, X, y, d1, d2, 3, (None, None))  # warm-up (vmap, allocator)
    for _ in range(repeats):
        fwd.append(plain_forwards(ck.model, X, y, steps * steps))
        fwd_loss.append(plain_forwards(ck.model, X, y, steps * steps, loss=True))
        for c in configs:
            t, loss = grid(ck.model, X, y, d1, d2, steps, c)
            times[c].append(t)
            ref = loss if ref is None else ref
            np.testing.assert_allclose(loss, ref, rtol=1e-5)  # every chunk size: same numbers
    f, fmin = statistics.median(fwd), min(fwd)
    print(f"{name}: {steps}x{steps} grid, {len(y)} rows, auto chunk = {auto}")
    print(f"  {'chunk':<9}{'median s':>9}{'ratio':>7}{'best s':>9}{'ratio':>7}")
    print(f"  {'forwards':<9}{f:>9.3f}{1.0:>7.2f}{fmin:>9.3f}{1.0:>7.2f}")
    m, b = statistics.median(fwd_loss), min(fwd_loss)
    print(f"  {'fwd+loss':<9}{m:>9.3f}{m / f:>7.2f}{b:>9.3f}{b / fmin:>7.2f}")
    for c in configs:
        m, b = statistics.median(times[c]), min(times[c])
        label = f"auto={auto}" if c[0] is None else f"{'vmap' if c[1] else 'loop'} {c[0]}"
        print(f"  {label:<9}{m:>9.3f}{m / f:>7.2f}{b:>9.3f}{b / fmin:>7.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--chunks", default="1,2,4,8,16,32,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="digits_mlp_sgd,digits_cnn_sgd")
    ap.add_argument(
        "--cpu", action="store_true", help="time CPU seconds of this process instead of wall"
    )
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.cpu else time.perf_counter
    configure_threads(1)
    chunks = [int(c) for c in args.chunks.split(",")]
    clock = "CPU seconds of this process" if args.cpu else "wall seconds"
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread, {clock}, {args.repeats} repeats"
    )
    print("load average at the start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    for name in args.models.split(","):
        bench(name, args.steps, chunks, args.repeats)
    print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
