"""Studies: spec validation, plan and cache keys, identical tables on every executor and worker
count, resume after a kill, per-task failures, and the HTML report in a real browser.

The study under test: 2 tasks x 2 methods x 2 seeds x 2 int8 BERs, 2 epochs, tiny models. The
uninterrupted one-worker run is the reference every other run is compared with; its numbers are
checked against the library called directly (train, run_campaign, numpy paired differences).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sar_core.experiments.study.results import read_table
from sar_core.experiments.study.run import run_study
from sar_core.experiments.study.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
name = "tiny"
seeds = [0, 1]
[train]
epochs = 2
[[methods]]
method = "sgd"
[[methods]]
method = "sam"
rho = 0.05
[[tasks]]
dataset = "digits"
widths = [8]
[[tasks]]
dataset = "moons"
widths = [8]
data = { n_samples = 200 }
[[faults]]
name = "int8"
format = "int8"
sweep.ber = [0.01, 0.05]
[campaign]
trials = 8
seed = 3
[sharpness]
samples = 64
"""
N_TASKS = 2 * 2 * 2 * (1 + 1 + 2)  # train + sharpness + 2 campaigns per model


def _tables(d: Path) -> dict[str, list[dict]]:
    """Tables without keys and checkpoint paths (keys fingerprint the code, which may change)."""
    out = {}
    for name in ("results", "trials", "models"):
        rows = read_table(d / f"{name}.parquet")
        out[name] = [
            {k: v for k, v in r.items() if not k.endswith("_key") and k != "checkpoint"}
            for r in rows
        ]
    return out


def _same(a: dict, b: dict) -> None:
    for name in a:
        assert len(a[name]) == len(b[name]) > 0, name
        for ra, rb in zip(a[name], b[name]):
            assert ra.keys() == rb.keys()
            for k in (
                ra
            ):  # NaN == NaN here: the reference row's own CI columns are finite, sharpness too
                same = ra[k] == rb[k] or (ra[k] != ra[k] and rb[k] != rb[k])
                assert same, (name, k, ra[k], rb[k])


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("spec") / "tiny.toml"
    p.write_text(SPEC)
    return p


@pytest.fixture(scope="module")
def reference(spec_path, tmp_path_factory) -> Path:
    """The uninterrupted study on the local executor with one worker."""
    out = tmp_path_factory.mktemp("ref")
    res = run_study(spec_path, out, executor="local", workers=1)
    assert res["failed"] == {} and res["ran"] == res["tasks"] == N_TASKS
    return out


# ---------------------------------------------------------------- spec validation


