"""The task suite: targets by rule, tuning on tuning seeds, judgement on held-out seeds vs SGD.

Protocol (``benchmarks/suite.py`` runs it; the dashboard and the README read its results file):
1. Targets per task, fixed by a rule on the SGD models of the tuning seeds: for every target
   (int8 per tensor, int8 per output channel, float16; all bits of the weights) the *smallest*
   BER of a fixed log grid (4 points per decade) at which SGD's accuracy loss (clean accuracy -
   mean accuracy under faults, averaged over the tuning seeds) is >= 5 points; ``in_band``
   records whether that loss is also <= 30 points.
2. Every method runs at its library defaults (no hyperparameter set), as a user gets it; the
   targeted ones (sar, fat, randbet, sar_clip) are given the task's int8 target. One tuned entry
   (``asam_tuned``) has its rho chosen on the tuning seeds from a grid, by the mean accuracy at
   the int8 target. ``sar@<target>`` is the default SAR aimed at another target.
3. Held-out seeds (>= 5): every method is trained once per seed by the study runner
   (``sar_core.experiments.study``, local executor); all models of a seed see the same fault
   patterns (campaign seed 1000 + seed). Per task, method and target: the per-seed mean paired
   difference vs SGD (points), and the seed-level 95% interval (Student t over the per-seed
   means, ``sar_core.stats.intervals.seed_level_interval``); verdicts ▲/▼/· come from that
   interval (``sar_core.stats.verdicts``). The fault-only interval (pooled trials) is stored
   beside it as ``fault_ci95``, labelled, never used for a verdict.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sar_core import names
from sar_core.analysis.campaign import compare
from sar_core.stats.intervals import fault_level_interval, seed_level_interval
from sar_core.stats.verdicts import verdict

SCHEMA = "sar-lab-suite/2"
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
TARGETS = {  # target name: (format, int8 granularity)
    "int8": ("int8", "tensor"),
    "int8_channel": ("int8", "channel"),
    "float16": ("float16", "tensor"),
}
INT8_GRID = tuple(float(f"{10 ** (-3 + i / 4):.3g}") for i in range(11))  # 1e-3 .. 0.316
F16_GRID = tuple(float(f"{10 ** (-7 + i / 4):.3g}") for i in range(21))  # 1e-7 .. 1e-2
METHODS = ("sgd", "sam", "asam", "sar", "fat", "clip", "randbet", "sar_clip")  # at defaults
TARGETED = names.TARGETED  # methods that read a target fault model
TUNED = {"asam_tuned": ("asam", "rho", (0.5, 1.0, 2.0))}  # name: (method, parameter, grid)
AIMED = ("sar@int8_channel", "sar@float16")  # default SAR aimed at another target
LABELS = {
    "sam": "SAM (default rho 0.05)",
    "asam": "ASAM (default rho 0.5)",
    "asam_tuned": "ASAM (rho tuned on tuning seeds)",
    "sar": "SAR v3 (default; aimed at int8 per tensor)",
    "sar@int8_channel": "SAR v3 (default) aimed at int8 per channel",
    "sar@float16": "SAR v3 (default) aimed at float16",
    "fat": "fault-aware training (default: 0.1x the target rate)",
    "clip": "weight clipping (default: 3x each layer's initial max|w|)",
    "randbet": "RandBET (default: target rate, relative clip)",
    "sar_clip": "SAR v3 + relative clipping (default)",
}


@dataclass(frozen=True)
class SuiteConfig:
    """Size of a suite run (the defaults are the full run)."""

    tasks: tuple[str, ...] = tuple(TASKS)
    methods: tuple[str, ...] = METHODS  # held-out at library defaults; sgd first
    tuned: tuple[str, ...] = tuple(TUNED)  # entries of TUNED tuned on the tuning seeds
    aimed: tuple[str, ...] = AIMED
    targets: tuple[str, ...] = tuple(TARGETS)
    tuning_seeds: tuple[int, ...] = (0, 1)
    heldout_seeds: tuple[int, ...] = (2, 3, 4, 5, 6)
    epochs: int = 20
    lr: float = 0.05
    trials_target: int = 20  # per grid BER when fixing the targets
    trials_tune: int = 30  # per tuning seed and candidate
    trials_eval: int = 40  # per held-out seed, method and target
    grids: dict = field(default_factory=lambda: {k: v[2] for k, v in TUNED.items()})
    int8_grid: tuple[float, ...] = INT8_GRID
    f16_grid: tuple[float, ...] = F16_GRID
    quick: bool = False

    def __post_init__(self) -> None:
        if not self.methods or self.methods[0] != "sgd":
            raise ValueError(f"Invalid methods={self.methods!r}: sgd first (the reference)")
        bad = [t for t in self.tasks if t not in TASKS] + [
            t for t in self.targets if t not in TARGETS
        ]
        if bad:
            raise ValueError(f"Invalid task or target {bad[0]!r}: choose from {list(TASKS)}")
        if set(self.heldout_seeds) & set(self.tuning_seeds):
            raise ValueError(
                f"Invalid heldout_seeds={self.heldout_seeds}: they overlap the tuning seeds "
                f"{self.tuning_seeds} (results would be in-sample)"
            )

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["grids"] = {m: list(v) for m, v in self.grids.items()}
        return d

    @property
    def entries(self) -> tuple[str, ...]:
        """Names of the held-out models: defaults, tuned entries, aimed SARs (on-target only)."""
        aimed = tuple(a for a in self.aimed if a.partition("@")[2] in self.targets)
        return self.methods + self.tuned + (aimed if "sar" in self.methods else ())


def quick_config() -> SuiteConfig:
    """A tiny run for smoke tests: one task, few epochs, few trials, a small grid."""
    return SuiteConfig(
        tasks=("moons_mlp",),
        methods=("sgd", "asam", "sar", "clip"),
        heldout_seeds=(2, 3),
        epochs=2,
        trials_target=3,
        trials_tune=3,
        trials_eval=4,
        grids={k: v[2][:2] for k, v in TUNED.items()},
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


def target_model(target: str, ber: float):
    """The FaultModel of a suite target at a BER (all bits of the weights)."""
    from sar_core.faults.model import FaultModel

    fmt, gran = TARGETS[target]
    return FaultModel(format=fmt, ber=ber, granularity=gran)


def _train(task: str, seed: int, cfg: SuiteConfig, method: str, params: dict, target=None):
    """Train one model at the suite's shared settings plus ``params`` (TrainConfig fields)."""
    from sar_core.training.loop import TrainConfig, train

    data, spec = _load(task, seed)
    kw: dict = dict(method=method, epochs=cfg.epochs, lr=cfg.lr, seed=seed, **params)
    if method in TARGETED:
        kw["fault_model"] = target
    res = train(spec, data, TrainConfig(**kw), device="cpu")
    return res.model, res.clean_accuracy, data


