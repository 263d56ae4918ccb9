"""Fault kinds (stuck-at, asymmetric, bursts, activation faults) against numpy recounts and laws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import state_digest

from sar_core.analysis.campaign import run_campaign
from sar_core.engine import montecarlo as M
from sar_core.engine.evaluate import as_tensors
from sar_core.faults.activations import ActivationFaults
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel, FaultPattern


@pytest.fixture(scope="module")
def mlp(demo):
    return demo["digits_mlp_sgd"].model


def _codes(t: torch.Tensor) -> np.ndarray:
    """Stored float32 codes, the independent numpy bit view."""
    return t.detach().numpy().astype(np.float32).reshape(-1).view(np.uint32)


def _diff(inj: Injector, model, pattern) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per parameter: (old codes, new codes) from the model's weights and Injector.apply."""
    faulty = inj.apply(pattern)
    params = dict(model.named_parameters())
    return {n: (_codes(params[n]), _codes(faulty[n])) for n in inj.eligible}


# ------------------------------------------------------------ stuck-at ----------------------


@pytest.mark.parametrize("value", [0, 1])
def test_stuck_at_changes_exactly_the_sites_holding_the_other_value(mlp, value):
    fm = FaultModel(bits=(20, 21, 22, 29, 30, 31), count=300, kind=f"stuck-at-{value}")
    inj = Injector(mlp, fm)
    for seed in range(5):
        p = inj.sample(seed)
        diff = _diff(inj, mlp, p)
        expect = 0
        for name, (idx, bit) in p.sites.items():
            old, new = diff[name]
            held = (old[idx] >> bit.astype(np.uint32)) & 1
            expect += int((held != value).sum())  # numpy recount of the deployed codes
            assert np.all(((new[idx] >> bit.astype(np.uint32)) & 1) == value)  # the bit is forced
        changed = sum(int(np.bitwise_count(o ^ n).sum()) for o, n in diff.values())
        assert changed == expect == inj.delta(p).n_changed
        assert p.n_flips == 300


def test_stuck_at_changed_bits_follow_binomial_over_the_other_value(mlp):
    fm = FaultModel(bits=(28, 29, 30), ber=2e-3, kind="stuck-at-1")
    inj = Injector(mlp, fm)
    n_other = sum(
        int((((_codes(p)[:, None] >> np.array([28, 29, 30], np.uint32)) & 1) == 0).sum())
        for n, p in mlp.named_parameters()
        if n in inj.eligible
    )
    changed = np.array([inj.delta(inj.sample(M.trial_rng(1, t))).n_changed for t in range(400)])
    mean, var = 2e-3 * n_other, 2e-3 * (1 - 2e-3) * n_other  # Binomial(N_other, p)
    assert abs(changed.mean() - mean) <= 4 * np.sqrt(var / 400)
    assert 0.7 * var <= changed.var(ddof=1) <= 1.3 * var
    res = run_campaign(mlp, *as_tensors(np.zeros((2, 64)), np.zeros(2)), fm, trials=5)
    s = res.summary()
    assert s["mean_changed_bits"] < s["mean_flips"]  # stuck sites that already held 1


# ------------------------------------------------------------ asymmetric --------------------


def test_asymmetric_rates_match_binomials_over_ones_and_zeros(mlp):
    p10, p01 = 3e-3, 3e-4
    fm = FaultModel(bits="exponent", ber_10=p10, ber_01=p01)
    inj = Injector(mlp, fm)
    shifts = np.arange(23, 31, dtype=np.uint32)
    held = np.concatenate(
        [
            ((_codes(p)[:, None] >> shifts) & 1).ravel()
            for n, p in mlp.named_parameters()
            if n in inj.eligible
        ]
    )
    n1, n0 = int(held.sum()), int((held == 0).sum())
    c10, c01 = [], []
    for t in range(300):
        diff = _diff(inj, mlp, inj.sample(M.trial_rng(2, t)))
        c10.append(sum(int(np.bitwise_count(o & (o ^ n)).sum()) for o, n in diff.values()))
        c01.append(sum(int(np.bitwise_count(~o & (o ^ n)).sum()) for o, n in diff.values()))
    for counts, p, n in ((c10, p10, n1), (c01, p01, n0)):
        counts = np.asarray(counts)
        assert abs(counts.mean() - p * n) <= 4 * np.sqrt(p * (1 - p) * n / len(counts))
        assert 0.7 * p * (1 - p) * n <= counts.var(ddof=1) <= 1.3 * p * (1 - p) * n