def _bad(text: str, *needles: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_spec(text)
    msg = str(e.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)


@pytest.mark.parametrize(
    "old, new, needles",
    [
        ('name = "tiny"', 'name = "tiny"\nsedes = [1]', ("'sedes'", "top level")),
        ("rho = 0.05", "rhoo = 0.05", ("'rhoo'", "methods[1]")),
        ("rho = 0.05", "rho = -1.0", ("rho=-1.0", "methods[1]")),
        ("rho = 0.05", "seed = 4", ("'seed'", "methods[1]")),
        ("epochs = 2", "epochs = 0", ("epochs=0",)),
        ("{ n_samples = 200 }", "{ n_sample = 200 }", ("'n_sample'", "tasks[1].data")),
        ('dataset = "moons"', 'dataset = "mars"', ("dataset='mars'", "tasks[1]")),
        ("sweep.ber = [0.01, 0.05]", "sweep.ber = []", ("empty grid", "faults[0]")),
        ("sweep.ber = [0.01, 0.05]", "sweep.ber = [0.01, 2.0]", ("ber=2.0", "faults[0]")),
        ('format = "int8"', 'format = "int8"\nkind = "cosmic-ray"', ("kind='cosmic-ray'",)),
        ('format = "int8"', 'format = "int8"\nkindd = "flip"', ("'kindd'", "faults[0]")),
        ("seeds = [0, 1]", "seeds = []", ("seeds",)),
        ("seeds = [0, 1]", "seeds = [1, 1]", ("distinct",)),
        ('method = "sam"', 'method = "sgd"', ("'sgd' used twice",)),
        ("trials = 8", "trials = 0", ("trials=0", "campaign")),
        ("[sharpness]", "[sharpness]\nmeasure = 'curvature'", ("measure='curvature'",)),
        ("[[faults]]", "[[faults]", ("not valid TOML",)),
    ],
)
def test_bad_spec_is_one_clear_error(old, new, needles):
    assert old in SPEC
    _bad(SPEC.replace(old, new, 1), *needles)


def test_spec_accepts_every_trainconfig_and_faultmodel_field():
    from dataclasses import fields

    from sar_core.faults.model import FaultModel
    from sar_core.training.loop import TrainConfig

    fm = {k: v for k, v in FaultModel(format="int8", ber=0.01).to_dict().items() if v is not None}
    toml_fm = "\n".join(f"{k} = {_toml(v)}" for k, v in fm.items())
    cfg = {f.name: f.default for f in fields(TrainConfig)}
    train = {k: v for k, v in cfg.items() if k not in ("seed", "method") and v is not None}
    text = SPEC.replace("epochs = 2", "\n".join(f"{k} = {_toml(v)}" for k, v in train.items()))
    text = text.replace('format = "int8"\nsweep.ber = [0.01, 0.05]', toml_fm)
    spec = parse_spec(text)
    assert spec.tasks[0].faults[0].fault == FaultModel.from_dict(fm).to_dict()
    assert {k: spec.tasks[0].configs["sgd"][k] for k in train} == train


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def test_task_and_method_overrides_take_precedence():
    text = SPEC.replace('dataset = "digits"', 'dataset = "digits"\ntrain = { epochs = 3 }')
    text = text.replace(
        "widths = [8]\ndata", "widths = [8]\nmethods.sam = { rho = 0.2, epochs = 4 }\ndata"
    )
    spec = parse_spec(text)
    digits, moons = spec.tasks
    assert digits.configs["sgd"]["epochs"] == 3 and digits.configs["sam"]["rho"] == 0.05
    assert moons.configs["sam"]["rho"] == 0.2 and moons.configs["sam"]["epochs"] == 4
    assert moons.configs["sgd"]["epochs"] == 2


def test_plan_keys_follow_their_inputs(spec_path):
    from sar_core.experiments.study.plan import make_plan

    base = make_plan(parse_spec(SPEC))
    assert [base.count(k) for k in ("train", "sharpness", "campaign")] == [8, 8, 16]
    more_trials = make_plan(parse_spec(SPEC.replace("trials = 8", "trials = 9")))
    kinds = {k: t.kind for k, t in base.tasks.items()}
    kept = set(base.tasks) & set(more_trials.tasks)
    assert kept == {k for k, kind in kinds.items() if kind != "campaign"}  # models are reused
    more_epochs = make_plan(parse_spec(SPEC.replace("epochs = 2", "epochs = 3")))
    assert not set(base.tasks) & set(more_epochs.tasks)  # everything depends on the models
    for t in base.tasks.values():
        assert all(base.tasks[d].kind == "train" for d in t.deps)


# ---------------------------------------------------------------- numbers


def test_reference_numbers_match_the_library_called_directly(reference, digest):
    """A model and a campaign row recomputed with train() / run_campaign(); Δ with numpy."""
    from sar_core.analysis.campaign import run_campaign
    from sar_core.data.datasets import load_dataset
    from sar_core.data.io import load_checkpoint
    from sar_core.faults.model import FaultModel
    from sar_core.training.loop import TrainConfig, spec_for, train

    rows = read_table(reference / "results.parquet")
    row = next(r for r in rows if (r["task"], r["seed"], r["method"]) == ("moons-mlp", 1, "sam"))
    data = load_dataset("moons", seed=1, n_samples=200)
    model = train(spec_for(data, "mlp", (8,)), data, TrainConfig(method="sam", epochs=2, seed=1))
    ck = load_checkpoint(reference / "checkpoints" / f"{row['model_key']}.safetensors")
    assert digest(ck.model) == digest(model.model)
    fm = FaultModel(format="int8", ber=row["level"])
    res = run_campaign(model.model, data.X_test, data.y_test, fm, trials=8, seed=3)
    assert row["mean_accuracy"] == float(np.mean(res.accuracy))
    trials = read_table(reference / "trials.parquet")

    def acc(method):
        sel = [
            t
            for t in trials
            if (t["task"], t["seed"], t["method"], t["level"])
            == ("moons-mlp", 1, method, row["level"])
        ]
        return np.array([t["accuracy"] for t in sorted(sel, key=lambda t: t["trial"])])

    assert row["delta"] == pytest.approx(float(np.mean(acc("sam") - acc("sgd"))), abs=1e-12)


def test_report_pools_the_trials_of_all_seeds(reference):
    """Cells of the report equal summarize() of the concatenated per-trial values (numpy)."""
    from sar_core.analysis.campaign import summarize
    from sar_core.experiments.study.report import aggregate

    trials = read_table(reference / "trials.parquet")
    cells = aggregate(read_table(reference / "results.parquet"))
    assert len(cells) == 2 * 2 * 2
    for c in cells:

        def acc(method, c=c):
            sel = [
                t
                for t in trials
                if (t["task"], t["method"], t["level"]) == (c["task"], method, c["level"])
            ]
            return np.array(
                [t["accuracy"] for t in sorted(sel, key=lambda t: (t["seed"], t["trial"]))]
            )

        s = summarize(acc(c["method"]))
        assert c["acc"] == pytest.approx((s["mean"], *s["ci95"]), rel=1e-9, abs=1e-12)
        if not c["is_reference"]:
            d = summarize(acc(c["method"]) - acc("sgd"))
            assert c["delta"] == pytest.approx((d["mean"], *d["ci95"]), rel=1e-9, abs=1e-12)


def test_campaign_seed_can_follow_the_run_seed():
    from sar_core.experiments.study.plan import make_plan

    text = SPEC.replace("seed = 3", "seed = 1000\nadd_run_seed = true")
    plan = make_plan(parse_spec(text))
    seeds = {(c.seed, plan.tasks[c.key].inputs["seed"]) for c in plan.campaigns}
    assert seeds == {(0, 1000), (1, 1001)}
    _bad(SPEC.replace("seed = 3", "seed = 3\nadd_run_seed = 1"), "add_run_seed")


def test_rerun_skips_every_finished_task(reference, spec_path):
    before = len((reference / "completions.log").read_text().splitlines())
    res = run_study(spec_path, reference, executor="local", workers=1)
    assert res["cached"] == N_TASKS and res["ran"] == 0
    assert len((reference / "completions.log").read_text().splitlines()) == before


def test_two_workers_give_identical_tables(reference, spec_path, tmp_path):
    res = run_study(spec_path, tmp_path, executor="local", workers=2)
    assert res["failed"] == {} and res["workers"] == 2
    _same(_tables(reference), _tables(tmp_path))


@pytest.mark.slow
def test_ray_local_instance_gives_identical_tables(reference, spec_path, tmp_path):
    """Ray path on a local instance (2 CPUs), as CI runs it; shut down afterwards."""
    import ray  # requirements-dev.txt includes requirements-scale.txt: CI runs this path

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        res = run_study(spec_path, tmp_path, executor="ray")
    finally:
        ray.shutdown()
    assert res["failed"] == {} and res["ran"] == N_TASKS
    _same(_tables(reference), _tables(tmp_path))


def _kill_one_worker_after(log: Path, lines: int, killed: list) -> None:
    """SIGKILL one pool worker of this process once ``log`` has ``lines`` lines."""
    import multiprocessing

    deadline = time.time() + 120
    while time.time() < deadline and not killed:
        if log.is_file() and len(log.read_text().splitlines()) >= lines:
            kids = [p for p in multiprocessing.active_children() if p.pid]
            if kids:
                os.kill(kids[0].pid, signal.SIGKILL)
                killed.append(kids[0].pid)
        time.sleep(0.01)


def test_resume_after_sigkill_and_a_killed_worker_loses_and_repeats_nothing(
    reference, spec_path, tmp_path
):
    """Kill the whole run midway (SIGKILL to its process group), resume it while one of the
    resumed run's pool workers is SIGKILLed too: every task is stored exactly once, same tables."""
    import threading

    cmd = [sys.executable, "-m", "sar_core", "study", "--quiet", "run", str(spec_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*cmd, "--out", str(tmp_path), "--workers", "2"],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group: the kill takes the workers too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "completions.log"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_text().splitlines()) >= 6:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = {p.stem for p in (tmp_path / "cache").rglob("*.json")}
    assert 6 <= len(stored) < N_TASKS - 4, "the run was not interrupted midway"
    killed: list = []
    killer = threading.Thread(
        target=_kill_one_worker_after, args=(log, len(stored) + 2, killed), daemon=True
    )
    killer.start()
    res = run_study(spec_path, tmp_path, executor="local", workers=2)
    killer.join()
    assert killed, "no worker was killed"
    assert res["failed"] == {}
    assert res["cached"] == len(stored) and res["ran"] == N_TASKS - len(stored)
    keys = [line.split()[1] for line in log.read_text().splitlines()]
    assert len(set(keys)) == len(keys)  # no task stored twice (nothing ran again)
    results = {p.stem for p in (tmp_path / "cache").rglob("*.json")}
    assert len(results) == N_TASKS  # every task stored
    # the log line follows the result file: a SIGKILL between the two leaves a task stored (and
    # cached on resume) but unlogged; every task is in the log or was stored by the first run
    assert set(keys) | stored == results
    _same(_tables(reference), _tables(tmp_path))


def test_failed_task_is_reported_and_its_dependents_skipped(tmp_path):
    text = SPEC.replace("seeds = [0, 1]", "seeds = [0]").replace(
        'dataset = "moons"', 'dataset = "moons"\narch = "cnn"'
    )
    text = text.replace("sweep.ber = [0.01, 0.05]", "ber = 0.01")
    text = text.replace('[[methods]]\nmethod = "sam"\nrho = 0.05\n', "")
    res = run_study(parse_spec(text), tmp_path, executor="local", workers=1)
    failed = res["failed"]
    assert set(failed) == {
        "train moons-cnn seed 0 sgd",
        "sharpness moons-cnn seed 0 sgd",
        "campaign moons-cnn seed 0 sgd int8 0.01",
    }
    assert "image_shape" in failed["train moons-cnn seed 0 sgd"]
    assert failed["campaign moons-cnn seed 0 sgd int8 0.01"].startswith("skipped:")
    rows = read_table(tmp_path / "results.parquet")
    assert [(r["task"], r["method"]) for r in rows] == [("digits-mlp", "sgd")]


# ---------------------------------------------------------------- CLI


def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys):
    from sar_core.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text(SPEC.replace("rho = 0.05", "rhoo = 0.05"))
    for args, needle in (
        (["run", str(bad), "--out", str(tmp_path / "o")], "'rhoo'"),
        (["run", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "o")], "missing.toml"),
        (["run", str(bad), "--out", str(tmp_path), "--workers", "0"], "workers"),
        (["run", str(bad), "--out", str(tmp_path), "--executor", "dask"], "dask"),
        (["run", str(bad), "--out", str(tmp_path), "--address", "auto"], "--executor ray"),
        (
            [
                "run",
                str(bad),
                "--out",
                str(tmp_path),
                "--executor",
                "ray",
                "--address",
                "auto",
                "--workers",
                "2",
            ],
            "local Ray instance only",
        ),
        (["report", str(tmp_path), "--html", str(tmp_path / "r.html")], "results.parquet"),
    ):
        capsys.readouterr()
        assert main(["study", *args]) == 2, args
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and needle in err, (args, err)


