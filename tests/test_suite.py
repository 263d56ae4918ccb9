"""The task suite in --quick mode: protocol rules, results file, CSV and README table."""

from __future__ import annotations

import csv
import importlib.util
import json

import numpy as np
import pytest

from sar_core.experiments.suite import (
    RESULTS_PATH,
    TASKS,
    load_results,
    quick_config,
    result_rows,
    summarize_suite,
)
from sar_core.experiments.suite_report import markdown_table
from sar_core.stats.intervals import summarize
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
        for fmt, grid in (("int8", cfg.int8_grid), ("float16", cfg.f16_grid)):
            tg = t["targets"][fmt]
            losses = [row[1] for row in tg["grid_losses"]]
            bers = [row[0] for row in tg["grid_losses"]]
            assert bers == list(grid[: len(bers)])  # ascending grid, stopped at the target
            assert all(x < 5 for x in losses[:-1])  # every smaller grid BER loses < 5 points
            assert tg["ber"] == bers[-1] and tg["sgd_loss_pt"] == losses[-1]
            assert tg["in_band"] == (5 <= losses[-1] <= 30)


def test_selection_uses_tuning_seeds_only_and_the_grids(quick):
    res, _, _ = quick
    cfg = quick_config()
    for t in res["tasks"]:
        assert {r["seed"] for r in t["tuning"]} == set(cfg.tuning_seeds)
        for m, (name, values) in cfg.grids.items():
            if m not in cfg.methods:
                continue
            rows = [r for r in t["tuning"] if r["method"] == m]
            assert sorted({r["params"][name] for r in rows}) == sorted(values)  # same budget
            # the selected value has the best mean robust accuracy over the tuning seeds
            mean = {
                v: np.mean([r["robust"] for r in rows if r["params"][name] == v]) for v in values
            }
            assert mean[t["selected"][m][name]] == max(mean.values())
        assert t["selected"]["sar_clip"]["rho"] == t["selected"]["sar"]["rho"]
        assert t["selected"]["sar_clip"]["w_max"] == t["selected"]["clip"]["w_max"]
        assert t["selected"]["randbet"]["w_max"] == t["selected"]["clip"]["w_max"]


def test_heldout_deltas_are_paired_and_pooled(quick):
    res, _, _ = quick
    for t in res["tasks"]:
        sgd = t["methods"]["sgd"]
        assert sgd["int8"]["delta"] == 0 and sgd["clean_delta"] == 0
        assert len(sgd["clean_per_seed"]) == len(quick_config().heldout_seeds)
        for r in t["methods"].values():
            for s in ("int8", "float16"):
                d = r[s]
                lo, hi = d["ci95"]
                assert d["delta"] == pytest.approx(np.mean(d["delta_per_seed"]))  # equal n per seed
                if np.isfinite(lo):
                    assert lo <= d["delta"] <= hi
                    assert d["verdict"] == ("win" if lo > 0 else "loss" if hi < 0 else "tie")
        assert t["pt_per_sample"] == pytest.approx(100 / t["n_test"])


def test_summary_counts_verdicts_and_outputs_agree(quick):
    res, out, stdout = quick
    again = summarize_suite(res["tasks"])
    assert again == res["summary"]
    for s, per in res["summary"].items():
        for m, row in per.items():
            verdicts = [t["methods"][m][s]["verdict"] for t in res["tasks"]]
            assert (row["wins"], row["ties"], row["losses"]) == (
                verdicts.count("win"),
                verdicts.count("tie"),
                verdicts.count("loss"),
            )
    with out.with_suffix(".csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result_rows(res, "int8")) + len(result_rows(res, "float16"))
    table = markdown_table(res, "int8")
    assert table in stdout
    assert table.count("\n| moons_mlp (200) |") == len(res["tasks"][0]["methods"])


def test_ci_is_the_t_interval_of_the_pooled_differences():
    fake = {"a": [[0.5, 0.7, 0.6], [0.4, 0.5, 0.9]], "sgd": [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]}
    from sar_core.experiments.suite import _delta

    d = _delta(fake, "sgd", "a")
    pooled = 100 * (np.array([0.5, 0.7, 0.6, 0.4, 0.5, 0.9]) - 0.5)
    assert d["ci95"] == pytest.approx(summarize(pooled)["ci95"])
    assert d["delta_per_seed"] == pytest.approx([10.0, 10.0])


def test_bundled_results_file_is_readable_when_present():
    with pytest.raises(ValueError, match="no such file"):
        load_results(RESULTS_PATH.with_name("missing.json"))
    if RESULTS_PATH.is_file():  # the bundled full run: every task and both settings
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

    from sar_core.experiments.suite import headline

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
    from sar_core.experiments.suite import headline

    if not RESULTS_PATH.is_file():
        pytest.skip("no bundled results")
    res = load_results()
    for target in res["tasks"][0]["targets"]:
        rows = headline(res, target, task=res["tasks"][0]["task"])
        assert rows and all(r["label"] for r in rows)
        assert [r["mean_delta"] for r in rows] == sorted((r["mean_delta"] for r in rows), reverse=1)
        n = len(res["tasks"])
        assert all(r["wins"] + r["ties"] + r["losses"] == n for r in rows)
        assert len({r["label"] for r in rows}) == len(rows)  # labels tell the methods apart