def fix_target(task: str, cfg: SuiteConfig, sgd_models: dict, target: str) -> dict:
    """The smallest grid BER at which SGD loses >= 5 points (mean over tuning seeds)."""
    grid = cfg.f16_grid if TARGETS[target][0] == "float16" else cfg.int8_grid
    rows = []
    for ber in grid:
        losses = []
        for model, clean, data in sgd_models.values():
            fm = target_model(target, ber)
            res = compare([model], data.X_test, data.y_test, fm, trials=cfg.trials_target, seed=7)
            losses.append(100 * (clean - res["results"][0].summary()["mean_accuracy"]))
        rows.append([ber, float(np.mean(losses))])
        if rows[-1][1] >= 5:
            break
    ber, loss = rows[-1]
    return {"ber": ber, "sgd_loss_pt": loss, "in_band": 5 <= loss <= 30, "grid_losses": rows}


def tune_task(task: str, cfg: SuiteConfig, targets: dict, sgd_models: dict) -> tuple[dict, list]:
    """Choose each tuned entry's value on the tuning seeds (mean accuracy at the int8 target)."""
    fm = target_model("int8", targets["int8"]["ber"])
    selected: dict = {}
    rows: list = []
    for name in cfg.tuned:
        method, param, _ = TUNED[name]
        values = cfg.grids[name]
        scores = np.zeros(len(values))
        for seed, (_, _, data) in sgd_models.items():
            trained = [_train(task, seed, cfg, method, {param: v}, fm) for v in values]
            res = compare(
                [t[0] for t in trained],
                data.X_test,
                data.y_test,
                fm,
                trials=cfg.trials_tune,
                seed=100 + seed,
            )["results"]
            for k, (v, t, r) in enumerate(zip(values, trained, res)):
                acc = r.summary()["mean_accuracy"]
                scores[k] += acc / len(sgd_models)
                rows.append(
                    {
                        "method": name,
                        "params": {param: v},
                        "seed": seed,
                        "clean": t[1],
                        "robust": acc,
                    }
                )
        selected[name] = {param: values[int(np.argmax(scores))]}
    return selected, rows