def test_asymmetric_patterns_need_the_stored_bits():
    from sar_core.faults.model import sample_pattern

    with pytest.raises(ValueError, match="Injector"):
        sample_pattern({"a.weight": (4, 4)}, FaultModel(ber_10=0.1), 0)


# ------------------------------------------------------------ bursts ------------------------


@pytest.mark.parametrize("fmt, burst", [("float32", 3), ("int8", 4), ("float16", 2)])
def test_a_burst_flips_adjacent_bits_inside_one_word(mlp, fmt, burst):
    fm = FaultModel(format=fmt, count=1, burst=burst)
    inj = Injector(mlp, fm)
    width = {"float32": 32, "int8": 8, "float16": 16}[fmt]
    deployed = inj.deployed()
    for seed in range(30):
        p = inj.sample(seed)
        ((name, (idx, start)),) = p.sites.items()
        d = inj.delta(p)
        assert d.n_changed == burst
        # the changed element is exactly the hit word, and its XOR is `burst` consecutive bits
        ((dname, (didx, vals)),) = d.values.items()
        assert dname == name and didx.tolist() == idx.tolist()
        old = deployed[name].view(-1)[didx]
        assert start[0] + burst <= width
        if fmt == "float32":
            x = _codes(old) ^ _codes(vals)
            assert int(x[0]) == ((1 << burst) - 1) << int(start[0])


def test_burst_counts_follow_the_law(mlp):
    fm = FaultModel(format="int8", ber=1e-3, burst=3)
    inj = Injector(mlp, fm)
    n_words = sum(int(np.prod(inj.shapes[n])) for n in inj.eligible)
    n_starts = 8 - 3 + 1  # starts 0..5 keep the burst inside the byte
    assert inj.n_sites == n_words * n_starts
    n = np.array([inj.sample(M.trial_rng(3, t)).n_flips for t in range(400)])
    mean, var = 1e-3 * inj.n_sites, 1e-3 * (1 - 1e-3) * inj.n_sites
    assert abs(n.mean() - mean) <= 4 * np.sqrt(var / 400)
    assert 0.7 * var <= n.var(ddof=1) <= 1.3 * var
    assert FaultModel(format="int8", ber=1e-3, burst=1).starts == tuple(range(8))


# ------------------------------------------------------------ activation faults -------------


@pytest.fixture(scope="module")
def act_data(digits):
    return as_tensors(digits.X_test[:16], digits.y_test[:16])


def _hooks(model) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def test_activation_faults_leave_models_unchanged_after_ten_thousand_evaluations(demo, act_data):
    X, y = act_data
    models = [demo["digits_mlp_sgd"].model, demo["digits_mlp_sar"].model]
    before = [state_digest(m) for m in models]
    mods = [[id(x) for x in m.modules()] for m in models]
    fm = FaultModel(format="float16", ber=1e-3, target="activations")
    mc = M.MonteCarlo(models, X, y, fm)
    n = sum(1 for _ in mc.run(5000, seed=0)) * len(models)
    assert n == 10_000
    assert [state_digest(m) for m in models] == before
    assert [[id(x) for x in m.modules()] for m in models] == mods
    assert all(_hooks(m) == 0 for m in models) and all(not m.training for m in models)


def test_activation_faults_same_seed_same_logits_and_no_hit_gives_clean_logits(mlp, act_data):
    X, y = act_data
    fm = FaultModel(format="int8", ber=5e-3, target="activations")
    a = ActivationFaults(mlp, fm, X, calibration=X)
    b = ActivationFaults(mlp, fm, X, calibration=X)
    for t in range(5):
        la, ca = a.logits(a.space.sample(M.trial_rng(4, t)))
        lb, cb = b.logits(b.space.sample(M.trial_rng(4, t)))
        assert torch.equal(la, lb) and ca == cb
    empty = FaultPattern(sites={}, n_flips=0, n_sites=a.space.n_sites)
    with torch.no_grad():
        assert torch.equal(a.logits(empty)[0], mlp(X))
    tiny = fm.with_rate(ber=1e-15)  # no site is hit: every trial scores the clean logits
    mc = M.MonteCarlo([mlp], X, y, tiny, calibration=X)
    assert all(t.accuracy == (mc.clean[0][0],) and t.n_changed == (0,) for t in mc.run(20))


