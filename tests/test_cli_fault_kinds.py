"""CLI fault kinds (issue 10 contract): --fault flip|stuck-at-0|stuck-at-1, --burst L, --target,
--ber-01/--ber-10, checked against a numpy recount of the deployed int8 codes and closed forms."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from conftest import ROOT

from sar_core.cli.faultargs import _kind_fields
from sar_core.data.io import dataset_of, load_checkpoint
from sar_core.engine.evaluate import evaluate
from sar_core.faults.model import FaultModel

MLP = str(ROOT / "assets" / "digits_mlp_sgd.safetensors")
SAR = str(ROOT / "assets" / "digits_mlp_sar.safetensors")
SIGN = ("--format", "int8", "--bits", "7")  # the int8 sign bit: one site per weight


@pytest.fixture(scope="module")
def mlp():
    ck = load_checkpoint(MLP)
    return ck, dataset_of(ck)


def _json(cli, *argv):
    rc, out, err = cli(*argv, "--json", "--quiet")
    assert rc == 0, err
    return json.loads(out)


def _sign_forced(ck, data, value: int) -> tuple[int, int, float]:
    """numpy reference: every weight's int8 sign bit forced to ``value`` (biases untouched).

    Returns (weights, bits that changed, accuracy of the faulty model).
    """
    params, sites, changed = {}, 0, 0
    for name, p in ck.model.named_parameters():
        w = p.detach().numpy()
        if w.ndim == 1:  # biases are not eligible without --include-bias
            params[name] = p.detach()
            continue
        s = np.float32(np.abs(w).max() / np.float32(127))
        q = np.clip(np.rint(w / s), -127, 127).astype(np.int8).view(np.uint8)
        new = (q | 0x80) if value else (q & 0x7F)
        sites += q.size
        changed += int(np.count_nonzero(new != q))
        params[name] = torch.from_numpy(new.view(np.int8).astype(np.float32) * s)
    acc = evaluate(ck.model, data.X_test, data.y_test, params).accuracy
    return sites, changed, acc


@pytest.mark.parametrize("value", [0, 1])
def test_stuck_at_every_sign_bit_matches_numpy_recount(cli, mlp, value):
    ck, data = mlp
    sites, changed, acc = _sign_forced(ck, data, value)
    out = _json(cli, "inject", "--model", MLP, *SIGN, "--fault", f"stuck-at-{value}",
                "--ber", "1", "--trials", "2")  # fmt: skip
    assert out["fault_model"]["kind"] == f"stuck-at-{value}"
    assert out["n_sites"] == out["mean_flips"] == sites  # ber = 1 hits every site
    assert out["mean_changed_bits"] == changed  # only sites holding the other value change
    assert 0 < changed < sites
    assert abs(out["mean_accuracy"] - acc) <= 1.0 / len(data.y_test)


def test_asymmetric_ber_10_one_equals_stuck_at_zero(cli, mlp):
    """ber_10 = 1, ber_01 = 0: every stored 1 becomes 0, exactly what stuck-at-0 at ber 1 does."""
    ck, data = mlp
    _, changed, acc = _sign_forced(ck, data, 0)
    out = _json(cli, "inject", "--model", MLP, *SIGN, "--ber-10", "1", "--ber-01", "0",
                "--trials", "2")  # fmt: skip
    assert (out["fault_model"]["ber_10"], out["fault_model"]["ber_01"]) == (1.0, 0.0)
    assert out["mean_flips"] == out["mean_changed_bits"] == changed
    assert abs(out["mean_accuracy"] - acc) <= 1.0 / len(data.y_test)


def test_burst_of_two_flips_two_adjacent_bits_per_hit(cli):
    out = _json(cli, "inject", "--model", MLP, "--format", "int8", "--bits", "6", "--burst", "2",
                "--count", "1", "--trials", "4")  # fmt: skip
    assert out["fault_model"]["burst"] == 2
    assert out["mean_flips"] == 1 and out["mean_changed_bits"] == 2  # bits 6 and 7 of one word


def test_default_flags_build_the_plain_flip_fault_model(cli):
    out = _json(cli, "inject", "--model", MLP, "--format", "int8", "--ber", "0.01", "--trials", "1")
    assert out["fault_model"] == FaultModel(format="int8", ber=0.01).to_dict()
    assert out["mean_changed_bits"] == out["mean_flips"]  # a flip changes every bit it hits
    ns = argparse.Namespace(fault="flip", burst="1", target="weights")
    assert _kind_fields(ns) == {}  # nothing new reaches FaultModel unless asked for


def test_compare_and_sweep_take_fault_kinds(cli):
    out = _json(cli, "compare", "--models", MLP, SAR, *SIGN, "--fault", "stuck-at-1",
                "--count", "3", "--trials", "3")  # fmt: skip
    assert out["fault_model"]["kind"] == "stuck-at-1" and len(out["results"]) == 2
    for r in out["results"]:
        assert r["mean_flips"] == 3 and 0 <= r["mean_changed_bits"] <= 3
    sw = _json(cli, "sweep", "--models", MLP, SAR, *SIGN, "--fault", "stuck-at-0",
               "--ber", "0.01,0.1", "--trials", "2")  # fmt: skip
    assert sw["fault_model"]["kind"] == "stuck-at-0" and sw["ber"] == [0.01, 0.1]
    assert all(len(m["mean_accuracy"]) == 2 for m in sw["models"])


def test_activation_faults_run_and_leave_weights_alone(cli):
    out = _json(cli, "inject", "--model", MLP, "--target", "activations", "--format", "int8",
                "--ber", "0.001", "--trials", "3")  # fmt: skip
    assert out["fault_model"]["target"] == "activations"
    assert 0.0 <= out["mean_accuracy"] <= 1.0


INJECT = ("inject", "--model", MLP, "--trials", "2")
BAD = [
    ("burst_longer_than_word", [*INJECT, "--format", "int8", "--burst", "9", "--count", "1"],
     ["burst=9", "[1, 8]"]),
    ("burst_past_top_bit", [*INJECT, *SIGN, "--burst", "2", "--count", "1"], ["burst=2", "bit 7"]),
    ("burst_text", [*INJECT, "--burst", "two", "--count", "1"], ["burst='two'", "integer"]),
    ("ber01_with_count", [*INJECT, "--ber-01", "0.1", "--count", "3"],
     ["--ber-01", "not allowed with", "--count"]),
    ("ber10_with_ber", [*INJECT, "--ber-10", "0.1", "--ber", "0.1"],
     ["--ber-10", "not allowed with", "--ber"]),
    ("asym_stuck", [*INJECT, "--ber-01", "0.1", "--fault", "stuck-at-1"],
     ["kind='stuck-at-1'", "ber_01"]),
    ("asym_text", [*INJECT, "--ber-01", "x"], ["ber-01='x'", "number"]),
    ("asym_zero", [*INJECT, "--ber-01", "0", "--ber-10", "0"], ["ber_01=0", "> 0"]),
    ("fault_unknown", [*INJECT, "--fault", "stuck", "--count", "1"],
     ["--fault", "'stuck'", "stuck-at-0"]),
    ("target_unknown", [*INJECT, "--target", "biases", "--count", "1"],
     ["--target", "'biases'", "activations"]),
    ("activations_unknown_layer", [*INJECT, "--target", "activations", "--layers", "nope",
                                   "--ber", "0.01"], ["'nope'"]),
    ("no_rate", list(INJECT), ["--ber", "--count", "required", "--ber-01"]),
    ("sweep_asymmetric", ["sweep", "--models", MLP, "--ber-01", "0.1"], ["--ber P1,P2"]),
]  # fmt: skip


@pytest.mark.parametrize("argv, fragments", [pytest.param(a, f, id=i) for i, a, f in BAD])
def test_bad_fault_options_exit_2_with_one_line(cli, argv, fragments):
    rc, out, err = cli(*argv)
    assert (rc, out) == (2, ""), err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