def prepare_task(task: str, cfg: SuiteConfig) -> dict:
    """Stage 1 of a task on the tuning seeds: targets by rule, tuned entries' values."""
    t0 = time.perf_counter()
    sgd = {s: _train(task, s, cfg, "sgd", {}) for s in cfg.tuning_seeds}
    targets = {t: fix_target(task, cfg, sgd, t) for t in cfg.targets}
    selected, tuning = tune_task(task, cfg, targets, sgd)
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
        "seconds_tuning": time.perf_counter() - t0,
    }


def entry_config(name: str, prepared: dict) -> dict:
    """TrainConfig fields (beyond the shared ones) of a held-out entry on a prepared task."""
    base, _, aim = name.partition("@")
    if base in TUNED:
        return {"method": TUNED[base][0], **prepared["selected"][base]}
    d: dict = {"method": base}
    if base in TARGETED:
        t = aim or "int8"
        d["fault_model"] = target_model(t, prepared["targets"][t]["ber"]).to_dict()
    return d


def _toml(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items() if x is not None) + " }"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def heldout_spec(cfg: SuiteConfig, prepared: list[dict], *, created: str = "") -> str:
    """TOML text of the held-out stage as a study (sar_core.experiments.study)."""
    from sar_core.faults.model import FaultModel

    lines = [
        "# The SAR task suite's held-out stage, written by sar_core.experiments.suite from the",
        f"# tuning stage {created}: targets by rule and tuned values on the tuning seeds.",
        'name = "suite"',
        'description = "SAR task suite, held-out seeds: methods at their defaults (and tuned '
        "ASAM), paired against SGD at each task's target fault settings.\"",
        f"seeds = {list(cfg.heldout_seeds)}",
        "",
        "[train]",
        f"epochs = {cfg.epochs}",
        f"lr = {cfg.lr!r}",
        "",
    ]
    for name in cfg.entries:
        base = name.partition("@")[0]
        method = TUNED[base][0] if base in TUNED else base
        lines += ["[[methods]]", f"name = {json.dumps(name)}", f"method = {json.dumps(method)}", ""]
    for p in prepared:
        lines += ["[[tasks]]", f"name = {json.dumps(p['task'])}"]
        lines += [f"dataset = {json.dumps(p['dataset'])}", f"arch = {json.dumps(p['arch'])}"]
        lines.append(f"widths = {list(WIDTHS[p['arch']])}")
        for name in cfg.entries:
            extra = {k: v for k, v in entry_config(name, p).items() if k != "method"}
            if "fault_model" in extra:  # only the fields that differ from FaultModel's defaults
                full, dflt = extra["fault_model"], FaultModel(ber=0.01).to_dict()
                keep = ("format", "ber", "granularity")
                extra["fault_model"] = {
                    k: full[k]
                    for k in keep
                    if full[k] != dflt.get(k, None) or k in ("format", "ber")
                }
            if extra:
                lines.append(f"methods.{json.dumps(name)} = {_toml(extra)}")
        for t in cfg.targets:
            fmt, gran = TARGETS[t]
            lines += ["[[tasks.faults]]", f"name = {json.dumps(t)}", f"format = {json.dumps(fmt)}"]
            if gran != "tensor":
                lines.append(f"granularity = {json.dumps(gran)}")
            lines.append(f"ber = {p['targets'][t]['ber']!r}")
        lines.append("")
    lines += [
        "[campaign]",
        f"trials = {cfg.trials_eval}",
        "seed = 1000          # the campaign seed of run seed s is 1000 + s: paired across methods",
        "add_run_seed = true",
        "",
        "[sharpness]",
        'measure = "none"',
        "",
    ]
    return "\n".join(lines)


def _stats(per_seed_trials: list, ref_trials: list) -> dict:
    """Method - SGD (points) at one target from per-seed arrays of per-trial accuracies."""
    d_seed = [100 * (np.asarray(a) - np.asarray(b)) for a, b in zip(per_seed_trials, ref_trials)]
    seed = seed_level_interval(d_seed)
    fault = fault_level_interval(d_seed)
    return {
        "robust": float(100 * np.mean([np.mean(a) for a in per_seed_trials])),
        "delta": seed.mean,
        "ci95": [seed.lo, seed.hi],
        "seed_ci": seed.to_dict(),
        "fault_ci95": [fault.lo, fault.hi],
        "delta_per_seed": [float(d.mean()) for d in d_seed],
        "verdict": verdict(seed.lo, seed.hi),
    }


