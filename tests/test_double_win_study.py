"""The double-win table as a study: the `report` task kind, its tables and its seed-level summary.

A tiny spec (digits MLP, 3 methods, 2 seeds, 2 epochs, 6 trials, attack budget 40, both
mitigations) runs once through ``run_study``. Its per-model numbers are checked against an
independent path: ``python -m sar_core report`` in a separate process on the study's own
checkpoint files with the same fault model, trials and seed (the CLI loads each checkpoint's data
from its metadata, not from the study's inputs). The faulty accuracies are also checked against
the study's campaign tasks (``run_campaign`` per model, not the report's paired ``compare``), a
rerun must be served from the cache, and the summary's interval is checked against scipy.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sar_core.experiments.study.cache import Store
from sar_core.experiments.study.double_win import report_rows, summary_rows
from sar_core.experiments.study.plan import make_plan
from sar_core.experiments.study.results import read_table
from sar_core.experiments.study.run import run_study
from sar_core.experiments.study.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
TRIALS, BUDGET = 6, 40
SPEC = f"""
name = "dw-tiny"
seeds = [2, 3]
[train]
epochs = 2
[[methods]]
method = "sgd"
[[methods]]
method = "sar"
[[methods]]
method = "clip"
[[tasks]]
dataset = "digits"
arch = "mlp"
widths = [16]
[[faults]]
name = "int8"
format = "int8"
ber = 0.01
[campaign]
trials = {TRIALS}
seed = 5
add_run_seed = true
[sharpness]
measure = "none"
[report]
mitigations = ["range", "protect"]
attack_budget = {BUDGET}
"""
# columns the report computes deterministically (latency is measured: left out)
SAME = (
    "clean_accuracy",
    "deployed_accuracy",
    "fault_accuracy",
    "fault_ci95",
    "attack_flips",
    "extra_bits",
    "extra_params",
    "extra_ops",
    "base_macs",
    "train_cost_ratio",
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("dw")
    spec = parse_spec(SPEC)
    plan = make_plan(spec)
    res = run_study(spec, out, workers=1, plan=plan)
    assert res["failed"] == {}
    assert res["report"] == 2 and res["ran"] == res["tasks"] == 2 * 3 * 2 + 2
    return out, spec, plan, res


def _cli_report(paths: list[Path], seed: int) -> dict:
    cmd = [
        sys.executable, "-m", "sar_core", "report", "--models", *map(str, paths),
        "--format", "int8", "--bits", "all", "--ber", "0.01", "--trials", str(TRIALS),
        "--seed", str(seed), "--attack-budget", str(BUDGET), "--mitigations", "range,protect",
        "--json", "--quiet",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _close(a, b) -> bool:
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-12) or (a != a and b != b)
    return a == b


def test_report_task_equals_the_report_cli_on_the_same_checkpoints(study):
    out, spec, plan, _ = study
    store = Store(out)
    for ref in plan.reports:
        stored = store.load(plan.tasks[ref.key])
        paths = [store.checkpoint_path(k) for k in ref.model_keys]
        cli = _cli_report(paths, seed=ref.seed + 5)  # add_run_seed: campaign seed 5 + run seed
        mine = stored["rows"] + stored["mitigations"]
        theirs = cli["rows"] + cli["mitigations"]
        assert [r["method"] for r in mine] == [r["method"] for r in theirs]
        assert [r["method"] for r in mine][:3] == ["sgd", "sar", "clip"]
        for a, b in zip(mine, theirs):
            for k in SAME:
                assert _close(a[k], b[k]), (ref.seed, a["method"], k, a[k], b[k])
            for k in ("mean", "ci95"):
                assert _close(a["paired_difference"][k], b["paired_difference"][k])
            for k in ("flips", "stop_reason", "random_same_flips"):
                assert _close((a["attack"] or {}).get(k), (b["attack"] or {}).get(k)), k
        assert stored["trials"] == cli["trials"] == TRIALS
        assert stored["attack_settings"] == cli["attack_settings"]


def test_report_faulty_accuracy_matches_the_campaign_tasks(study):
    """The report pairs models with ``compare``; each campaign task runs its model alone with
    ``run_campaign`` at the same seed: the same patterns must give the same accuracies."""
    out, _, plan, _ = study
    results = read_table(out / "results.parquet")
    camp = {(r["seed"], r["method"]): r["mean_accuracy"] for r in results}
    rows = [r for r in report_rows(plan, Store(out)) if r["mitigation"] is None]
    assert len(rows) == len(camp) == 6
    for r in rows:
        assert math.isclose(r["fault_accuracy"], camp[(r["seed"], r["name"])], abs_tol=1e-12)


def test_rerun_is_served_from_the_cache(study):
    """The same plan again (its keys fingerprint the code, which a busy working tree may change
    meanwhile): every task, the reports included, comes from the cache."""
    out, spec, plan, first = study
    again = make_plan(parse_spec(SPEC))
    assert {k: t.kind for k, t in again.tasks.items()} == {
        k: t.kind for k, t in make_plan(parse_spec(SPEC)).tasks.items()
    }  # keys are a function of the spec and the code
    before = read_table(out / "double_win.parquet")
    res = run_study(spec, out, workers=1, plan=plan)
    assert res["ran"] == 0 and res["cached"] == first["tasks"] and res["failed"] == {}
    assert read_table(out / "double_win.parquet") == before
    log = Store(out).completions()
    assert sum(kind == "report" for kind, _, _ in log) == 2  # stored once, never run again


def test_double_win_table_rows(study):
    out, _, plan, _ = study
    table = read_table(out / "double_win.parquet")
    assert {r["name"] for r in table} == {"sgd", "sar", "clip", "sgd+range", "sgd+tmr"}
    assert len(table) == 2 * 5
    assert not {"latency_ratio", "latency_ms", "train_cost_ratio"} & set(table[0])
    sgd = [r for r in table if r["name"] == "sgd"]
    assert all(r["delta"] == 0.0 and r["extra_bits"] == 0 for r in sgd)
    from torch import nn

    from sar_core.data.io import load_checkpoint

    # range restriction: one float32 [low, high] pair per activation module of the SGD model
    model = load_checkpoint(Store(out).checkpoint_path(plan.reports[0].model_keys[0])).model
    acts = sum(isinstance(m, (nn.ReLU, nn.Tanh, nn.GELU)) for m in model.children())
    rng = [r for r in table if r["name"] == "sgd+range"]
    assert acts >= 1 and all(r["extra_bits"] == acts * 2 * 32 for r in rng)


def test_summary_interval_is_student_t_over_seed_means(study):
    from scipy import stats

    out, _, plan, _ = study
    rows = report_rows(plan, Store(out))
    summary = {s["name"]: s for s in summary_rows(rows)}
    assert summary["sgd"]["delta"] is None and summary["sgd"]["verdict"] is None
    for name in ("sar", "clip", "sgd+tmr"):
        per_seed = [r["delta"] for r in sorted(rows, key=lambda r: r["seed"]) if r["name"] == name]
        s = summary[name]
        assert s["delta_per_seed"] == per_seed and s["seeds"] == [2, 3]
        m = np.mean(per_seed)
        half = stats.t.ppf(0.975, len(per_seed) - 1) * np.std(per_seed, ddof=1) / np.sqrt(2)
        d = s["delta"]
        assert d["kind"] == "seed" and d["n"] == 2
        assert math.isclose(d["mean"], m, abs_tol=1e-12)
        assert math.isclose(d["lo"], m - half, abs_tol=1e-9)
        assert math.isclose(d["hi"], m + half, abs_tol=1e-9)
        expect = "win" if m - half > 0 else "loss" if m + half < 0 else "tie"
        assert s["verdict"] == expect
        clean = np.mean([r["clean_accuracy"] for r in rows if r["name"] == name])
        assert math.isclose(s["clean_accuracy"], clean, abs_tol=1e-12)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ("rhoo = 1", "Invalid key 'rhoo' in report"),
        ('mitigations = ["ecc"]', "Invalid mitigations='ecc'"),
        ('mitigations = "range"', "Invalid report.mitigations='range'"),
        ('base = "adam"', "Invalid base='adam'"),
        ("attack_budget = 0", "max_flips=0"),
        ("attack_target = 1.5", "target_accuracy=1.5"),
    ],
)
def test_bad_report_settings_are_named(extra, needle):
    text = SPEC[: SPEC.index("[report]")] + f"[report]\n{extra}\n"
    with pytest.raises(ValueError, match="report") as e:
        parse_spec(text)
    assert needle in str(e.value)


def test_report_reference_comes_first_and_base_is_a_method():
    text = SPEC.replace("[campaign]\n", '[campaign]\nreference = "clip"\n').replace(
        "[report]\n", '[report]\nbase = "sar"\n'
    )
    plan = make_plan(parse_spec(text))
    inputs = plan.tasks[plan.reports[0].key].inputs
    assert inputs["methods"] == ["clip", "sgd", "sar"]
    assert inputs["report"]["base"] == "sar"
    by_method = {m.method: m.key for m in plan.models if m.seed == 2}
    assert list(plan.reports[0].model_keys) == [by_method[m] for m in ("clip", "sgd", "sar")]


def test_no_report_table_no_report_tasks():
    text = SPEC[: SPEC.index("[report]")]
    plan = make_plan(parse_spec(text))
    assert plan.reports == [] and plan.count("report") == 0


def _synthetic_rows() -> list[dict]:
    """Report rows of 3 seeds: 'gain' gains 2-4 points for free, 'costly' the same with extra
    bits, 'drop' gains but loses 3-5 clean points, 'noisy' gains on one seed and loses on two."""
    spec = {  # name: (per-seed Δ, per-seed clean change, extra bits)
        "gain": ([0.02, 0.03, 0.04], [0.0, 0.001, -0.001], 0),
        "costly": ([0.02, 0.03, 0.04], [0.0, 0.0, 0.0], 64),
        "drop": ([0.02, 0.03, 0.04], [-0.03, -0.04, -0.05], 0),
        "noisy": ([0.05, -0.01, -0.02], [0.0, 0.0, 0.0], 0),
    }
    rows = []
    for i, seed in enumerate((2, 3, 4)):
        base = {"task": "t", "seed": seed, "fault": "int8", "level": 0.01, "level_label": "0.01"}
        common = {"reference": "sgd", "attack_flips": 10 + i, "attack_stop": "target"}
        common |= {"random_same_flips_accuracy": 0.9, "extra_params": 0, "extra_ops": 0}
        common |= {"latency_ratio": 1.0, "latency_ms": 1.0, "train_cost_ratio": 1.0}
        rows.append(
            {**base, **common, "name": "sgd", "optimizer": "sgd", "mitigation": None}
            | {"clean_accuracy": 0.95, "deployed_accuracy": 0.95, "fault_accuracy": 0.80}
            | {"delta": 0.0, "extra_bits": 0}
        )
        for name, (d, c, bits) in spec.items():
            rows.append(
                {**base, **common, "name": name, "optimizer": name, "mitigation": None}
                | {"clean_accuracy": 0.95 + c[i], "deployed_accuracy": 0.95}
                | {"fault_accuracy": 0.80 + d[i], "delta": d[i], "extra_bits": bits}
            )
    return rows


def test_double_win_judgement_and_claims():
    from sar_core.experiments.study.double_win import claims

    summary = summary_rows(_synthetic_rows())
    by = {r["name"]: r for r in summary}
    assert by["sgd"]["double_win"] is None
    assert by["gain"]["double_win"] is True and by["gain"]["clean_verdict"] == "tie"
    assert by["costly"]["double_win"] is False and by["costly"]["verdict"] == "win"
    assert by["drop"]["double_win"] is False and by["drop"]["clean_verdict"] == "loss"
    assert by["noisy"]["verdict"] == "tie" and by["noisy"]["double_win"] is False
    text = claims(summary)
    assert "no extra bits or operations): gain; clean" in text
    assert "clean accuracy measurably lost: drop." in text
    assert "no measurable difference: noisy (+0.7)" in text
    # most robust: the highest mean accuracy under faults (gain, costly and drop tie at 83.0)
    best = max((r for r in summary), key=lambda r: r["fault_accuracy"])
    assert (
        f"faults among the trained models: {best['name']} ({100 * best['fault_accuracy']:.1f} %"
        in text
    )


def test_readme_verdicts_match_the_result_file_recomputed_with_scipy():
    """The README's who-wins sentences against the per-seed rows of double_win.json, with the
    seed-level interval recomputed here (scipy t over the per-seed paired means)."""
    import re

    from scipy import stats

    rows = json.loads((ROOT / "benchmarks" / "results" / "double_win.json").read_text())["rows"]
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- generated:double-win-claims -->")[1].split("<!-- /generated")[0]
    paragraphs = {m[1]: m[2] for m in re.finditer(r"\*\*(\w+)\*\*: (.*)", block)}
    assert set(paragraphs) == {r["task"] for r in rows}
    for task, text in paragraphs.items():
        beat = re.search(r"largest gain first \(Δ in points\): (.*?); no measurable", text)[1]
        for name in {r["name"] for r in rows if r["task"] == task} - {"sgd"}:
            d = [r["delta"] for r in rows if r["task"] == task and r["name"] == name]
            half = stats.t.ppf(0.975, len(d) - 1) * np.std(d, ddof=1) / np.sqrt(len(d))
            listed = f"{name} ({100 * np.mean(d):+.1f})"
            assert (listed in beat.split(", ")) == (np.mean(d) - half > 0), (task, name)


def test_html_report_has_the_double_win_section(study, tmp_path):
    import html as html_lib
    import re

    from sar_core.experiments.study.report import write_report

    out, _, plan, _ = study
    write_report(out, tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text()
    section = text.split("<h2>Double win</h2>")[1].split("</table>")[0]
    cells = [
        [html_lib.unescape(re.sub("<[^>]+>", "", c)) for c in re.findall(r"<td>(.*?)</td>", tr)]
        for tr in re.findall(r"<tr>(.*?)</tr>", section)
        if "<td>" in tr
    ]
    summary = summary_rows(report_rows(plan, Store(out)))
    assert [c[1] for c in cells] == [r["name"] for r in summary]
    for c, r in zip(cells, summary):
        assert c[3] == f"{100 * r['fault_accuracy']:.1f}"
        assert c[5] == (r["verdict"] or "—")
        assert c[-1] == {None: "—", True: "yes", False: "no"}[r["double_win"]]


@pytest.mark.slow
def test_ray_local_instance_gives_the_same_double_win_table(study, tmp_path):
    """The report task on Ray (every method's model passed as ObjectRefs) stores the same
    deterministic numbers as the local pool."""
    import ray

    out, spec, _, _ = study
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        res = run_study(spec, tmp_path, executor="ray")
    finally:
        ray.shutdown()
    assert res["failed"] == {} and res["report"] == 2

    a, b = (read_table(d / "double_win.parquet") for d in (out, tmp_path))
    assert len(a) == len(b) == 10
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            assert ra[k] == rb[k] or (ra[k] != ra[k] and rb[k] != rb[k]), (k, ra[k], rb[k])


def test_caption_names_every_setting_that_is_not_a_library_default():
    from sar_core.experiments.study.double_win import non_defaults
    from sar_core.training.loop import TrainConfig

    plain = TrainConfig(method="sar", seed=2, epochs=40).to_dict()
    tuned = TrainConfig(method="sam", seed=2, epochs=40, rho=0.2).to_dict()
    assert non_defaults({"t/sar": plain, "t/sam": tuned}) == {"t/sam": {"rho": 0.2}}
    plan = make_plan(parse_spec(SPEC))
    configs = {f"{m.task}/{m.method}": plan.tasks[m.key].inputs["config"] for m in plan.models}
    assert non_defaults(configs) == {}  # the tiny spec changes epochs only
