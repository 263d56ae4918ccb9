"""The task suite: every method tuned on tuning seeds, judged on held-out seeds, paired against SGD.

Protocol (``benchmarks/suite.py`` runs it; the dashboard reads its results file):
1. Target settings per task, fixed by a rule on the SGD models of the tuning seeds: for int8 (all
   bits, weights) and float16 (all bits, weights) separately, the *smallest* BER of a fixed log grid
   (4 points per decade) at which SGD's accuracy loss (clean float32 accuracy - mean accuracy
   under faults, averaged over the tuning seeds) is >= 5 points; ``in_band`` records whether that
   loss is also <= 30 points.
2. Every hyperparameter of every method is chosen on the tuning seeds only, from a grid of the
   same size for every tuned method, by the mean accuracy at the int8 target over the tuning
   seeds (same fault patterns for every candidate). Epochs, learning rate, batch size, momentum
   and weight decay are shared by all methods and not tuned. ``sar_clip`` reuses SAR's tuned
   multiplier and clip's tuned w_max; ``randbet`` reuses clip's tuned w_max and tunes its rate.
3. Held-out seeds: each selected method is trained once per seed; all models of a seed see the
   same fault patterns (campaign seed fixed per seed). Delta vs SGD: the per-trial paired
   differences of all held-out seeds are pooled (n = seeds x trials) and the 95% CI is the
   Student-t interval of their mean. It captures fault-pattern noise, not training-seed noise;
   the per-seed deltas are stored so the seed spread can be seen. Verdict: win when the CI is
   above 0, loss when below, tie otherwise.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sar_core.analysis.campaign import compare
from sar_core.stats.intervals import seed_level_interval, summarize
from sar_core.stats.verdicts import verdict

SCHEMA_V1 = "sar-lab-suite/1"
RESULTS_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "suite.json"
TASKS = {  # name: (dataset, arch)
    "digits_mlp": ("digits", "mlp"),
    "digits_cnn": ("digits", "cnn"),
    "mnist1d_mlp": ("mnist1d", "mlp"),
    "mnist1d_cnn1d": ("mnist1d", "cnn1d"),
    "wine_mlp": ("wine", "mlp"),
    "breast_cancer_mlp": ("breast_cancer", "mlp"),
    "moons_mlp": ("moons", "mlp"),
    "circles_mlp": ("circles", "mlp"),
}
WIDTHS = {"mlp": (128, 64), "cnn": (8, 16), "cnn1d": (16, 32)}
INT8_GRID = tuple(float(f"{10 ** (-3 + i / 4):.3g}") for i in range(11))  # 1e-3 .. 0.316
F16_GRID = tuple(float(f"{10 ** (-7 + i / 4):.3g}") for i in range(21))  # 1e-7 .. 1e-2
# tuned hyperparameter grids, same size for every tuned method
GRIDS = {
    "sam": ("rho", (0.05, 0.1, 0.2)),
    "asam": ("rho", (0.5, 1.0, 2.0)),
    "sar": ("rho", (0.005, 0.015, 0.05)),  # SAR v2 multiplier of sqrt(E[n])
    "fat": ("ber_factor", (0.1, 0.3, 1.0)),  # training BER = factor x target (1x diverges often)
    "clip": ("w_max", (0.05, 0.15, 0.5)),
    "randbet": ("ber_factor", (0.5, 1.0, 2.0)),  # with clip's tuned w_max
}
METHODS = ("sgd", "sam", "asam", "sar", "fat", "clip", "randbet", "sar_clip")


@dataclass(frozen=True)
class SuiteConfig:
    """Size of a suite run (the defaults are the full run)."""

    tasks: tuple[str, ...] = tuple(TASKS)
    methods: tuple[str, ...] = METHODS
    tuning_seeds: tuple[int, ...] = (0, 1)
    heldout_seeds: tuple[int, ...] = (2, 3, 4)
    epochs: int = 20
    lr: float = 0.05
    trials_target: int = 20  # per grid BER when fixing the targets
    trials_tune: int = 30  # per tuning seed and candidate
    trials_eval: int = 60  # per held-out seed and method
    grids: dict = field(default_factory=lambda: dict(GRIDS))
    int8_grid: tuple[float, ...] = INT8_GRID
    f16_grid: tuple[float, ...] = F16_GRID
    quick: bool = False

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["grids"] = {m: [n, list(v)] for m, (n, v) in self.grids.items()}
        return d


def quick_config() -> SuiteConfig:
    """A tiny run for smoke tests: one task, few epochs, few trials, small grids."""
    return SuiteConfig(
        tasks=("moons_mlp",),
        methods=("sgd", "asam", "sar", "clip", "randbet", "sar_clip"),
        heldout_seeds=(2, 3),
        epochs=2,
        trials_target=3,
        trials_tune=3,
        trials_eval=4,
        grids={m: (n, v[:2]) for m, (n, v) in GRIDS.items()},
        int8_grid=INT8_GRID[::3],
        f16_grid=F16_GRID[::4],
        quick=True,
    )


def _load(task: str, seed: int):
    from sar_core.data.datasets import load_dataset
    from sar_core.training.loop import spec_for

    dataset, arch = TASKS[task]
    data = load_dataset(dataset, seed=seed)
    return data, spec_for(data, arch, widths=WIDTHS[arch])


def _fm(fmt: str, ber: float):
    from sar_core.faults.model import FaultModel

    return FaultModel(format=fmt, ber=ber)


def _train(task: str, seed: int, cfg: SuiteConfig, method: str, params: dict, target):
    """Train one model; ``params`` holds the method's hyperparameters (suite names)."""
    from sar_core.training.loop import TrainConfig, train

    data, spec = _load(task, seed)
    kw: dict = dict(method=method, epochs=cfg.epochs, lr=cfg.lr, seed=seed)
    if "rho" in params:
        kw["rho"] = params["rho"]
    if "w_max" in params:
        kw["w_max"] = params["w_max"]
    if method in ("sar", "sar_clip"):
        kw["geometry"] = "fault"
    if method in ("sar", "sar_clip", "fat", "randbet"):
        kw["fault_model"] = target.with_rate(ber=min(1.0, target.ber * params.get("ber_factor", 1)))
    res = train(spec, data, TrainConfig(**kw), device="cpu")
    return res.model, res.clean_accuracy, data