def test_cli_module_imports_neither_torch_nor_ray():
    code = (
        "import sys, argparse, sar_core.cli.study as c; p = argparse.ArgumentParser(); "
        "c.add_arguments(p); print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- report


@pytest.mark.browser
def test_report_opens_offline_with_figures_and_spec(reference, spec_path, tmp_path):
    from playwright.sync_api import sync_playwright

    from sar_core.cli import main  # the project's CLI: python -m sar_core study report ...

    assert main(["study", "report", str(reference), "--html", str(tmp_path / "report.html")]) == 0
    errors, remote = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda q: remote.append(q.url) if not q.url.startswith("file:") else 0)
        page.goto((tmp_path / "report.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length")
        plots = page.eval_on_selector_all(
            ".js-plotly-plot", "els => els.map(e => e.querySelectorAll('.main-svg').length)"
        )
        traces = page.eval_on_selector_all(".js-plotly-plot", "els => els.map(e => e.data.length)")
        spec_shown = page.inner_text("#spec")
        browser.close()
    assert errors == [] and remote == []
    assert len(plots) == 2 * (1 + 1)  # per task: one BER curve figure, one sharpness scatter
    assert all(n > 0 for n in plots) and all(n > 0 for n in traces)
    assert spec_shown.strip() == spec_path.read_text().strip()


# ---------------------------------------------------------------- bundled specs


def test_bundled_specs_validate_and_suite_mirrors_sar_core_suite():
    """studies/suite.toml is sar_core.experiments.suite's held-out stage (regenerate: studies/make_suite.py)."""
    from sar_core.experiments.study.spec import load_spec
    from sar_core.experiments.suite_config import TASKS, WIDTHS, SuiteConfig
    from sar_core.experiments.suite_results import SCHEMA, load_results

    smoke = load_spec(ROOT / "studies" / "smoke.toml")
    assert len(smoke.tasks) * len(smoke.methods) * len(smoke.seeds) <= 8
    spec = load_spec(ROOT / "studies" / "suite.toml")
    res = load_results()
    cfg = SuiteConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in res["config"].items()
           if k not in ("grids",)}
    ) if res.get("schema") == SCHEMA else SuiteConfig()  # fmt: skip
    assert [(t.name, t.dataset, t.arch) for t in spec.tasks] == [
        (name, *TASKS[name]) for name in cfg.tasks
    ]
    assert all(t.widths == WIDTHS[t.arch] for t in spec.tasks)
    assert spec.seeds == cfg.heldout_seeds and spec.trials == cfg.trials_eval
    assert tuple(spec.methods) == cfg.entries and spec.reference == "sgd"
    for t in spec.tasks:
        assert [p.setting for p in t.faults] == list(cfg.targets)
        for m in spec.methods:
            assert (t.configs[m]["epochs"], t.configs[m]["lr"]) == (cfg.epochs, cfg.lr)


