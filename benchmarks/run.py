"""Speed of the project against a naive loop, the peers and the pure forward passes (the limit).

    python benchmarks/run.py [--quick] [--repeats 3] [--skip-cli] [--busy 2] [--only campaign]
                             [--out benchmarks/results/run_NAME.md]

One process, one torch thread, the same seeded models and data for every contender, cases
interleaved (A, B, C, A, B, C, ...) and reported as medians with the load average, so that a
busy machine slows every contender alike. Peers (pytorchfi, loss-landscapes, PyHessian; see
requirements-bench.txt) are skipped with a printed note when not installed. ``--quick`` runs tiny
sizes (the test suite's smoke test); its numbers mean nothing. ``--busy N`` runs N busy-loop
processes for the whole run (a loaded machine, on purpose); ``--only`` picks sections
(campaign, landscape, sharpness, cli; ``auto``, not run by default: the batched and resume
evaluators around ``auto``'s switch); ``--out`` also writes the report (stdout) to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sar_core.analysis import sharpness as S  # noqa: E402
from sar_core.analysis.campaign import run_campaign  # noqa: E402
from sar_core.data.datasets import load_dataset  # noqa: E402
from sar_core.data.io import load_checkpoint  # noqa: E402
from sar_core.data.models import ModelSpec, build_model  # noqa: E402
from sar_core.engine.evaluate import as_tensors, score_logits  # noqa: E402
from sar_core.faults.injector import Injector  # noqa: E402
from sar_core.faults.model import FaultModel  # noqa: E402


class _Rows(list):
    """The result rows; each is also printed to stderr as it is measured (a long run that is
    stopped keeps what it measured)."""

    def append(self, row: tuple[str, str, float, str]) -> None:
        super().append(row)
        print("| {} | {} | {:.4f} | {} |".format(*row), file=sys.stderr, flush=True)


ROWS: list[tuple[str, str, float, str]] = _Rows()  # (section, case, median seconds, note)


def peer(name: str):
    """The peer module, or None with a printed note."""
    try:
        return __import__(name)
    except ImportError:
        print(
            f"note: {name} is not installed: its rows are skipped "
            "(pip install -r requirements-bench.txt)"
        )
        return None


def interleaved(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall seconds of each case, run round-robin ``repeats`` times after one warm-up."""
    for fn in cases.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for k, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def trained_mlp(data, widths: tuple[int, ...], epochs: int) -> torch.nn.Module:
    """A seeded MLP trained by a plain Adam loop (independent of sar_core.training.loop)."""
    spec = ModelSpec(n_features=data.n_features, n_classes=data.n_classes, widths=widths)
    model = build_model(spec, 0).train()
    X, y = as_tensors(data.X_train, data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


# ------------------------------------------------------------------ campaign ---------------


def naive_campaign(model, X, y, fm: FaultModel, trials: int, seed: int = 0) -> list[float]:
    """One Bernoulli draw per stored bit (dense mask), XOR, full forward pass, per trial."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    out = []
    for t in range(trials):
        rng = np.random.default_rng([seed, t])
        faulty = {}
        for n, w in params.items():
            if w.dim() < 2 and not fm.include_bias:
                faulty[n] = w
                continue
            codes = w.numpy().reshape(-1).view(np.uint32)
            hit = rng.random((codes.size, 32)) < fm.ber  # (elements, bits)
            mask = (hit * (np.uint64(1) << np.arange(32, dtype=np.uint64))).sum(1)
            faulty[n] = torch.from_numpy((codes ^ mask.astype(np.uint32)).view(np.float32))
            faulty[n] = faulty[n].view(w.shape)
        with torch.no_grad():
            out.append(score_logits(functional_call(model, faulty, (X,)), y).accuracy)
    return out


def pytorchfi_campaign(pfi_core, model, X, y, fm: FaultModel, trials: int, seed: int = 0):
    """The same patterns injected by pytorchfi (weights only: it cannot hit biases)."""
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    names = {id(m): n for n, m in model.named_modules()}
    fi = pfi_core.fault_injection(
        model,
        X.shape[0],
        input_shape=[X.shape[1]],
        layer_types=[torch.nn.Linear, torch.nn.Conv2d],
        use_cuda=False,
    )
    inj = Injector(model, FaultModel(format="float32", ber=fm.ber))  # weights only
    out = []
    for t in range(trials):
        delta = inj.delta(inj.sample(np.random.default_rng([seed, t])))
        lay, k, d1, d2, d3, val = [], [], [], [], [], []
        for li, m in enumerate(layers):
            key = f"{names[id(m)]}.weight"
            if key not in delta.values:
                continue
            idx, vals = delta.values[key]
            coords = np.unravel_index(idx.numpy(), tuple(m.weight.shape))
            for i in range(idx.numel()):
                c = [int(a[i]) for a in coords] + [None] * (4 - len(coords))
                lay.append(li)
                k.append(c[0])
                d1.append(c[1])
                d2.append(c[2])
                d3.append(c[3])
                val.append(float(vals[i]))
        corrupted = (
            fi.declare_weight_fi(layer_num=lay, k=k, dim1=d1, dim2=d2, dim3=d3, value=val)
            if lay
            else model
        )
        with torch.no_grad():
            out.append(score_logits(corrupted(X), y).accuracy)
    return out


def forwards(model, X, n: int) -> None:
    """``n`` plain forward passes: the limit a campaign is compared with."""
    with torch.no_grad():
        for _ in range(n):
            model(X)


def bench_campaign(label, model, X, y, ber, trials, repeats, pfi) -> None:
    fm = FaultModel(format="float32", ber=ber, include_bias=True)
    res = run_campaign(model, X, y, fm, trials=trials)
    needed = sum(1 for c in res.changed if c)
    cases = {
        "sar_core run_campaign": lambda: run_campaign(model, X, y, fm, trials=trials),
        "naive dense-mask loop": lambda: naive_campaign(model, X, y, fm, trials),
        f"{trials} forward passes": lambda: forwards(model, X, trials),
    }
    if pfi is not None:
        cases["pytorchfi (weights only)"] = lambda: pytorchfi_campaign(pfi, model, X, y, fm, trials)
    med = interleaved(cases, repeats)
    sec = f"campaign {label}, float32 all bits + biases, BER {ber:g}, {trials} trials"
    ours = med["sar_core run_campaign"]
    fwd = med[f"{trials} forward passes"]
    for case, t in med.items():
        note = "" if case.startswith("sar_core") else f"{t / ours:.2f}x ours"
        ROWS.append((sec, case, t, note))
    ROWS.append(
        (
            sec,
            f"ours / forward passes needed ({needed} of {trials} trials change a bit)",
            ours,
            f"{ours / (fwd * max(needed, 1) / trials):.2f}x" if needed else "no pass needed",
        )
    )
    ROWS.append((sec, "ours / one forward pass per trial", ours, f"{ours / fwd:.2f}x"))


def bench_auto(model, X, y, trials: int, repeats: int, bers: tuple[float, ...]) -> None:
    """Batched vs resume evaluator around ``auto``'s switch (a trial hitting at most
    AUTO_BATCHED_MAX_HIT_FRACTION of the weights runs batched), int8 all bits + biases."""
    from sar_core.engine.evaluators import AUTO_BATCHED_MAX_HIT_FRACTION
    from sar_core.engine.montecarlo import MonteCarlo

    n_weights = sum(p.numel() for p in model.parameters())
    for ber in bers:
        fm = FaultModel(format="int8", ber=ber, include_bias=True)
        engines = {k: MonteCarlo([model], X, y, fm, evaluator=k) for k in ("batched", "resume")}
        auto = MonteCarlo([model], X, y, fm)
        picked = type(auto._evals[0]).__name__.lower()
        cases = {k: (lambda e=e: list(e.run(trials))) for k, e in engines.items()}
        med = interleaved(cases, repeats)
        hit = ber * engines["batched"].n_sites / n_weights
        sec = (
            f"evaluators, demo MLP, int8 all bits + biases, BER {ber:g} ({100 * hit:.2g}% of the "
            f"weights hit; auto's switch {100 * AUTO_BATCHED_MAX_HIT_FRACTION:g}%), {trials} trials"
        )
        for case, t in med.items():
            note = (
                f"resume / batched {med['resume'] / med['batched']:.2f}x"
                if case == "batched"
                else ""
            )
            ROWS.append(
                (sec, case, t, note + (f"; auto picks {picked}" if case == "batched" else ""))
            )


# ------------------------------------------------------------------ landscape, sharpness ---


def bench_landscape(label, model, X, y, steps, repeats, ll) -> None:
    from sar_core.analysis import landscape as L

    d1, d2 = L.direction_pair(model, 0)
    cases = {
        "sar_core slice_2d": lambda: L.slice_2d(model, X, y, d1, d2, steps=steps),
        f"{steps * steps} forward passes": lambda: forwards(model, X, steps * steps),
    }
    if ll is not None:
        from loss_landscapes.metrics import Loss

        metric = Loss(F.cross_entropy, X, y)
        cases["loss-landscapes random_plane"] = lambda: ll.random_plane(
            model, metric, distance=1, steps=steps, normalization="filter", deepcopy_model=True
        )
    med = interleaved(cases, repeats)
    sec = f"landscape {label}, 2D {steps}x{steps}"
    ours = med["sar_core slice_2d"]
    for case, t in med.items():
        ROWS.append((sec, case, t, "" if case.startswith("sar_core") else f"ours {ours / t:.2f}x"))


def bench_lambda_max(label, model, X, y, rounds, pyh) -> None:
    """λ_max: ours vs PyHessian, each round with its own seed (ours: ``seed=r``; PyHessian's
    random start: ``torch.manual_seed(r)`` before it), interleaved in rotated order. Each case's
    error is measured against a converged reference (Lanczos at tol 1e-9, checked against
    PyHessian at tol 1e-7), so the table compares time at the *accuracy* reached, not only at
    the same ``tol`` setting: PyHessian's tol bounds the change between two power steps, not
    the error."""
    from unittest import mock

    ref = S.hessian_eigenvalues(model, X, y, tol=1e-9, iters=300)[0]
    ref_note = f"reference {ref:.6g}"

    def ours(r: int) -> tuple[float, int]:
        out = S.lanczos_extremes(model, X, y, tol=1e-3, seed=r, want_min=False)  # what
        return out["lambda_max"], out["n_hvp"]  # hessian_eigenvalues runs, with its count

    cases: dict[str, Callable[[int], tuple[float, int]]] = {
        "sar_core lambda_max (Lanczos, tol 1e-3)": ours
    }
    with contextlib.ExitStack() as stack:
        if pyh is not None:
            pyh_mod = sys.modules["pyhessian.hessian"]  # the module (the package's attribute
            plain, counter = pyh_mod.hessian_vector_product, [0]  # of that name is the class)

            def counted(*a, **k):
                counter[0] += 1
                return plain(*a, **k)

            stack.enter_context(mock.patch.object(pyh_mod, "hessian_vector_product", counted))

            def peer(tol: float, max_iter: int = 100):
                def run(r: int) -> tuple[float, int]:
                    torch.manual_seed(r)
                    counter[0] = 0
                    h = pyh.hessian(model, F.cross_entropy, data=(X, y), cuda=False)
                    return h.eigenvalues(maxIter=max_iter, tol=tol, top_n=1)[0][0], counter[0]

                return run

            ref_note += f" (PyHessian at tol 1e-7: {peer(1e-7, 2000)(0)[0]:.6g})"
            cases["PyHessian eigenvalues (power iteration, tol 1e-3)"] = peer(1e-3)
            cases["PyHessian eigenvalues (power iteration, tol 1e-4)"] = peer(1e-4)
        _lambda_rounds(f"sharpness {label}", cases, ref, ref_note, rounds)


def _lambda_rounds(sec: str, cases: dict, ref: float, ref_note: str, rounds: int) -> None:
    """Run every case once per round (rotated order), then one row per case: median time, HVPs
    and how often it was within 1e-3 of ``ref``; the first case is ours, the ratio's base. The
    process CPU time of each call is kept too: with busy loops on the cores, the wall time also
    counts the waits for a core, which fall on the cases unevenly."""
    names = list(cases)
    for fn in cases.values():  # warm-up
        fn(10_000)
    times: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    errs: dict[str, list[float]] = {k: [] for k in names}
    hvps: dict[str, list[int]] = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            t0, c0 = time.perf_counter(), time.process_time()
            val, n = cases[k](r)
            times[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
            errs[k].append(abs(val / ref - 1))
            hvps[k].append(n)
    t_ours, c_ours = statistics.median(times[names[0]]), statistics.median(cpu[names[0]])
    for k in names:
        t, c = statistics.median(times[k]), statistics.median(cpu[k])
        ok = sum(e <= 1e-3 for e in errs[k])
        note = (
            f"{rounds} seeds: median {statistics.median(hvps[k]):g} HVPs "
            f"(range {min(hvps[k])}-{max(hvps[k])}), within 1e-3 of the reference in "
            f"{ok}/{rounds}, worst error {100 * max(errs[k]):.3g}%"
        )
        if k == names[0]:
            first = f"{ref_note}; median CPU time {c:.4f} s"
        else:
            first = f"ours {t_ours / t:.2f}x its time (CPU time: ours {c_ours / c:.2f}x)"
        ROWS.append((sec, k, t, f"{first}; {note}"))


def bench_sharpness(label, model, X, y, repeats, pyh, max_probes: int) -> None:
    sec = f"sharpness {label}"
    bench_lambda_max(label, model, X, y, max(3 * repeats, 3), pyh)
    fixed = S.hessian_trace(model, X, y, samples=max_probes, rel_ci=0)
    width = fixed["ci95"][1] - fixed["mean"]
    rel = width / abs(fixed["mean"])
    rule = S.hessian_trace(model, X, y, samples=max_probes, rel_ci=rel, deflate=4)
    med = interleaved(
        {
            f"trace, fixed {max_probes} probes": lambda: S.hessian_trace(
                model, X, y, samples=max_probes, rel_ci=0
            ),
            "trace, Hutch++ (k=4), stop at that CI width": lambda: S.hessian_trace(
                model, X, y, samples=max_probes, rel_ci=rel, deflate=4
            ),
        },
        repeats,
    )
    for (case, t), r in zip(med.items(), (fixed, rule)):
        hw = r["ci95"][1] - r["mean"]
        ROWS.append((sec, case, t, f"{r['n_hvp']} HVPs, trace {r['mean']:.4g} +- {hw:.3g}"))


# ------------------------------------------------------------------ CLI --------------------


def bench_cli(trials: tuple[int, int], repeats: int, data) -> None:
    """Marginal cost per trial of `python -m sar_core inject` (difference of two trial counts).

    Both the wall time and the CPU time of the child process are measured: on a shared machine
    the wall time of a whole process is dominated by waiting for a core.
    """
    import resource

    path = ROOT / "assets" / "digits_mlp_sgd.safetensors"
    cpu: dict[int, list[float]] = {n: [] for n in trials}

    def run(n):
        cmd = [
            sys.executable,
            "-m",
            "sar_core",
            "inject",
            "--model",
            str(path),
            "--format",
            "float32",
            "--ber",
            "1e-4",
            "--include-bias",
            "--trials",
            str(n),
            "--quiet",
            "--json",
        ]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu[n].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)

    med = interleaved({n: (lambda n=n: run(n)) for n in trials}, repeats)
    c = {n: statistics.median(v) for n, v in cpu.items()}
    span = trials[1] - trials[0]
    per_wall, per_cpu = (
        (med[trials[1]] - med[trials[0]]) / span,
        (c[trials[1]] - c[trials[0]]) / span,
    )
    model = load_checkpoint(path).model
    X, y = as_tensors(data.X_test, data.y_test)
    fm = FaultModel(format="float32", ber=1e-4, include_bias=True)
    naive = interleaved({"n": lambda: naive_campaign(model, X, y, fm, 20)}, repeats)["n"] / 20
    sec = "CLI inject, demo MLP, float32 all bits + biases, BER 1e-4"
    for n in trials:
        ROWS.append((sec, f"whole process, {n} trials", med[n], f"CPU {c[n]:.2f} s"))
    ROWS.append(
        (sec, "marginal wall time per trial", per_wall, f"naive loop {naive / per_wall:.1f}x")
    )
    ROWS.append((sec, "marginal CPU time per trial", per_cpu, f"naive loop {naive / per_cpu:.1f}x"))


def busy_loops(n: int) -> list[subprocess.Popen]:
    """``n`` processes that spin a core each until killed."""
    code = "while True: pass"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-cli", action="store_true")
    ap.add_argument("--busy", type=int, default=0, help="busy-loop processes during the run")
    ap.add_argument("--only", default="campaign,landscape,sharpness,cli")
    ap.add_argument("--out", type=Path, default=None, help="also write the report to this file")
    a = ap.parse_args()
    loops = busy_loops(a.busy)
    try:
        run(a)
    finally:
        for p in loops:
            p.kill()
            p.wait()


def run(a: argparse.Namespace) -> None:
    only = set(a.only.split(","))
    from sar_core.runtime import configure_threads

    configure_threads(1)  # the project's one place that sets torch's threads
    q = a.quick
    repeats = 1 if q else a.repeats
    data = load_dataset("digits", seed=0)
    X, y = as_tensors(data.X_test, data.y_test)
    if q:
        X, y = X[:32], y[:32]
    mlp = trained_mlp(data, (16,) if q else (128, 128), 1 if q else 20)
    cnn = load_checkpoint(ROOT / "assets" / "digits_cnn_sgd.safetensors").model
    pfi = peer("pytorchfi.core")
    pfi = sys.modules.get("pytorchfi.core") if pfi is not None else None
    ll, pyh = peer("loss_landscapes"), peer("pyhessian")
    trials = 4 if q else 200
    report = [
        f"torch {torch.__version__}, {torch.get_num_threads()} thread, "
        f"{len(y)} digits test rows, medians of {repeats} interleaved runs",
        f"command: python benchmarks/run.py {' '.join(sys.argv[1:])}",
        f"busy-loop processes during the run: {a.busy}",
        "load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()),
    ]
    print("\n".join(report))
    mlp_label = "MLP 64-16-10 (quick)" if q else "MLP 64-128-128-10"
    for label, model in ((mlp_label, mlp), ("SmallCNN (demo, 8-16 ch)", cnn)):
        for ber in (1e-4, 1e-7) if "campaign" in only else ():
            bench_campaign(label, model, X, y, ber, trials, repeats, pfi)
    if "auto" in only:
        demo = load_checkpoint(ROOT / "assets" / "digits_mlp_sgd.safetensors").model
        bench_auto(demo, X, y, 20 if q else 100, repeats, (1e-3, 4e-3, 8e-3, 1.2e-2, 1.6e-2))
    for label, model in ((mlp_label, mlp), ("SmallCNN", cnn)):
        if "landscape" in only:
            bench_landscape(label, model, X, y, 3 if q else 41, repeats, ll)
        if "sharpness" in only:
            bench_sharpness(label, model, X, y, repeats, pyh, 8 if q else 64)
    if not (q or a.skip_cli) and "cli" in only:
        bench_cli((20, 2000), repeats, data)  # 1980 trials of difference (the CLI allows 2000)
    table = ["", "| section | case | median s | note |", "|---|---|---|---|"]
    table += [f"| {sec} | {case} | {t:.4f} | {note} |" for sec, case, t, note in ROWS]
    table += ["", "load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())]
    print("\n".join(table))
    if a.out is not None:
        a.out.write_text("\n".join(report + table) + "\n")


if __name__ == "__main__":
    main()
