"""Trial draws: ``faults.draws.chunk_site_draws`` vs numpy's per-trial generator, interleaved.

    python benchmarks/draws_bench.py [--rounds 9] [--trials 232] [--busy 2]

Each case draws the sites of one chunk of trials both ways (the same arrays: checked here too)
and prints the medians per trial and their ratio, with the load average. ``--busy N`` runs N
busy-loop processes alongside (a loaded machine on purpose).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sar_core.faults import draws as D  # noqa: E402

CASES = (  # (label, n_sites, ber, count)
    ("MLP 64-128-128-10 float32 all bits + biases, BER 1e-4", 26_122 * 32, 1e-4, None),
    ("the same, BER 1e-7", 26_122 * 32, 1e-7, None),
    ("digits MLP demo int8, BER 1e-3", 4_810 * 8, 1e-3, None),
    ("SmallCNN float32, BER 1e-4", 11_000 * 32, 1e-4, None),
    ("a count of 10 flips", 26_122 * 32, None, 10),
    ("small space: 2000 sites, BER 2e-2", 2_000, 2e-2, None),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--trials", type=int, default=232)
    ap.add_argument("--busy", type=int, default=0)
    a = ap.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.busy)]
    try:
        run(a)
    finally:
        for p in busy:
            p.kill()


def run(a: argparse.Namespace) -> None:
    print(f"command: python benchmarks/draws_bench.py {' '.join(sys.argv[1:])}")
    print(f"numpy {np.__version__}; busy loops: {a.busy}; load average at start: "
          "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))  # fmt: skip
    print(f"fast path matches this numpy: {D._fast_path_matches_numpy()}")
    print("\n| case | numpy per trial (µs) | chunk per trial (µs) | numpy / chunk |")
    print("|---|---|---|---|")
    trials = np.arange(a.trials)
    for label, n_sites, ber, count in CASES:
        t_np, t_chunk = [], []
        for r in range(a.rounds):
            seed = 1000 + r
            for which in (0, 1) if r % 2 == 0 else (1, 0):  # alternate the order
                t0 = time.perf_counter()
                if which == 0:
                    want = [D.numpy_site_draw(seed, int(t), n_sites, ber, count) for t in trials]
                    t_np.append(time.perf_counter() - t0)
                else:
                    got = D.chunk_site_draws(seed, trials, n_sites, ber=ber, count=count)
                    t_chunk.append(time.perf_counter() - t0)
            assert all(np.array_equal(g, w) for g, w in zip(got, want)), label
        n, c = statistics.median(t_np), statistics.median(t_chunk)
        print(f"| {label} | {n / a.trials * 1e6:.1f} | {c / a.trials * 1e6:.1f} | {n / c:.2f}x |")
    print("\nload average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
