"""CLI contract: JSON keys of every subcommand, determinism per seed, exit codes, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, state_digest

from sar_core.data.io import load_checkpoint

TRAIN_KEYS = {"clean_accuracy", "method", "epochs", "train_seconds", "path"}
INJECT_KEYS = {
    "clean_accuracy",
    "deployed_accuracy",
    "mean_accuracy",
    "std",
    "ci95",
    "trials",
    "mean_flips",
    "n_sites",
}
FLIP_KEYS = {"value_before", "value_after", "bits_before", "bits_after", "field"}


def _json(run, *argv) -> dict:
    rc, out, err = run(*argv, "--json", "--quiet")
    assert rc == 0, err
    assert out.endswith("\n") and out.count("\n") == 1  # exactly one JSON object on stdout
    return json.loads(out)


# ---------------------------------------------------------------- flip ------------------------


@pytest.mark.parametrize(
    "fmt, value, bit", [("float32", "0.1", "30"), ("float16", "-1.5", "3"), ("int8", "0.5", "7")]
)
def test_flip_keys_and_values(cli, fmt, value, bit):
    out = _json(cli, "flip", "--format", fmt, "--value", value, "--bit", bit)
    assert set(out) >= FLIP_KEYS
    assert len(out["bits_before"]) == {"float32": 32, "float16": 16, "int8": 8}[fmt]
    flipped = [i for i, (a, b) in enumerate(zip(out["bits_before"], out["bits_after"])) if a != b]
    assert flipped == [len(out["bits_before"]) - 1 - int(bit)]  # MSB-first strings
    if fmt == "float32":
        ref = (np.float32(0.1).view(np.uint32) ^ np.uint32(1 << 30)).view(np.float32)
        assert out["value_after"] == float(ref) and out["field"] == "exponent"


def test_text_output_without_json(cli):
    rc, out, _ = cli("flip", "--format", "float32", "--value", "1", "--bit", "31")
    assert rc == 0
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert json.loads(lines["value_after"]) == -1.0 and json.loads(lines["field"]) == "sign"


def test_help_exits_zero(cli):
    rc, out, _ = cli("--help")
    assert rc == 0 and "train" in out and "inject" in out


# ---------------------------------------------------------------- train -----------------------


def test_train_keys_and_same_seed_gives_identical_output(cli, tmp_path):
    outs, paths = [], []
    for i in range(2):
        p = tmp_path / f"m{i}.safetensors"
        argv = ("train", "--dataset", "digits", "--arch", "mlp", "--method", "sar", "--rho", "0.2")
        outs.append(_json(cli, *argv, "--epochs", "2", "--widths", "16", "--seed", "4", "--out", p))
        paths.append(p)
    a, b = outs
    assert set(a) >= TRAIN_KEYS
    assert a["method"] == "sar" and a["epochs"] == 2 and a["path"] == str(paths[0])
    assert a["train_seconds"] >= 0
    drop = {"train_seconds", "path"}
    assert {k: v for k, v in a.items() if k not in drop} == {
        k: v for k, v in b.items() if k not in drop
    }
    ca, cb = load_checkpoint(paths[0]), load_checkpoint(paths[1])
    assert state_digest(ca.model) == state_digest(cb.model)  # checkpoint tensors identical
    assert ca.meta["config"] == cb.meta["config"] and ca.meta["config"]["rho"] == 0.2
    assert ca.meta["metrics"]["clean_accuracy"] == a["clean_accuracy"]


def test_train_cnn_with_default_method(cli, tmp_path):
    out = _json(
        cli,
        "train",
        "--arch",
        "cnn",
        "--epochs",
        "1",
        "--widths",
        "4,8",
        "--out",
        tmp_path / "c.safetensors",
    )
    assert out["method"] == "sgd" and load_checkpoint(out["path"]).spec.arch == "cnn"


# ---------------------------------------------------------------- inject / compare / sweep ----


@pytest.fixture(scope="module")
def mlp_paths(demo_paths):
    return str(demo_paths["digits_mlp_sgd"]), str(demo_paths["digits_mlp_sar"])


@pytest.mark.parametrize(
    "fault",
    [
        ("--format", "int8", "--bits", "0-7", "--ber", "0.01"),
        ("--format", "float32", "--bits", "30,31", "--count", "3"),
        ("--format", "bfloat16", "--bits", "sign", "--ber", "0.001"),
        ("--format", "float16", "--bits", "exponent", "--count", "2", "--layers", "fc1,out"),
        ("--format", "float32", "--bits", "mantissa", "--ber", "0.001", "--include-bias"),
    ],
)
def test_inject_keys_and_determinism(cli, mlp_paths, fault):
    argv = ("inject", "--model", mlp_paths[0], *fault, "--trials", "4", "--seed", "2")
    a = _json(cli, *argv)
    assert set(a) >= INJECT_KEYS
    assert a["trials"] == 4 and len(a["ci95"]) == 2 and a["ci95"][0] <= a["ci95"][1]
    assert 0.0 <= a["mean_accuracy"] <= 1.0 and a["n_sites"] > 0
    if "--count" in fault:
        assert a["mean_flips"] == float(fault[fault.index("--count") + 1])
    assert _json(cli, *argv) == a  # same seed -> identical JSON


def test_inject_reports_progress_on_stderr_only(cli, mlp_paths):
    rc, out, err = cli(
        "inject",
        "--model",
        mlp_paths[0],
        "--format",
        "int8",
        "--count",
        "1",
        "--trials",
        "3",
        "--json",
    )
    assert rc == 0 and "inject" in err and "3/3" in err
    json.loads(out)


def test_compare_keys_and_pairing(cli, mlp_paths):
    argv = ("compare", "--models", *mlp_paths, "--format", "int8", "--ber", "0.02")
    out = _json(cli, *argv, "--trials", "5", "--seed", "1")
    assert len(out["results"]) == 2 and len(out["paired_difference"]) == 2
    for path, r in zip(mlp_paths, out["results"]):
        assert {"path", "mean_accuracy", "ci95"} <= set(r) and r["path"] == path
    assert [r["method"] for r in out["results"]] == ["sgd", "sar"]
    first, second = out["paired_difference"]
    assert {"mean", "ci95"} <= set(second) and first["mean"] == 0.0
    diff = out["results"][1]["mean_accuracy"] - out["results"][0]["mean_accuracy"]
    assert second["mean"] == pytest.approx(diff, abs=1e-9)
    assert _json(cli, *argv, "--trials", "5", "--seed", "1") == out


def test_sweep_keys(cli, mlp_paths):
    argv = ("sweep", "--models", *mlp_paths, "--format", "int8", "--ber", "0.001,0.01,0.05")
    out = _json(cli, *argv, "--trials", "3")
    assert out["ber"] == [0.001, 0.01, 0.05]
    assert len(out["models"]) == 2
    for m in out["models"]:
        for key in ("mean_accuracy", "ci95_low", "ci95_high"):
            assert len(m[key]) == 3
    assert _json(cli, *argv, "--trials", "3") == out


# ---------------------------------------------------------------- real processes --------------


SUBPROCESS_CASES = {
    "ok_flip": (["flip", "--format", "float32", "--value", "0.1", "--bit", "30", "--json"], 0),
    "bad_ber": (["inject", "--model", "assets/digits_mlp_sgd.safetensors", "--ber", "1.5"], 2),
    "bad_model": (["compare", "--models", "README.md", "--ber", "0.1"], 2),
}


@pytest.fixture(scope="module")
def processes():
    """Run every case as `python -m sar_core ...`, all at once (each pays the torch import)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {
        k: subprocess.Popen(
            [sys.executable, "-m", "sar_core", *argv],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k, (argv, _) in SUBPROCESS_CASES.items()
    }
    return {k: (p.wait(timeout=120), *p.communicate()) for k, p in procs.items()}


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_real_process_exit_code_and_one_line_errors(processes, case):
    rc, out, err = processes[case]
    assert rc == SUBPROCESS_CASES[case][1], err
    assert "Traceback" not in out + err
    if rc == 0:
        assert json.loads(out)["value_after"] == pytest.approx(3.4028237e37, rel=1e-6)
    else:
        assert out == "" and err.endswith("\n") and err.count("\n") == 1
        assert err.startswith("error: Invalid ")


def test_train_clip_respects_w_max_and_records_the_target(cli, tmp_path):
    p = tmp_path / "clip.safetensors"
    argv = ("train", "--method", "clip", "--w-max", "0.05", "--epochs", "2", "--widths", "16")
    rc, _, err = cli(*argv, "--quiet", "--out", p)
    assert rc == 0, err
    ck = load_checkpoint(p)
    weights = [t.detach() for t in ck.model.parameters() if t.ndim > 1]
    assert max(float(t.abs().max()) for t in weights) <= np.float32(0.05)  # float32 clamp bound
    assert ck.meta["config"]["w_max"] == 0.05
    rc, _, err = cli("train", "--method", "clip", "--w-max", "-1", "--out", tmp_path / "x")
    assert rc == 2 and "w_max=-1.0" in err


def test_a_command_reporting_failed_parts_exits_1(monkeypatch, capsys):
    """A study with failed tasks prints its result but does not exit 0."""
    import sar_core.cli as cli

    monkeypatch.setattr(cli, "_run", lambda args: {"failed": {"train:abc": "boom"}, "done": 3})
    assert cli.main(["flip", "--format", "float32", "--value", "0.1", "--bit", "30"]) == 1
    monkeypatch.setattr(cli, "_run", lambda args: {"failed": {}, "done": 3})
    assert cli.main(["flip", "--format", "float32", "--value", "0.1", "--bit", "30"]) == 0
