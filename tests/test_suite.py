"""The task suite in --quick mode: protocol rules, seed-level intervals (vs scipy, from the study's
own tables), results file, CSV and README table; the headline API on hand-made results."""

from __future__ import annotations

import csv
import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest

from sar_core.experiments.suite_config import TASKS, quick_config
from sar_core.experiments.suite_report import markdown_table
from sar_core.experiments.suite_results import RESULTS_PATH, load_results, result_rows
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """benchmarks/suite.py --quick, run in-process; returns (results, out path, stdout)."""
    spec = importlib.util.spec_from_file_location("suite_script", ROOT / "benchmarks" / "suite.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path_factory.mktemp("suite") / "suite"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert mod.main(["--quick", "--workers", "1", "--out", str(out)]) == 0
    return json.loads(out.with_suffix(".json").read_text()), out, buf.getvalue()


def test_targets_follow_the_rule(quick):
    res, _, _ = quick
    cfg = quick_config()
    for t in res["tasks"]:
        assert list(t["targets"]) == list(cfg.targets)
        for target, tg in t["targets"].items():
            grid = cfg.f16_grid if target == "float16" else cfg.int8_grid
            losses = [row[1] for row in tg["grid_losses"]]
            bers = [row[0] for row in tg["grid_losses"]]
            assert bers == list(grid[: len(bers)])  # ascending grid, stopped at the target
            assert all(x < 5 for x in losses[:-1])  # every smaller grid BER loses < 5 points
            assert tg["ber"] == bers[-1] and tg["sgd_loss_pt"] == losses[-1]
            assert tg["in_band"] == (5 <= losses[-1] <= 30)


def test_tuned_entries_use_tuning_seeds_only_and_their_grid(quick):
    res, _, _ = quick
    cfg = quick_config()
    for t in res["tasks"]:
        assert {r["seed"] for r in t["tuning"]} == set(cfg.tuning_seeds)
        for name in cfg.tuned:
            rows = [r for r in t["tuning"] if r["method"] == name]
            (param,) = {k for r in rows for k in r["params"]}
            values = sorted({r["params"][param] for r in rows})
            assert values == sorted(cfg.grids[name])
            mean = {
                v: np.mean([r["robust"] for r in rows if r["params"][param] == v]) for v in values
            }
            assert mean[t["selected"][name][param]] == max(mean.values())
    with pytest.raises(ValueError, match="heldout_seeds"):
        replace(cfg, heldout_seeds=(1, 2))  # a tuning seed cannot be reported as held-out


def _study_trials(out) -> dict:
    """Per (task, method, target, seed): the per-trial accuracies, read back from the study's
    own Parquet table (an independent path from the suite's in-memory collection)."""
    from sar_core.experiments.study.results import read_table

    acc: dict = {}
    for r in read_table(out.parent / (out.name + "_study") / "trials.parquet"):
        acc.setdefault((r["task"], r["method"], r["fault"], r["seed"]), []).append(
            (r["trial"], r["accuracy"])
        )
    return {k: np.array([a for _, a in sorted(v)]) for k, v in acc.items()}


def test_heldout_intervals_count_seeds_against_scipy(quick):
    from scipy import stats as sps

    res, out, _ = quick
    cfg = quick_config()
    trials = _study_trials(out)
    for t in res["tasks"]:
        for m, r in t["methods"].items():
            for target in cfg.targets:
                d = r[target]
                per_seed = [
                    100
                    * np.mean(
                        trials[(t["task"], m, target, s)] - trials[(t["task"], "sgd", target, s)]
                    )
                    for s in cfg.heldout_seeds
                ]
                assert d["delta_per_seed"] == pytest.approx(per_seed)
                assert d["delta"] == pytest.approx(np.mean(per_seed))
                if m == "sgd":
                    assert d["delta"] == 0 and d["verdict"] == "tie"
                    continue
                n = len(per_seed)
                lo, hi = sps.t.interval(0.95, n - 1, loc=np.mean(per_seed), scale=sps.sem(per_seed))
                if np.isfinite(lo):
                    assert d["ci95"] == pytest.approx([lo, hi])
                assert d["seed_ci"]["kind"] == "seed" and d["seed_ci"]["n"] == n
                assert d["verdict"] == ("win" if lo > 0 else "loss" if hi < 0 else "tie")
                pooled = np.concatenate(
                    [
                        100
                        * (
                            trials[(t["task"], m, target, s)]
                            - trials[(t["task"], "sgd", target, s)]
                        )
                        for s in cfg.heldout_seeds
                    ]
                )
                flo, fhi = sps.t.interval(
                    0.95, pooled.size - 1, loc=pooled.mean(), scale=sps.sem(pooled)
                )
                if np.isfinite(flo):
                    assert d["fault_ci95"] == pytest.approx([flo, fhi])
        assert t["pt_per_sample"] == pytest.approx(100 / t["n_test"])


def test_aimed_sar_trains_against_its_own_target(quick):
    from sar_core.experiments.study.results import read_table

    res, out, _ = quick
    models = read_table(out.parent / (out.name + "_study") / "models.parquet")
    for m in models:
        cfg = json.loads(m["config"])
        tgt = next(t for t in res["tasks"] if t["task"] == m["task"])["targets"]
        if m["method"].startswith("sar"):
            aim = m["method"].partition("@")[2] or "int8"
            fm = cfg["fault_model"]
            assert fm["ber"] == tgt[aim]["ber"]
            assert fm["format"] == ("float16" if aim == "float16" else "int8")
            assert (fm["granularity"] == "channel") == (aim == "int8_channel")


def test_summary_counts_seed_level_verdicts_and_outputs_agree(quick):
    from scipy import stats as sps

    res, out, stdout = quick
    for s, per in res["summary"].items():
        for m, row in per.items():
            expect = []
            for t in res["tasks"]:
                d = t["methods"][m][s]["delta_per_seed"]
                lo, hi = sps.t.interval(0.95, len(d) - 1, loc=np.mean(d), scale=sps.sem(d))
                expect.append("win" if lo > 0 else "loss" if hi < 0 else "tie")
            assert (row["wins"], row["ties"], row["losses"]) == tuple(
                expect.count(v) for v in ("win", "tie", "loss")
            )
            assert row["mean_delta"] == pytest.approx(
                np.mean([np.mean(t["methods"][m][s]["delta_per_seed"]) for t in res["tasks"]])
            )
    with out.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(len(result_rows(res, s)) for s in quick_config().targets)
    table = markdown_table(res, "int8")
    assert table in stdout
    assert len({r["label"] for r in rows if r["setting"] == "int8"}) == len(
        [m for m in res["tasks"][0]["methods"] if "@" not in m]
    )


def test_bundled_results_file_is_readable_when_present():
    with pytest.raises(ValueError, match="no such file"):
        load_results(RESULTS_PATH.with_name("missing.json"))
    if RESULTS_PATH.is_file():  # the bundled full run: every task
        res = load_results()
        assert [t["task"] for t in res["tasks"]] == list(TASKS)
        assert result_rows(res, "float16")
    with pytest.raises(ValueError, match="setting"):
        result_rows({"tasks": []}, "int4")


def _fake_results(per_seed: dict, clean: dict, heldout=(2, 3, 4), tuning=(0, 1)) -> dict:
    """A two-task results file in the schema-1 layout, numbers chosen by hand."""
    tasks = []
    for name in ("a_task", "b_task"):
        methods = {"sgd": {"clean_delta": 0.0, "int8": {"delta_per_seed": [0.0] * len(heldout)}}}
        for m, d in per_seed[name].items():
            methods[m] = {"clean_delta": clean[m], "int8": {"delta_per_seed": d}}
        tasks.append({"task": name, "targets": {"int8": {}}, "methods": methods})
    return {
        "schema": "sar-lab-suite/1",
        "config": {"heldout_seeds": list(heldout), "tuning_seeds": list(tuning)},
        "tasks": tasks,
    }


def test_headline_counts_seed_level_verdicts_against_scipy():
    from scipy import stats as sps

    from sar_core.experiments.suite_results import headline

    per_seed = {
        "a_task": {"x": [1.0, 2.0, 3.0], "y": [-5.0, 6.0, 1.0], "x@float16": [9.0, 9.0, 9.0]},
        "b_task": {"x": [4.0, 5.0, 6.5], "y": [-3.0, -2.5, -2.0], "x@float16": [1.0, 2.0, 3.0]},
    }
    res = _fake_results(per_seed, {"x": -0.5, "y": 0.25, "x@float16": 0.0})
    rows = headline(res, "int8", task="a_task")
    assert [r["method"] for r in rows] == ["x", "y"]  # aimed at float16: not under int8
    x, y = rows
    assert x["mean_delta"] == pytest.approx((2.0 + 15.5 / 3) / 2)
    assert y["mean_delta"] == pytest.approx((2 / 3 - 2.5) / 2)
    # reference: scipy's t interval over the per-seed means; lo > 0 win, hi < 0 loss
    for r, name in ((x, "x"), (y, "y")):
        refs = []
        for t in ("a_task", "b_task"):
            d = per_seed[t][name]
            lo, hi = sps.t.interval(0.95, len(d) - 1, loc=np.mean(d), scale=sps.sem(d))
            refs.append((lo, hi))
        expect = [("win" if lo > 0 else "loss" if hi < 0 else "tie") for lo, hi in refs]
        assert (r["wins"], r["ties"], r["losses"]) == tuple(
            expect.count(v) for v in ("win", "tie", "loss")
        )
        assert r["task_delta"]["lo"] == pytest.approx(refs[0][0])
        assert r["task_delta"]["hi"] == pytest.approx(refs[0][1])
        assert r["task_delta"]["n"] == 3 and r["task_delta"]["kind"] == "seed"
        assert r["in_sample"] is False and r["task"] == "a_task"
    assert (x["wins"], x["ties"], y["ties"], y["losses"]) == (1, 1, 1, 1)  # by hand, t=4.30
    assert x["mean_clean_delta"] == -0.5
    assert headline(res, "int8")[0]["task_delta"] is None
    # a tuned-on seed among the reported ones is flagged in-sample
    assert headline(_fake_results(per_seed, {"x": 0, "y": 0, "x@float16": 0}, tuning=(2,)), "int8")[
        0
    ]["in_sample"]
    with pytest.raises(ValueError, match="target"):
        headline(res, "int4")
    with pytest.raises(ValueError, match="task"):
        headline(res, "int8", task="nope")


def test_load_results_rejects_non_suite_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_results(bad)
    bad.write_text('{"schema": "other"}')
    with pytest.raises(ValueError, match="schema"):
        load_results(bad)


def test_headline_on_the_bundled_results():
    from sar_core.experiments.suite_results import headline

    assert RESULTS_PATH.is_file(), "benchmarks/results/suite.json is bundled; the lesson reads it"
    res = load_results()
    for target in res["tasks"][0]["targets"]:
        rows = headline(res, target, task=res["tasks"][0]["task"])
        assert rows and all(r["label"] for r in rows)
        assert [r["mean_delta"] for r in rows] == sorted((r["mean_delta"] for r in rows), reverse=1)
        n = len(res["tasks"])
        assert all(r["wins"] + r["ties"] + r["losses"] == n for r in rows)
        assert len({r["label"] for r in rows}) == len(rows)  # labels tell the methods apart


def test_a_rerun_resumes_from_the_study_directory(quick):
    """Stage 1 is read back per task and every held-out model comes from the study cache."""
    from sar_core.experiments.suite import run_suite

    res, out, _ = quick
    events = []
    again = run_suite(quick_config(), out.parent / (out.name + "_study"), on_event=events.append)
    assert not [e for e in events if e.get("stage") == "tuning"]  # no task re-tuned
    assert not [e for e in events if e.get("status") == "ok"]  # no study task re-run
    # as the results file stores them (SGD's own seed interval is NaN: NaN != NaN in a dict)
    assert json.dumps(again["tasks"][0]["methods"]) == json.dumps(res["tasks"][0]["methods"])


def test_a_failed_heldout_task_names_its_error(quick, monkeypatch):
    """The study's failures (label -> error) reach the user: count, labels and error text."""
    import sar_core.experiments.study.run as study_run
    from sar_core.experiments.suite import run_suite

    _, out, _ = quick
    failed = {
        "digits_mlp/sar/seed2": "TypeError: where(): bad 'other'",
        "b": "x",
        "c": "y",
        "d": "z",
    }
    monkeypatch.setattr(study_run, "run_study", lambda *a, **k: {"failed": failed})
    with pytest.raises(RuntimeError) as err:
        run_suite(quick_config(), out.parent / (out.name + "_study"))
    msg = str(err.value)
    assert "4 failed tasks" in msg
    assert "digits_mlp/sar/seed2: TypeError: where(): bad 'other'" in msg
    assert "d: z" not in msg  # the first three only


def test_protocol_command_reruns_the_bundled_suite_settings():
    """The README's 'Run:' command carries every setting of the results file that differs from
    SuiteConfig's defaults (the bundled run used 12 epochs and 30 trials, not 20 and 40)."""
    import json

    from sar_core.experiments.suite_config import SuiteConfig
    from sar_core.experiments.suite_report import protocol_text, suite_command

    res = json.loads(RESULTS_PATH.read_text())
    cmd = suite_command(res).split()
    c, d = res["config"], SuiteConfig()
    for opt, key in (("--epochs", "epochs"), ("--trials", "trials_eval")):
        if c[key] != getattr(d, key):
            assert cmd[cmd.index(opt) + 1] == str(c[key])
        else:
            assert opt not in cmd
    assert f"Run: `{suite_command(res)}`" in protocol_text(res)
    plain = {**res, "config": {**c, "epochs": d.epochs, "trials_eval": d.trials_eval}}
    assert suite_command(plain) == f"python benchmarks/suite.py --workers {res['workers']}"
