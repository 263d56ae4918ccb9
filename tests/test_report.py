"""Double-win report: the CLI contract, numbers that match the library run directly, overheads."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from sar_core.analysis.attack import progressive_bit_search
from sar_core.analysis.campaign import compare
from sar_core.cli import report as report_cli
from sar_core.data.io import dumps
from sar_core.faults.model import FaultModel

CONTRACT_KEYS = {
    "path",
    "method",
    "clean_accuracy",
    "deployed_accuracy",
    "fault_accuracy",
    "fault_ci95",
    "attack_flips",
    "extra_bits",
    "latency_ratio",
    "train_cost_ratio",
}


def _run(argv: list[str]) -> dict:
    p = argparse.ArgumentParser()
    report_cli.add_arguments(p)
    return report_cli.run(p.parse_args([str(a) for a in argv]))


@pytest.fixture(scope="module")
def mlp_report(demo_paths):
    paths = [demo_paths[f"digits_mlp_{m}"] for m in ("sgd", "sam", "sar")]
    argv = ["--models", *paths, "--format", "int8", "--bits", "all", "--ber", "0.01"]
    argv += ["--trials", "6", "--seed", "3", "--mitigations", "range,protect", "--json", "--quiet"]
    argv += ["--attack-budget", "300"]
    return paths, _run(argv)


def test_contract_rows_one_per_model_in_order(mlp_report):
    paths, out = mlp_report
    assert [r["path"] for r in out["rows"]] == [str(p) for p in paths]
    assert [r["method"] for r in out["rows"]] == ["sgd", "sam", "sar"]
    for r in out["rows"]:
        assert set(r) >= CONTRACT_KEYS
        lo, hi = r["fault_ci95"]
        assert lo <= r["fault_accuracy"] <= hi
    json.loads(dumps(out))  # one JSON object, non-finite values as strings


def test_numbers_match_the_library_run_directly(mlp_report, demo, digits):
    _, out = mlp_report
    models = [demo[f"digits_mlp_{m}"].model for m in ("sgd", "sam", "sar")]
    fm = FaultModel(format="int8", ber=0.01)
    direct = compare(models, digits.X_test, digits.y_test, fm, trials=6, seed=3)["results"]
    for row, res, model in zip(out["rows"], direct, models):
        s = res.summary()
        assert row["fault_accuracy"] == s["mean_accuracy"] and row["fault_ci95"] == s["ci95"]
        assert row["deployed_accuracy"] == s["deployed_accuracy"]
        pbs = progressive_bit_search(
            model,
            digits.X_train,
            digits.y_train,
            digits.X_test,
            digits.y_test,
            seed=3,
            max_flips=300,
        )
        assert row["attack_flips"] == (pbs.flips if pbs.reached else None)


def test_sar_overhead_is_exactly_zero_and_a_clamp_is_not(mlp_report):
    _, out = mlp_report
    sar = out["rows"][2]
    assert sar["method"] == "sar"
    assert sar["extra_params"] == 0 and sar["extra_ops"] == 0 and sar["extra_bits"] == 0
    rng, prot = out["mitigations"]
    assert rng["method"] == "sgd+range" and rng["extra_ops"] == 2 * (128 + 64)
    assert rng["extra_bits"] == 2 * 2 * 32  # two float32 bounds per clamped layer
    assert prot["method"] == "sgd+tmr" and prot["extra_bits"] == 2 * (64 * 128 + 128 * 64 + 640)
    assert rng["paired_difference"]["n"] == prot["paired_difference"]["n"] == 6


def test_train_cost_ratio_from_metadata(mlp_report, demo):
    _, out = mlp_report
    secs = {m: demo[f"digits_mlp_{m}"].meta["metrics"]["train_seconds"] for m in ("sgd", "sar")}
    assert out["rows"][0]["train_cost_ratio"] == 1.0
    assert out["rows"][2]["train_cost_ratio"] == pytest.approx(secs["sar"] / secs["sgd"])


def test_no_sgd_model_means_no_cost_ratio_and_architectures_may_mix(demo_paths):
    argv = ["--models", demo_paths["digits_cnn_sar"], demo_paths["digits_mlp_sar"]]
    out = _run([*argv, "--trials", "2", "--attack-budget", "3", "--quiet"])
    assert [r["train_cost_ratio"] for r in out["rows"]] == [None, None]
    assert out["rows"][0]["base_macs"] != out["rows"][1]["base_macs"]
    assert out["mitigations"] == [] and out["fault_model"]["ber"] == 0.01


def test_float32_report_protects_sign_and_exponent_msb(demo_paths):
    argv = ["--models", demo_paths["digits_mlp_sgd"], "--format", "float32", "--ber", "1e-4"]
    out = _run([*argv, "--trials", "3", "--attack-budget", "3", "--mitigations", "protect"])
    prot = out["mitigations"][0]
    assert prot["protection"]["positions"] == [30, 31]
    assert prot["extra_bits"] == 2 * 2 * (64 * 128 + 128 * 64 + 640)
    assert prot["attack_flips"] is None and prot["attack_note"]


@pytest.mark.parametrize(
    "flags, name",
    [
        (["--ber", "2"], "ber"),
        (["--ber", "x"], "ber"),
        (["--trials", "0"], "trials"),
        (["--seed", "-1"], "seed"),
        (["--format", "int4"], "format"),
        (["--mitigations", "pray"], "mitigations"),
        (["--attack-budget", "0"], "max_flips"),
        (["--attack-target", "2"], "target_accuracy"),
        (["--protect-scheme", "parity"], "scheme"),
        (["--protect-bits", "12"], "bits"),
        (["--base", "nope.safetensors"], "base"),
    ],
)
def test_bad_options_are_value_errors_naming_the_parameter(demo_paths, flags, name):
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        _run(["--models", demo_paths["digits_mlp_sgd"], *flags, "--quiet"])


def test_module_import_is_light():
    code = "import sys, sar_core.experiments.report; print('torch' in sys.modules, 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_cli_report_command(cli, demo_paths):
    path = demo_paths["digits_mlp_sar"]
    rc, out, err = cli(
        "report", "--models", path, "--trials", "2", "--attack-budget", "3", "--json"
    )
    assert rc == 0, err
    rows = json.loads(out)["rows"]
    assert [r["path"] for r in rows] == [str(path)] and rows[0]["extra_ops"] == 0
    rc, out, err = cli("report", "--models", path, "--trials", "0", "--json")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "trials" in err


# --- imported models (issue 19): --data FILE, as inject / compare take it ---------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained, digits):
    """An SGD checkpoint, the same network exported to ONNX, its int8 QDQ version, test data."""
    import numpy as np
    from test_onnx import export, quantize

    from sar_core.data.io import save_checkpoint

    d = tmp_path_factory.mktemp("report_onnx")
    r = trained["sgd"]
    save_checkpoint(d / "m.safetensors", r.model, r.spec, r.metadata(digits))
    raw = export(r.model, (64,))
    (d / "net.onnx").write_bytes(raw)
    (d / "q.onnx").write_bytes(quantize(raw, digits.X_train, (64,), d, per_channel=False))
    np.savez(d / "test.npz", X=digits.X_test, y=digits.y_test)  # the checkpoint's own split
    return d


def test_report_on_an_onnx_model_equals_the_report_on_its_checkpoint(
    cli, exported, trained, digits
):
    """The exported network on --data (its checkpoint's test split) gives the checkpoint's
    accuracies under the same faults; its attack is the torch module's on the file's rows."""
    args = ["--format", "int8", "--ber", "0.01", "--trials", "5", "--seed", "1"]
    args += ["--attack-budget", "50", "--json", "--quiet"]
    rc, out, err = cli("report", "--models", exported / "m.safetensors", *args)
    assert rc == 0, err
    ck = json.loads(out)["rows"][0]
    onnx, data = exported / "net.onnx", exported / "test.npz"
    rc, out, err = cli("report", "--models", onnx, "--data", data, *args)
    assert rc == 0, err
    res = json.loads(out)
    (row,) = res["rows"]
    assert row["path"] == str(onnx) and row["method"] == "onnx"
    assert set(row) >= CONTRACT_KEYS
    for key in ("clean_accuracy", "deployed_accuracy", "fault_accuracy", "fault_ci95"):
        assert row[key] == pytest.approx(ck[key], abs=1e-12), key
    # with --data the file's rows are the whole data set: the attack batch is drawn from them
    X, y = digits.X_test, digits.y_test
    pbs = progressive_bit_search(trained["sgd"].model, X, y, X, y, seed=1, max_flips=50)
    assert row["attack_flips"] == (pbs.flips if pbs.reached else None)
    assert row["attack"]["flips"] == pbs.flips


def test_report_refuses_an_imported_model_without_data_and_float_faults_on_int8_codes(
    cli, exported
):
    rc, out, err = cli("report", "--models", exported / "net.onnx", "--trials", "2", "--quiet")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--data" in err
    q, data = exported / "q.onnx", exported / "test.npz"
    argv = ["report", "--models", q, "--data", data, "--format", "float32", "--trials", "2"]
    rc, out, err = cli(*argv, "--quiet")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "for a quantized model" in err and str(q) in err
    pt2 = exported / "m.pt2"
    pt2.write_bytes(b"never read")  # refused before it is opened: .pt2 needs --trust-pt2
    rc, out, err = cli("report", "--models", pt2, "--data", data, "--trials", "2", "--quiet")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--trust-pt2" in err


def test_report_on_an_onnx_resnet_graph_scores_it_like_onnxruntime(cli, tmp_path, digits):
    """A graph that is no layer chain (BatchNorm, residual adds): clean accuracy from
    onnxruntime's logits, faulty accuracy from the library's campaign on the imported model;
    MACs are not counted for such a graph (None), and range restriction is refused."""
    import numpy as np
    import torch
    from test_onnx import ResNetish, export, randomize_bn, run_ort

    from sar_core.analysis.campaign import run_campaign
    from sar_core.data.io import load_model

    torch.manual_seed(0)
    raw = export(randomize_bn(ResNetish(), 1), (1, 8, 8))
    (tmp_path / "res.onnx").write_bytes(raw)
    X, y = digits.X_test[:150], digits.y_test[:150]
    np.savez(tmp_path / "d.npz", X=X.reshape(-1, 1, 8, 8), y=y)
    argv = ["report", "--models", tmp_path / "res.onnx", "--data", tmp_path / "d.npz"]
    argv += ["--format", "int8", "--ber", "0.01", "--trials", "3", "--seed", "2"]
    argv += ["--attack-budget", "5", "--quiet"]
    rc, out, err = cli(*argv, "--json")
    assert rc == 0, err
    (row,) = json.loads(out)["rows"]
    ort = (run_ort(raw, X, (1, 8, 8)).argmax(1) == y).mean()
    assert row["clean_accuracy"] == pytest.approx(ort, abs=1e-6)
    direct = run_campaign(
        load_model(tmp_path / "res.onnx").model, X, y, FaultModel(format="int8", ber=0.01),
        trials=3, seed=2,
    ).summary()  # fmt: skip
    assert row["fault_accuracy"] == direct["mean_accuracy"] and row["fault_ci95"] == direct["ci95"]
    assert row["base_macs"] is None and row["extra_ops"] is None and row["parameters"] > 0
    rc, out, err = cli(*argv, "--mitigations", "range")
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and "range" in err