def fix_target(task: str, cfg: SuiteConfig, sgd_models: dict, fmt: str) -> dict:
    """The smallest grid BER at which SGD loses >= 5 points (mean over tuning seeds)."""
    grid = cfg.int8_grid if fmt == "int8" else cfg.f16_grid
    rows = []
    for ber in grid:
        losses = []
        for model, clean, data in sgd_models.values():
            res = compare(
                [model], data.X_test, data.y_test, _fm(fmt, ber), trials=cfg.trials_target, seed=7
            )
            losses.append(100 * (clean - res["results"][0].summary()["mean_accuracy"]))
        rows.append([ber, float(np.mean(losses))])
        if rows[-1][1] >= 5:
            break
    ber, loss = rows[-1]
    return {"ber": ber, "sgd_loss_pt": loss, "in_band": 5 <= loss <= 30, "grid_losses": rows}


def _candidates(cfg: SuiteConfig, selected: dict) -> list[tuple[str, dict]]:
    out = []
    for m in cfg.methods:
        if m in ("sgd", "sar_clip"):
            continue
        name, values = cfg.grids[m]
        for v in values:
            p = {name: v}
            if m == "randbet":
                p["w_max"] = selected.get("clip", {}).get("w_max", 0.1)
            out.append((m, p))
    return out


def _robust(models, data, fm, trials: int, seed: int) -> tuple[list, list]:
    res = compare(models, data.X_test, data.y_test, fm, trials=trials, seed=seed)
    return res["results"], res["paired_difference"]