def test_dashboard_sweep_rows_make_a_report():
    """rows_from_sweep turns campaign.iter_sweep output into report rows, values unchanged."""
    from sar_core.analysis.sweeps import iter_sweep
    from sar_core.data.datasets import load_dataset
    from sar_core.data.models import build_model
    from sar_core.experiments.study.report import html_report, rows_from_sweep
    from sar_core.faults.model import FaultModel
    from sar_core.training.loop import spec_for

    data = load_dataset("moons", seed=0, n_samples=200)
    models = [build_model(spec_for(data, "mlp", (8,)), s) for s in (0, 1)]
    fm = FaultModel(format="int8", ber=0.01)
    levels = list(iter_sweep(models, data.X_test, data.y_test, fm, bers=[0.01, 0.1], trials=4))
    rows = rows_from_sweep(levels, models=["a", "b"], methods=["sgd", "sar"], fault="int8")
    assert [(r["method"], r["level"]) for r in rows] == [
        ("a", 0.01),
        ("b", 0.01),
        ("a", 0.1),
        ("b", 0.1),
    ]
    b = rows[3]
    s = levels[1][1][1]
    assert (b["mean_accuracy"], b["delta"]) == (s["mean_accuracy"], s["paired_difference"]["mean"])
    page = html_report(rows, title="Dashboard models")
    assert page.count('class="plotly-graph-div"') == 1 and "Dashboard models" in page


