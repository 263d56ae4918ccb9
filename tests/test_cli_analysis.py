"""CLI: landscape / sharpness JSON keys, exit code 2 on bad input, determinism."""

from __future__ import annotations

import json

import pytest

from sar_core.cli import main
from sar_core.data.datasets import load_dataset
from sar_core.data.io import load_checkpoint, save_checkpoint
from sar_core.data.models import ModelSpec, build_model
from sar_core.engine.evaluate import evaluate


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    """Two tiny iris MLP checkpoints (same architecture, other weights)."""
    d = tmp_path_factory.mktemp("ck")
    data = load_dataset("iris", seed=0)
    spec = ModelSpec(n_features=4, n_classes=3, widths=(6,))
    paths = []
    for method, seed in (("sgd", 0), ("sar", 1)):
        meta = {
            "method": method,
            "config": {},
            "dataset": data.describe(),
            "seed": seed,
            "metrics": {},
        }
        paths.append(
            str(save_checkpoint(d / f"{method}.safetensors", build_model(spec, seed), spec, meta))
        )
    return paths


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_landscape_1d_one_model(capsys, ckpts):
    code, out, _ = run(
        capsys, "landscape", "--model", ckpts[0], "--steps", "7", "--json", "--quiet"
    )
    assert code == 0
    r = json.loads(out)
    assert len(r["alphas"]) == len(r["loss"]) == len(r["accuracy"]) == 7
    ck = load_checkpoint(ckpts[0])
    data = load_dataset("iris", seed=0)
    clean = evaluate(ck.model, data.X_test, data.y_test).loss
    assert r["center_loss"] == r["loss"][3] == clean  # test split of the checkpoint's dataset
    assert "betas" not in r and r["n_samples"] == len(data.y_test)


def test_landscape_2d_two_models_and_determinism(capsys, ckpts):
    argv = ["landscape", "--model", ckpts[0], "--model", ckpts[1], "--dims", "2"]
    argv += ["--steps", "5", "--seed", "3", "--json", "--quiet"]
    code, out1, _ = run(capsys, *argv)
    code2, out2, _ = run(capsys, *argv)
    assert code == code2 == 0 and out1 == out2
    r = json.loads(out1)
    assert len(r["loss"]) == 2 and len(r["loss"][0]) == len(r["betas"]) == 5
    assert len(r["loss"][1][4]) == len(r["alphas"]) == 5
    assert [m["method"] for m in r["models"]] == ["sgd", "sar"]
    assert len(r["center_loss"]) == 2 and r["loss"][1][2][2] == r["center_loss"][1]
    _, other, _ = run(capsys, *argv[:-3], "4", "--json", "--quiet")
    assert json.loads(other)["loss"] != r["loss"]


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--steps", "1"], "steps=1"),
        (["--steps", "102"], "steps=102"),
        (["--steps", "abc"], "steps='abc'"),
        (["--span", "0"], "span=0"),
        (["--dims", "3"], "dims"),
        (["--plot", "out.gif"], "plot="),
    ],
)
def test_landscape_bad_input_exit_2_one_line(capsys, ckpts, extra, needle):
    code, out, err = run(capsys, "landscape", "--model", ckpts[0], "--quiet", *extra)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and needle in err


def test_landscape_plot_html(capsys, ckpts, tmp_path):
    target = tmp_path / "slice.html"
    code, _, _ = run(
        capsys, "landscape", "--model", ckpts[0], "--steps", "5", "--plot", str(target), "--quiet"
    )
    assert code == 0 and target.stat().st_size > 1000


def test_sharpness_keys_with_and_without_fault_model(capsys, ckpts):
    base = ["sharpness", "--model", ckpts[0], "--seed", "1", "--json", "--quiet"]
    code, out, _ = run(capsys, *base)
    assert code == 0
    r = json.loads(out)
    for key in ("lambda_max", "trace", "sam_sharpness", "avg_sharpness"):
        assert key in r
    assert "fault_sharpness" not in r and isinstance(r["lambda_max"], float)
    fault = base + ["--format", "int8", "--ber", "0.05", "--trials", "5"]
    code, out1, _ = run(capsys, *fault)
    _, out2, _ = run(capsys, *fault)
    assert code == 0 and out1 == out2
    fs = json.loads(out1)["fault_sharpness"]
    assert set(fs) >= {"mean", "ci95", "nonfinite_trials"}


def test_sharpness_two_models_lists(capsys, ckpts):
    code, out, _ = run(
        capsys, "sharpness", "--model", ckpts[0], "--model", ckpts[1], "--json", "--quiet"
    )
    r = json.loads(out)
    assert code == 0 and len(r["lambda_max"]) == 2 and len(r["trace"]) == 2


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--format", "int8"], "format="),
        (["--rho", "0"], "rho="),
        (["--ber", "2"], "ber="),
        (["--seed", "-1"], "seed="),
    ],
)
def test_sharpness_bad_input_exit_2(capsys, ckpts, extra, needle):
    code, _, err = run(capsys, "sharpness", "--model", ckpts[0], "--quiet", *extra)
    assert code == 2 and needle in err and err.count("\n") == 1


def test_missing_model_file_exit_2(capsys, tmp_path):
    code, _, err = run(capsys, "landscape", "--model", str(tmp_path / "nope.safetensors"))
    assert code == 2 and "nope" in err