def _delta(accs: dict, base: str, m: str) -> dict:
    """``_stats`` of method ``m`` vs ``base`` from {method: [per-seed trial accuracies]}."""
    return _stats(accs[m], accs[base])


def heldout_rows(tables: dict, cfg: SuiteConfig) -> dict:
    """Per task: the methods dict of the results from a study's collected tables."""
    trials: dict = {}
    for r in tables["trials"]:
        key = (r["task"], r["method"], r["fault"], r["seed"])
        trials.setdefault(key, []).append((r["trial"], r["accuracy"]))
    clean = {
        (m["task"], m["method"], m["seed"]): 100 * m["clean_accuracy"] for m in tables["models"]
    }
    out: dict = {}
    for task in cfg.tasks:
        seeds = cfg.heldout_seeds
        acc = {
            (m, t): [np.array([a for _, a in sorted(trials[(task, m, t, s)])]) for s in seeds]
            for m in cfg.entries
            for t in cfg.targets
        }
        sgd_clean = [clean[(task, "sgd", s)] for s in seeds]
        methods = {}
        for m in cfg.entries:
            c = [clean[(task, m, s)] for s in seeds]
            cd = seed_level_interval(np.subtract(c, sgd_clean))
            row = {
                "clean": float(np.mean(c)),
                "clean_per_seed": c,
                "clean_delta": cd.mean,
                "clean_ci95": [cd.lo, cd.hi],
            }
            for t in cfg.targets:
                row[t] = _stats(acc[(m, t)], acc[("sgd", t)])
            methods[m] = row
        out[task] = methods
    return out


def summarize_suite(tasks: list[dict], targets: tuple[str, ...] | None = None) -> dict:
    """Across tasks, per target and method: mean delta, seed-level wins / ties / losses, clean."""
    targets = targets or tuple(t for t in TARGETS if t in tasks[0]["methods"]["sgd"])
    out: dict = {}
    for s in targets:
        out[s] = {}
        for m in tasks[0]["methods"]:
            aim = m.partition("@")[2]
            if m == "sgd" or (aim and aim != s) or any(m not in t["methods"] for t in tasks):
                continue
            rows = [t["methods"][m] for t in tasks]
            vs = [verdict(*r[s]["ci95"]) for r in rows]
            out[s][m] = {
                "mean_delta": float(np.mean([r[s]["delta"] for r in rows])),
                "wins": vs.count("win"),
                "ties": vs.count("tie"),
                "losses": vs.count("loss"),
                "mean_clean_delta": float(np.mean([r["clean_delta"] for r in rows])),
                "min_clean_delta": float(np.min([r["clean_delta"] for r in rows])),
            }
    return out


def _pool_map(fn, items: list, workers: int, on_item=None) -> list:
    """``fn`` over ``items`` in ``workers`` spawned processes (one torch thread each), in order."""
    if workers <= 1:
        out = []
        for it in items:
            out.append(fn(*it))
            if on_item:
                on_item(out[-1])
        return out
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=_worker_init) as pool:
        out = []
        for res in pool.imap(_star, [(fn, it) for it in items]):
            out.append(res)
            if on_item:
                on_item(res)
    return out


