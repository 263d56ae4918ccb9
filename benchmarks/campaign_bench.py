"""Fault sampling and injection speed against naive references, measured in the same run.

1. Pattern sampling: Binomial(N, p) + n distinct sites (ours) vs one Bernoulli draw per site.
2. One trial of injection: Injector.apply (encode once, XOR the chosen sites) vs a naive
   deepcopy of the model and a Python loop flipping bits in place (pytorchfi-style).

Run:  python benchmarks/campaign_bench.py
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sar_core.faults import FaultModel, Injector, sample_pattern  # noqa: E402
from sar_core.io import load_checkpoint  # noqa: E402

ASSET = Path(__file__).resolve().parents[1] / "assets" / "digits_mlp_sgd.safetensors"


def timeit(fn, repeat: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def naive_bernoulli(n_sites: int, p: float, rng: np.random.Generator) -> np.ndarray:
    return np.flatnonzero(rng.random(n_sites) < p)


def naive_inject(model: torch.nn.Module, pattern) -> torch.nn.Module:
    m = copy.deepcopy(model)
    params = dict(m.named_parameters())
    with torch.no_grad():
        for name, (idx, bits) in pattern.sites.items():
            flat = params[name].view(-1)
            for i, b in zip(idx.tolist(), bits.tolist()):
                code = np.array([flat[i].item()], dtype=np.float32).view(np.uint32) ^ np.uint32(
                    1 << b
                )
                flat[i] = float(code.view(np.float32)[0])
    return m


def main() -> None:
    model = load_checkpoint(ASSET).model
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    print("| benchmark | ours (ms) | naive (ms) | naive / ours |")
    print("|---|---|---|---|")
    for p in (1e-5, 1e-3):
        fm = FaultModel(format="float32", ber=p)
        n_sites = Injector(model, fm).n_sites
        rng = np.random.default_rng(0)
        ours = timeit(lambda fm=fm, rng=rng: sample_pattern(shapes, fm, rng), 200)
        naive = timeit(lambda n=n_sites, p=p, rng=rng: naive_bernoulli(n, p, rng), 200)
        print(
            f"| sample pattern, float32, BER {p:g} ({n_sites} sites) | {ours * 1e3:.3f} | {naive * 1e3:.3f} | {naive / ours:.1f}x |"
        )
    for p in (1e-5, 1e-4):
        fm = FaultModel(format="float32", ber=p)
        inj = Injector(model, fm)
        pat = inj.sample(np.random.default_rng(1))
        ours = timeit(lambda inj=inj, pat=pat: inj.apply(pat), 50)
        naive = timeit(lambda pat=pat: naive_inject(model, pat), 10)
        print(
            f"| apply one pattern, float32, BER {p:g} ({pat.n_flips} flips) | {ours * 1e3:.3f} | {naive * 1e3:.3f} | {naive / ours:.1f}x |"
        )


if __name__ == "__main__":
    main()