def test_suite_spec_reproduces_the_suite_heldout_stage_bit_exactly():
    """Models and campaigns of studies/make_suite.py's spec equal sar_core.experiments.suite's own code."""
    import importlib.util

    import torch

    from sar_core.analysis.campaign import compare
    from sar_core.data.io import load_checkpoint
    from sar_core.experiments.study import worker
    from sar_core.experiments.study.plan import make_plan
    from sar_core.experiments.suite_config import SuiteConfig, target_model, with_overrides
    from sar_core.experiments.suite_results import SCHEMA
    from sar_core.experiments.suite_spec import entry_config
    from sar_core.experiments.suite_tuning import _train
    from sar_core.faults.model import FaultModel

    spec_mod = importlib.util.spec_from_file_location("make_suite", ROOT / "studies/make_suite.py")
    make_suite = importlib.util.module_from_spec(spec_mod)
    spec_mod.loader.exec_module(make_suite)
    cfg = with_overrides(SuiteConfig(), epochs=2, trials_eval=5, tasks=("moons_mlp",))
    targets = {"int8": {"ber": 0.0562}, "int8_channel": {"ber": 0.1}, "float16": {"ber": 0.001}}
    prepared = {"task": "moons_mlp", "dataset": "moons", "arch": "mlp", "targets": targets}
    prepared["selected"] = {"asam_tuned": {"rho": 2.0}}
    results = {"schema": SCHEMA, "config": cfg.to_dict(), "tasks": [prepared]}
    plan = make_plan(parse_spec(make_suite.build(results, ("moons_mlp",))))
    assert {r.method for r in plan.models} == set(cfg.entries)
    for ref in [r for r in plan.models if r.seed == cfg.heldout_seeds[0]]:
        task = plan.tasks[ref.key]
        data = worker.load_data(task.inputs["data"])
        _, ck = worker.train_task(task.inputs, data)
        params = entry_config(ref.method, prepared)
        method = params.pop("method")
        fm = params.pop("fault_model", None)
        target = FaultModel.from_dict(fm) if fm else None
        theirs, _, d = _train("moons_mlp", ref.seed, cfg, method, params, target)
        mine = load_checkpoint(ck).model.state_dict()
        assert all(torch.equal(mine[k], v) for k, v in theirs.state_dict().items()), ref.method
        for setting in cfg.targets:
            c = next(
                c for c in plan.campaigns if c.model_key == ref.key and c.point.setting == setting
            )
            out = worker.campaign_task(plan.tasks[c.key].inputs, data, ck)
            fm_eval = target_model(setting, targets[setting]["ber"])
            r = compare([theirs], d.X_test, d.y_test, fm_eval, trials=5, seed=1000 + ref.seed)
            assert out["accuracy"] == list(r["results"][0].accuracy), (ref.method, setting)


def test_cross_task_summary_counts_and_clean_deltas(reference):
    """summary_rows against a recount from the per-cell intervals and the models table."""
    from sar_core.experiments.study.summary import aggregate, summary_rows, verdict

    cells = aggregate(read_table(reference / "results.parquet"))
    (row,) = summary_rows(cells)
    sam = [c for c in cells if c["method"] == "sam"]
    counts = [sum(verdict(c["delta"]) == v for c in sam) for v in ("win", "tie", "loss")]
    assert [row["wins"], row["ties"], row["losses"]] == counts and sum(counts) == 4
    assert row["mean_delta"] == pytest.approx(np.mean([c["delta"][0] for c in sam]))
    models = read_table(reference / "models.parquet")

    def clean(task, method):
        return np.mean(
            [m["clean_accuracy"] for m in models if (m["task"], m["method"]) == (task, method)]
        )

    diffs = [clean(t, "sam") - clean(t, "sgd") for t in ("digits-mlp", "moons-mlp")]
    assert row["mean_clean_delta"] == pytest.approx(np.mean(diffs))
    assert row["worst_clean_delta"] == pytest.approx(min(diffs))
