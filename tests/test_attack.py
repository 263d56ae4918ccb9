"""Progressive bit search: greedy on the attack-batch loss, one int8 bit per flip, functional."""

from __future__ import annotations

import numpy as np
import pytest

from sar_core.analysis.attack import (
    SearchSettings,
    attack_batch,
    progressive_bit_search,
    random_flip_baseline,
)
from sar_core.engine.evaluate import evaluate
from sar_core.faults.injector import Injector


@pytest.fixture(scope="module")
def mlp(demo, digits):
    return demo["digits_mlp_sgd"].model


@pytest.fixture(scope="module")
def pbs(mlp, digits):
    """One full search on the demo SGD MLP (default target: chance + 10 points)."""
    return progressive_bit_search(
        mlp, digits.X_train, digits.y_train, digits.X_test, digits.y_test, seed=3
    )


def _numpy_int8(w: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Independent reference: symmetric per-tensor int8 codes and scale."""
    s = np.float32(np.max(np.abs(w)) / np.float32(127.0))
    return np.clip(np.rint(w / s), -127, 127).astype(np.int8), s


def test_loss_rises_with_every_accepted_flip_and_target_is_reached(pbs, digits):
    assert pbs.stop_reason == "target" and pbs.reached
    assert pbs.target_accuracy == pytest.approx(1 / 10 + 0.10)
    losses = [pbs.initial_loss, *pbs.loss]
    assert all(b > a for a, b in zip(losses, losses[1:]))  # greedy acceptance: strict increase
    assert len(pbs.accuracy) == pbs.flips == len(pbs.sites)
    assert pbs.accuracy[-1] <= pbs.target_accuracy < min(pbs.accuracy[:-1], default=1.0)


def test_each_flip_is_one_bit_of_an_int8_code(pbs, mlp, digits):
    own = {n: p.detach().numpy() for n, p in mlp.named_parameters()}
    codes = {}
    for site in pbs.sites:
        name, idx, bit = site["param"], site["index"], site["bit"]
        if name not in codes:
            codes[name] = _numpy_int8(own[name])[0].reshape(-1).copy()
        before = codes[name][idx]
        assert before == site["q_before"]
        codes[name].view(np.uint8)[idx] ^= np.uint8(1 << bit)  # one bit, as numpy sees it
        assert codes[name][idx] == site["q_after"]
    assert len({(s["param"], s["index"], s["bit"]) for s in pbs.sites}) == pbs.flips  # distinct
    # the flipped weights, rebuilt independently, give the last accuracy of the trajectory
    params = {n: own[n].copy() for n in own}
    for name, q in codes.items():
        _, s = _numpy_int8(own[name])
        params[name] = (q.astype(np.float32) * s).reshape(own[name].shape)
    for name in own:
        if name not in codes and own[name].ndim >= 2:
            q, s = _numpy_int8(own[name])
            params[name] = q.astype(np.float32) * s
    import torch

    tensors = {n: torch.from_numpy(np.ascontiguousarray(a)) for n, a in params.items()}
    assert evaluate(mlp, digits.X_test, digits.y_test, tensors).accuracy == pbs.accuracy[-1]
    # and the same flips through the campaign's injector
    inj = Injector(mlp, pbs.fault_model)
    faulty = inj.apply(pbs.pattern())
    assert all(torch.equal(faulty[n], tensors[n]) for n in tensors)


def test_budget_is_respected_and_model_is_untouched(mlp, digits, digest):
    before = digest(mlp)
    r = progressive_bit_search(
        mlp, digits.X_train, digits.y_train, digits.X_test, digits.y_test, max_flips=3, seed=0
    )
    assert r.flips == 3 and r.stop_reason == "budget"
    assert digest(mlp) == before


def test_same_seed_same_result_and_batch_is_seeded(mlp, digits):
    kw = dict(max_flips=5, seed=7)
    a = progressive_bit_search(
        mlp, digits.X_train, digits.y_train, digits.X_test, digits.y_test, **kw
    )
    b = progressive_bit_search(
        mlp, digits.X_train, digits.y_train, digits.X_test, digits.y_test, **kw
    )
    assert a.to_dict() == b.to_dict()
    xa, ya = attack_batch(digits.X_train, digits.y_train, 128, 7)
    xb, _ = attack_batch(digits.X_train, digits.y_train, 128, 8)
    assert (
        xa.shape == (128, 64) and len(np.unique(xa, axis=0)) == 128 and not np.array_equal(xa, xb)
    )


def test_settings_object_and_keyword_overrides_are_one_search(mlp, digits):
    data = (digits.X_train, digits.y_train, digits.X_test, digits.y_test)
    cfg = SearchSettings(max_flips=4, seed=2, bits="0-6", candidates=2)
    a = progressive_bit_search(mlp, *data, cfg)
    b = progressive_bit_search(mlp, *data, max_flips=4, seed=2, bits="0-6", candidates=2)
    c = progressive_bit_search(mlp, *data, SearchSettings(max_flips=9, seed=2), max_flips=4, bits="0-6", candidates=2)  # fmt: skip
    assert a.to_dict() == b.to_dict() == c.to_dict() and a.flips == 4
    with pytest.raises(ValueError, match="Invalid max_candidates"):
        SearchSettings(candidates=8, max_candidates=4)
    with pytest.raises(ValueError, match="Invalid granularity"):
        SearchSettings(granularity="row")


def test_attack_needs_far_fewer_flips_than_random(pbs, mlp, digits):
    rand = random_flip_baseline(mlp, digits.X_test, digits.y_test, pbs.flips, trials=20, seed=0)
    assert rand["mean_flips"] == pbs.flips
    assert rand["ci95"][0] > pbs.target_accuracy + 0.3  # random flips barely hurt


def test_restricted_bits_are_never_flipped(mlp, digits):
    r = progressive_bit_search(
        mlp, digits.X_train, digits.y_train, digits.X_test, digits.y_test, bits="0-6", max_flips=4
    )
    assert r.flips == 4 and all(s["bit"] != 7 for s in r.sites)


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(max_flips=0), "max_flips"),
        (dict(target_accuracy=1.5), "target_accuracy"),
        (dict(candidates=0), "candidates"),
        (dict(batch_size=0), "batch_size"),
        (dict(bits="9"), "bits"),
    ],
)
def test_bad_arguments_name_the_parameter(mlp, digits, kw, name):
    with pytest.raises(ValueError, match=f"Invalid {name}"):
        progressive_bit_search(
            mlp, digits.X_train, digits.y_train, digits.X_test, digits.y_test, **kw
        )