def run_suite(cfg: SuiteConfig, study_dir: str | Path, *, workers: int = 1, on_event=None) -> dict:
    """Stage 1 (targets, tuning) per task in ``workers`` processes, stage 2 as a study.

    ``study_dir``: the study runner's directory for the held-out stage (cached by content hash:
    an interrupted run resumes there). ``on_event`` receives progress dicts.
    """
    from sar_core.experiments.study.cache import Store
    from sar_core.experiments.study.plan import make_plan
    from sar_core.experiments.study.results import collect
    from sar_core.experiments.study.run import run_study
    from sar_core.experiments.study.spec import parse_spec

    t0 = time.perf_counter()
    order = sorted(cfg.tasks, key=lambda t: ("mnist1d" not in t, "digits" not in t))

    cache = Path(study_dir) / "tuning"
    skip = ("tasks", "heldout_seeds", "trials_eval")
    # as JSON reads it back (tuples become lists), so a stored key compares equal
    key = json.loads(json.dumps({k: v for k, v in cfg.to_dict().items() if k not in skip}))
    done = {}
    for t in order:  # stage 1 of a task is reused when its settings are unchanged (a resumed run)
        f = cache / f"{t}.json"
        if f.is_file() and json.loads(f.read_text()).get("key") == key:
            done[t] = json.loads(f.read_text())["prepared"]
    todo = [(t, cfg) for t in order if t not in done]

    def stage1_done(res: dict) -> None:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / f"{res['task']}.json").write_text(json.dumps({"key": key, "prepared": res}))
        if on_event:
            on_event({"stage": "tuning", "task": res["task"], "seconds": time.perf_counter() - t0})

    for res in _pool_map(prepare_task, todo, workers, stage1_done):
        done[res["task"]] = res
    prepared = [done[t] for t in cfg.tasks]
    t1 = time.perf_counter()
    spec = parse_spec(heldout_spec(cfg, prepared))
    plan = make_plan(spec)  # collected below from this very plan (its keys hash the code)
    run = run_study(
        spec, study_dir, executor="local", workers=workers, on_event=on_event, plan=plan
    )
    if run["failed"]:
        raise RuntimeError(f"suite held-out study had failed tasks: {run['failed'][:3]}")
    tables = collect(plan, Store(study_dir))
    heldout = heldout_rows(tables, cfg)
    tasks = [{**p, "methods": heldout[p["task"]]} for p in prepared]
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": cfg.to_dict(),
        "labels": {m: LABELS.get(m, m) for m in cfg.entries},
        "defaults": _defaults(),
        "workers": workers,
        "run_seconds": time.perf_counter() - t0,
        "stage_seconds": {"tuning": t1 - t0, "heldout": time.perf_counter() - t1},
        "study": {"dir": str(study_dir), "plan": {k: run[k] for k in ("train", "campaign")}},
        "tasks": tasks,
        "summary": summarize_suite(tasks, cfg.targets),
    }


def _defaults() -> dict:
    """The library defaults the held-out methods ran with (recorded with the results)."""
    from sar_core.training.config import DEFAULT_RHO, DEFAULT_W_MAX_REL
    from sar_core.training.optim import (
        SAR_DEFAULT_FAULT_SAMPLE,
        SAR_DEFAULT_GEOMETRY,
        SAR_DEFAULT_RANGE_GRAD,
    )

    return {
        "rho": dict(DEFAULT_RHO),
        "sar_geometry": SAR_DEFAULT_GEOMETRY,
        "sar_range_grad": SAR_DEFAULT_RANGE_GRAD,
        "sar_fault_sample": SAR_DEFAULT_FAULT_SAMPLE,
        "w_max_rel": DEFAULT_W_MAX_REL,
    }


def _worker_init() -> None:
    from sar_core.runtime import configure_threads

    configure_threads(1)


def _star(args):
    fn, it = args
    return fn(*it)


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
    if not isinstance(res, dict) or not str(res.get("schema", SCHEMA)).startswith("sar-lab-suite/"):
        raise ValueError(
            f"Invalid suite results path={str(p)!r}: schema {res.get('schema')!r} is not "
            "'sar-lab-suite/N'; run benchmarks/suite.py"
            if isinstance(res, dict)
            else f"Invalid suite results path={str(p)!r}: not a JSON object"
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
    if not results.get("tasks") or setting not in _targets_of(results):
        have = list(_targets_of(results)) if results.get("tasks") else list(TARGETS)
        raise ValueError(f"Invalid setting={setting!r}: choose from {have}")
    rows = []
    for t in results["tasks"]:
        tgt = t["targets"][setting]
        for m, r in t["methods"].items():
            aim = m.partition("@")[2]
            if aim and aim != setting:
                continue
            fault = r[setting].get("fault_ci95", [float("nan")] * 2)
            rows.append(
                {
                    "task": t["task"],
                    "n_test": t["n_test"],
                    "setting": setting,
                    "ber": tgt["ber"],
                    "sgd_loss_pt": tgt["sgd_loss_pt"],
                    "method": m,
                    "label": method_label(results, m),
                    "params": json.dumps(t["selected"].get(m.split("@")[0], {})),
                    "clean": r["clean"],
                    "clean_delta": r["clean_delta"],
                    "robust": r[setting]["robust"],
                    "delta": r[setting]["delta"],
                    "ci95_low": r[setting]["ci95"][0],
                    "ci95_high": r[setting]["ci95"][1],
                    "ci_kind": "seed" if "seed_ci" in r[setting] else "fault (pooled trials)",
                    "fault_ci95_low": fault[0],
                    "fault_ci95_high": fault[1],
                    "verdict": r[setting]["verdict"],
                }
            )
    return rows


def with_overrides(cfg: SuiteConfig, **changes) -> SuiteConfig:
    """Copy of a suite config with some fields changed."""
    return replace(cfg, **changes)