def tune_task(task: str, cfg: SuiteConfig, targets: dict, sgd_models: dict) -> tuple[dict, list]:
    """Choose every method's hyperparameters on the tuning seeds (clip before randbet)."""
    fm = _fm("int8", targets["int8"]["ber"])
    selected: dict = {"sgd": {}}
    rows: list = []
    for phase in (("clip",), tuple(m for m in cfg.methods if m != "clip")):
        cands = [c for c in _candidates(cfg, selected) if c[0] in phase]
        if not cands:
            continue
        scores = np.zeros(len(cands))
        for seed, (_, _, data) in sgd_models.items():
            trained = [_train(task, seed, cfg, m, p, fm) for m, p in cands]
            results, _ = _robust([t[0] for t in trained], data, fm, cfg.trials_tune, 100 + seed)
            for k, ((m, p), t, r) in enumerate(zip(cands, trained, results)):
                acc = r.summary()["mean_accuracy"]
                scores[k] += acc / len(sgd_models)
                rows.append({"method": m, "params": p, "seed": seed, "clean": t[1], "robust": acc})
        for m in {c[0] for c in cands}:
            ks = [k for k, c in enumerate(cands) if c[0] == m]
            selected[m] = cands[max(ks, key=lambda k: scores[k])][1]
    if "sar_clip" in cfg.methods:
        selected["sar_clip"] = {
            "rho": selected.get("sar", {}).get("rho", cfg.grids["sar"][1][0]),
            "w_max": selected.get("clip", {}).get("w_max", 0.1),
        }
    return selected, rows


def _delta(accs: dict, base: str, m: str) -> dict:
    d_seed = [np.asarray(a) - np.asarray(b) for a, b in zip(accs[m], accs[base])]
    s = summarize(100 * np.concatenate(d_seed))
    lo, hi = s["ci95"]
    per_seed = [float(100 * d.mean()) for d in d_seed]
    v = verdict(lo, hi)
    return {"delta": s["mean"], "ci95": [lo, hi], "delta_per_seed": per_seed, "verdict": v}


def evaluate_heldout(task: str, cfg: SuiteConfig, targets: dict, selected: dict) -> dict:
    """Train the selected methods on the held-out seeds; paired robust accuracy vs SGD."""
    fms = {s: _fm(s, targets[s]["ber"]) for s in ("int8", "float16")}
    runs = [(m, selected[m], fms["int8"]) for m in cfg.methods]
    if "sar" in cfg.methods:  # the same multiplier, aimed at the float16 target
        runs.append(("sar", selected["sar"], fms["float16"]))
    names = [m for m in cfg.methods] + (["sar@float16"] if "sar" in cfg.methods else [])
    clean = {n: [] for n in names}
    accs = {s: {n: [] for n in names} for s in fms}
    for seed in cfg.heldout_seeds:
        trained = [_train(task, seed, cfg, m, p, fm) for m, p, fm in runs]
        data = trained[0][2]
        for n, t in zip(names, trained):
            clean[n].append(100 * t[1])
        for s, fm in fms.items():
            results, _ = _robust([t[0] for t in trained], data, fm, cfg.trials_eval, 1000 + seed)
            for n, r in zip(names, results):
                accs[s][n].append(r.accuracy)
    out = {}
    for n in names:
        row: dict = {"clean": float(np.mean(clean[n])), "clean_per_seed": clean[n]}
        row["clean_delta"] = row["clean"] - float(np.mean(clean["sgd"]))
        for s in fms:
            row[s] = {"robust": float(100 * np.mean(accs[s][n])), **_delta(accs[s], "sgd", n)}
        out[n] = row
    return out


def run_task(task: str, cfg: SuiteConfig) -> dict:
    """Targets, tuning and held-out evaluation of one task (one worker's unit of work)."""
    t0 = time.perf_counter()
    sgd = {s: _train(task, s, cfg, "sgd", {}, None) for s in cfg.tuning_seeds}
    targets = {f: fix_target(task, cfg, sgd, f) for f in ("int8", "float16")}
    selected, tuning = tune_task(task, cfg, targets, sgd)
    methods = evaluate_heldout(task, cfg, targets, selected)
    data = next(iter(sgd.values()))[2]
    n_test = int(len(data.y_test))
    return {
        "task": task,
        "dataset": TASKS[task][0],
        "arch": TASKS[task][1],
        "n_train": int(len(data.y_train)),
        "n_test": n_test,
        "pt_per_sample": 100.0 / n_test,
        "targets": targets,
        "selected": selected,
        "tuning": tuning,
        "methods": methods,
        "seconds": time.perf_counter() - t0,
    }