def test_activation_flip_matches_numpy_and_scales_are_calibrated(mlp, act_data, digits):
    X, y = act_data
    fm = FaultModel(format="float32", count=5, target="activations", layers=("fc1",))
    a = ActivationFaults(mlp, fm, X)
    p = a.space.sample(3)
    logits, changed = a.logits(p)
    assert changed == 5 and set(p.sites) == {"fc1.output"}
    idx, bit = p.sites["fc1.output"]
    clean = a.acts[a.index["fc1"] + 1].reshape(-1).numpy()
    ref = clean.copy().view(np.uint32)
    np.bitwise_xor.at(ref, idx, (np.uint32(1) << bit.astype(np.uint32)))
    h, _ = a._fault(a.acts[a.index["fc1"] + 1], "fc1.output", p)
    assert np.array_equal(h.reshape(-1).numpy().view(np.uint32), ref)
    fm8 = FaultModel(format="int8", ber=1e-3, target="activations")
    a8 = ActivationFaults(mlp, fm8, X, calibration=digits.X_train)
    with torch.no_grad():
        h1 = mlp.fc1(torch.tensor(digits.X_train, dtype=torch.float32)).numpy()
    assert float(a8.scales["fc1"]) == pytest.approx(np.abs(h1).max() / 127, rel=1e-6)


def test_two_models_of_one_architecture_see_the_same_activation_faults(demo, act_data):
    X, y = act_data
    models = [demo["digits_cnn_sgd"].model, demo["digits_cnn_sam"].model]
    fm = FaultModel(format="bfloat16", ber=1e-3, target="activations")
    mc = M.MonteCarlo(models, X, y, fm)
    a, b = mc.patterns(0, 0)
    assert a is b and a.n_flips > 0


# ------------------------------------------------------------ bad combinations --------------


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(format="int8", burst=9, ber=0.1), ["burst=9", "[1, 8]"]),
        (dict(bits=(31,), burst=2, ber=0.1), ["burst=2", "bit 31"]),
        (dict(ber_01=0.1, count=3), ["count=3", "ber_01"]),
        (dict(ber_01=0.1, ber=0.1), ["ber=0.1", "asymmetric"]),
        (dict(ber_10=0.1, kind="stuck-at-1"), ["kind='stuck-at-1'", "asymmetric"]),
        (dict(ber_10=0.1, burst=2), ["burst=2", "asymmetric"]),
        (dict(ber_10=0.0, ber_01=0.0), ["ber_01=0", "at least one"]),
        (dict(kind="stuck", ber=0.1), ["kind='stuck'", "stuck-at-0"]),
        (dict(target="inputs", ber=0.1), ["target='inputs'", "activations"]),
    ],
)
def test_bad_combinations_raise_clear_errors(kwargs, words):
    with pytest.raises(ValueError) as e:
        FaultModel(**kwargs)
    msg = str(e.value)
    assert msg.startswith("Invalid") and "\n" not in msg
    for w in words:
        assert w in msg


def test_activation_faults_on_an_unknown_layer_and_int8_without_calibration(mlp, act_data):
    X, y = act_data
    with pytest.raises(ValueError, match=r"'conv9' is not a layer of this model; available"):
        M.MonteCarlo([mlp], X, y, FaultModel(ber=0.1, target="activations", layers=("conv9",)))
    with pytest.raises(ValueError, match="calibration"):
        M.MonteCarlo([mlp], X, y, FaultModel(format="int8", ber=0.1, target="activations"))


def test_fault_model_dicts_round_trip_and_old_dicts_load():
    fm = FaultModel(format="int8", count=3, kind="stuck-at-0", burst=2, target="activations")
    assert FaultModel.from_dict(fm.to_dict()) == fm
    old = {
        "format": "float16",
        "bits": [14],
        "ber": 0.01,
        "count": None,
        "layers": None,
        "include_bias": False,
        "granularity": "tensor",
    }
    loaded = FaultModel.from_dict(old)
    assert (loaded.kind, loaded.burst, loaded.target, loaded.ber_01) == ("flip", 1, "weights", None)


@pytest.mark.parametrize(
    "fm",
    [
        FaultModel(format="int8", ber=0.01, kind="stuck-at-1"),
        FaultModel(format="float16", ber=1e-3, burst=2),
        FaultModel(format="int8", ber_10=0.01, ber_01=0.001),
    ],
)
def test_every_kind_is_deterministic_and_streams(demo, act_data, fm):
    X, y = act_data
    models = [demo["digits_mlp_sgd"].model, demo["digits_mlp_sam"].model]
    a = [
        (t.accuracy, t.n_flips, t.n_changed) for t in M.MonteCarlo(models, X, y, fm).run(12, seed=5)
    ]
    b = [
        (t.accuracy, t.n_flips, t.n_changed) for t in M.MonteCarlo(models, X, y, fm).run(5, seed=5)
    ]
    assert a[:5] == b and a == [
        (t.accuracy, t.n_flips, t.n_changed) for t in M.MonteCarlo(models, X, y, fm).run(12, seed=5)
    ]