def summarize_suite(tasks: list[dict]) -> dict:
    """Across tasks, per setting and method: mean delta, wins / ties / losses, clean deltas."""
    out: dict = {}
    for s in ("int8", "float16"):
        out[s] = {}
        for m in tasks[0]["methods"]:
            if m == "sgd" or any(m not in t["methods"] for t in tasks):
                continue
            rows = [t["methods"][m] for t in tasks]
            verdicts = [r[s]["verdict"] for r in rows]
            out[s][m] = {
                "mean_delta": float(np.mean([r[s]["delta"] for r in rows])),
                "wins": verdicts.count("win"),
                "ties": verdicts.count("tie"),
                "losses": verdicts.count("loss"),
                "mean_clean_delta": float(np.mean([r["clean_delta"] for r in rows])),
                "min_clean_delta": float(np.min([r["clean_delta"] for r in rows])),
            }
    return out


def run_suite(cfg: SuiteConfig, *, workers: int = 1, on_task=None) -> dict:
    """Run every task (in ``workers`` processes, one thread each) and summarise."""
    t0 = time.perf_counter()
    if workers > 1:
        import multiprocessing as mp

        # heaviest tasks first so the two workers finish together
        order = sorted(cfg.tasks, key=lambda t: ("mnist1d" not in t, "digits" not in t))
        with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
            done = {}
            for res in pool.imap_unordered(_run_task_star, [(t, cfg) for t in order]):
                done[res["task"]] = res
                if on_task:
                    on_task(res)
        tasks = [done[t] for t in cfg.tasks]
    else:
        tasks = []
        for t in cfg.tasks:
            tasks.append(run_task(t, cfg))
            if on_task:
                on_task(tasks[-1])
    return {
        "schema": "sar-lab-suite/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": cfg.to_dict(),
        "workers": workers,
        "run_seconds": time.perf_counter() - t0,
        "tasks": tasks,
        "summary": summarize_suite(tasks),
    }


def _worker_init() -> None:
    import os

    from sar_core.runtime import configure_threads

    os.environ["OMP_NUM_THREADS"] = "1"
    configure_threads(1)


def _run_task_star(args):
    return run_task(*args)


def load_results(path: str | Path | None = None) -> dict:
    """The suite's results (``path``; default: the bundled ``benchmarks/results/suite.json``).

    Raises ValueError naming the path when the file is missing or is not a suite results file.
    """
    p = Path(path) if path is not None else RESULTS_PATH
    if not p.is_file():
        raise ValueError(
            f"Invalid suite results path={str(p)!r}: no such file; run benchmarks/suite.py"
        )
    try:
        res = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Invalid suite results path={str(p)!r}: not JSON ({e})") from None
    if not isinstance(res, dict) or not str(res.get("schema", "")).startswith("sar-lab-suite/"):
        raise ValueError(
            f"Invalid suite results path={str(p)!r}: no 'sar-lab-suite/N' schema; "
            "run benchmarks/suite.py"
        )
    if not isinstance(res.get("tasks"), list) or not res["tasks"]:
        raise ValueError(f"Invalid suite results path={str(p)!r}: no tasks")
    return res


# Output labels: what each method name means in the results (SAR variants told apart).
LABELS_V1 = {  # schema 1 (the 2026-11 run): `sar` was SAR v2 with a tuned multiplier
    "sam": "SAM (tuned rho)",
    "asam": "ASAM (tuned rho)",
    "sar": "SAR v2 (fault geometry, tuned multiplier)",
    "sar@float16": "SAR v2 aimed at float16 (int8-tuned multiplier)",
    "fat": "fault-aware training (tuned rate)",
    "clip": "weight clipping (tuned w_max)",
    "randbet": "RandBET (tuned rate, clip's w_max)",
    "sar_clip": "SAR v2 + clipping (tuned)",
}


def method_label(results: dict, method: str) -> str:
    """Human label of a result's method (the results file's own labels first)."""
    labels = results.get("labels") or (LABELS_V1 if results.get("schema") == SCHEMA_V1 else {})
    return labels.get(method, method)


def _targets_of(results: dict) -> tuple[str, ...]:
    return tuple(results["tasks"][0]["targets"])


def _seed_ci(row: dict) -> dict:
    """Seed-level 95% CI (points) of a method - SGD difference from its per-seed deltas."""
    return seed_level_interval(row["delta_per_seed"]).to_dict()


def headline(results: dict, target: str, task: str | None = None) -> list[dict]:
    """Per non-SGD method at ``target``: mean delta over tasks, seed-level verdict counts.

    One dict per method, sorted by ``mean_delta`` (points) descending: ``method``, ``label``,
    ``mean_delta``, ``wins`` / ``ties`` / ``losses`` (verdicts of the seed-level interval over
    the held-out seeds' mean differences), ``task``, ``task_delta`` (that task's seed-level CI as
    ``{"mean", "lo", "hi", "n", "kind"}`` when ``task`` is given, else None),
    ``mean_clean_delta`` and ``in_sample`` (True when a reported seed was also a tuning seed).
    A method aimed at another target (``sar@float16``) is listed only under its own target.
    """
    targets = _targets_of(results)
    if target not in targets:
        raise ValueError(f"Invalid target={target!r}: this results file has {list(targets)}")
    tasks = results["tasks"]
    names = [t["task"] for t in tasks]
    if task is not None and task not in names:
        raise ValueError(f"Invalid task={task!r}: this results file has {names}")
    cfg = results.get("config", {})
    in_sample = bool(set(cfg.get("heldout_seeds", ())) & set(cfg.get("tuning_seeds", ())))
    methods = [m for m in tasks[0]["methods"] if m != "sgd"]
    out = []
    for m in methods:
        aim = m.partition("@")[2]
        if (aim and aim != target) or any(m not in t["methods"] for t in tasks):
            continue
        rows = [t["methods"][m] for t in tasks]
        cis = [_seed_ci(r[target]) for r in rows]
        verdicts = [verdict(c["lo"], c["hi"]) for c in cis]
        task_delta = None
        if task is not None:
            c = cis[names.index(task)]
            task_delta = {k: c[k] for k in ("mean", "lo", "hi", "n", "kind")}
        out.append(
            {
                "method": m,
                "label": method_label(results, m),
                "mean_delta": float(np.mean([c["mean"] for c in cis])),
                "wins": verdicts.count("win"),
                "ties": verdicts.count("tie"),
                "losses": verdicts.count("loss"),
                "task": task,
                "task_delta": task_delta,
                "mean_clean_delta": float(np.mean([r["clean_delta"] for r in rows])),
                "in_sample": in_sample,
            }
        )
    return sorted(out, key=lambda d: -d["mean_delta"])


def result_rows(results: dict, setting: str = "int8") -> list[dict]:
    """One flat row per task and method (for tables, CSV, and the dashboard's cross-task view)."""
    if setting not in ("int8", "float16"):
        raise ValueError(f"Invalid setting={setting!r}: choose 'int8' or 'float16'")
    rows = []
    for t in results["tasks"]:
        tgt = t["targets"][setting]
        for m, r in t["methods"].items():
            rows.append(
                {
                    "task": t["task"],
                    "n_test": t["n_test"],
                    "setting": setting,
                    "ber": tgt["ber"],
                    "sgd_loss_pt": tgt["sgd_loss_pt"],
                    "method": m,
                    "params": json.dumps(t["selected"].get(m.split("@")[0], {})),
                    "clean": r["clean"],
                    "clean_delta": r["clean_delta"],
                    "robust": r[setting]["robust"],
                    "delta": r[setting]["delta"],
                    "ci95_low": r[setting]["ci95"][0],
                    "ci95_high": r[setting]["ci95"][1],
                    "verdict": r[setting]["verdict"],
                }
            )
    return rows


def with_overrides(cfg: SuiteConfig, **changes) -> SuiteConfig:
    """Copy of a suite config with some fields changed."""
    return replace(cfg, **changes)
