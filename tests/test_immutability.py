"""No analysis mutates a model: every parameter and buffer of every model involved (the bundled
demo checkpoints included) is bit-identical afterwards (sha256), with the same tensors (no
re-assigned parameters), no gradients left behind, and the same train/eval mode.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import DEMO_CHECKPOINTS, state_digest

from sar_core.analysis import campaign as C
from sar_core.analysis import sweeps as S
from sar_core.data.io import checkpoint_bytes, load_checkpoint
from sar_core.data.models import ModelSpec, build_model
from sar_core.engine.evaluate import evaluate
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel
from sar_core.training.calibrate import calibrate_rho, fault_loss_increase, sam_loss_increase
from sar_core.training.loop import TrainConfig, spec_for, train

MIN_INJECTIONS = 10_000


def snapshot(model: torch.nn.Module) -> tuple:
    """Everything an analysis must leave alone."""
    params = list(model.named_parameters())
    return (
        state_digest(model),
        tuple(m.training for m in model.modules()),
        tuple((n, p.requires_grad, p.grad is None, p.data_ptr()) for n, p in params),
    )


def _array_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).view(np.uint8).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def zoo(demo):
    """Demo checkpoints (as loaded from assets/) plus a tiny MLP left in train mode."""
    models = {k: ck.model for k, ck in demo.items()}
    tiny = build_model(ModelSpec(arch="mlp", n_features=64, n_classes=10, widths=(8,)), 1)
    models["tiny_train_mode"] = tiny.train()
    return models


@pytest.fixture
def guard(zoo, digits):
    """Snapshot every model and the data before a test; check them all afterwards."""
    before = {k: snapshot(m) for k, m in zoo.items()}
    data_before = _array_digest(digits.X_train, digits.y_train, digits.X_test, digits.y_test)
    yield zoo
    for k, m in zoo.items():
        assert snapshot(m) == before[k], f"{k} was modified"
    assert (
        _array_digest(digits.X_train, digits.y_train, digits.X_test, digits.y_test) == data_before
    )


@pytest.fixture
def injections(monkeypatch):
    """Count the patterns Injector.chunk_delta applies (one faulty parameter set each; ``delta``
    is its one-pattern case) and the bits they change."""
    count = {"patterns": 0, "bits": 0}
    real = Injector.chunk_delta

    def counting(self, patterns):
        count["patterns"] += len(patterns)
        out = real(self, patterns)
        count["bits"] += int(out.n_changed.sum())
        return out

    monkeypatch.setattr(Injector, "chunk_delta", counting)
    return count


def test_demo_models_match_their_files(demo):
    """The shared demo models are bit-identical to freshly loaded copies of assets/."""
    assert len(DEMO_CHECKPOINTS) >= 6
    for path in DEMO_CHECKPOINTS:
        assert state_digest(load_checkpoint(path).model) == state_digest(demo[path.stem].model)


def test_ten_thousand_injections_leave_every_model_bit_identical(guard, digits, injections):
    zoo = guard
    X, y = digits.X_test[:32], digits.y_test[:32]
    mlps = [zoo[f"digits_mlp_{m}"] for m in ("sgd", "sam", "sar")]
    cnns = [zoo[f"digits_cnn_{m}"] for m in ("sgd", "sam", "sar")]
    tiny = zoo["tiny_train_mode"]
    # most trials on the MLPs and the tiny model (cheap); every format, granularity and helper
    C.compare(mlps, X, y, FaultModel(format="int8", ber=0.01), trials=1200, seed=1)
    C.compare(mlps, X, y, FaultModel(format="float32", bits="exponent", count=2), trials=600)
    C.compare(cnns, X, y, FaultModel(format="bfloat16", ber=0.001, include_bias=True), trials=60)
    C.compare(cnns, X, y, FaultModel(format="int8", count=50, granularity="channel"), trials=40)
    C.run_campaign(tiny, X, y, FaultModel(format="float16", ber=0.01), trials=2000)
    C.run_campaign(tiny, X, y, FaultModel(format="int8", count=3, include_bias=True), trials=1700)
    levels = S.iter_sweep(
        mlps[:2], X, y, FaultModel(format="int8", ber=0.1), bers=[1e-3, 0.05], trials=100
    )
    for _ in levels:
        pass
    S.sweep(cnns[:2], X, y, FaultModel(format="float16", ber=0.1), bers=[1e-4, 1e-3], trials=20)
    S.sweep_bits(mlps[2], X, y, FaultModel(format="int8", count=20), trials=40)
    S.sweep_layers(cnns[2], X, y, FaultModel(format="float32", bits=(30,), count=1), trials=20)
    assert injections["patterns"] >= MIN_INJECTIONS, injections
    assert injections["bits"] >= MIN_INJECTIONS


def test_injector_and_evaluate(guard, digits_small):
    X, y = digits_small
    for model in guard.values():
        for fmt in ("float32", "float16", "bfloat16", "int8"):
            inj = Injector(model, FaultModel(format=fmt, ber=0.01, include_bias=True))
            pattern = inj.sample(0)
            faulty = inj.apply(pattern)
            for t in faulty.values():  # mutating what comes back leaves the model alone
                t.add_(1.0) if t.is_floating_point() else None
            inj.perturbation(pattern)
            dep = inj.deployed()
            for t in dep.values():
                t.mul_(0.0)
            evaluate(model, X, y, faulty)
            evaluate(model, X, y)


def test_calibration(guard, digits_small):
    X, y = digits_small
    model = guard["digits_mlp_sar"]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    fm = FaultModel(format="float32", ber=1e-3)
    cal = calibrate_rho(model, Xt, yt, fm, geometry="elementwise", trials=4, iters=6)
    assert cal.excluded_bits == (30,)
    calibrate_rho(
        guard["digits_cnn_sam"], Xt, yt, FaultModel(format="int8", ber=0.01), trials=4, iters=4
    )
    calibrate_rho(
        guard["tiny_train_mode"], Xt, yt, FaultModel(format="int8", ber=0.01), trials=2, iters=3
    )
    fault_loss_increase(model, Xt, yt, FaultModel(format="int8", ber=0.02), 3, 0)
    for geometry in ("plain", "elementwise", "layer"):
        sam_loss_increase(model, Xt, yt, [0.0, 0.1, 1.0], geometry)


@pytest.mark.parametrize("method", ["sgd", "sar", "fat"])
def test_training_another_model(guard, digits, method):
    small = replace(digits, X_train=digits.X_train[:200], y_train=digits.y_train[:200])
    res = train(
        spec_for(small, "mlp", (8,)),
        small,
        TrainConfig(method=method, epochs=1, fault_model=FaultModel(format="int8", ber=0.01)),
    )
    assert all(res.model is not m for m in guard.values())


def test_saving_checkpoints(guard, demo):
    meta = {
        "method": "sgd",
        "config": {},
        "dataset": {"name": "digits", "seed": 0},
        "seed": 0,
        "metrics": {},
    }
    for name, ck in demo.items():
        load_checkpoint(checkpoint_bytes(guard[name], ck.spec, meta))


def test_landscape_functions(guard, digits_small):
    from sar_core.analysis import landscape as L

    X, y = digits_small
    for name in ("digits_mlp_sar", "digits_cnn_sgd", "tiny_train_mode"):
        model = guard[name]
        d = L.random_direction(model, 0)
        d1, d2 = L.direction_pair(model, 1, include_bias=True, normalize="layer")
        L.slice_1d(model, X, y, d, steps=5)
        L.slice_1d(model, X, y, d, alphas=[0.0, 0.5])
        L.slice_2d(model, X, y, d1, d2, steps=3)
        L.fault_direction_slice(
            model, X, y, FaultModel(format="float32", bits=(30,), count=1), steps=3
        )
        L.fault_direction_slice(model, X, y, FaultModel(format="int8", ber=0.01), steps=3)
        L.evaluate_combinations(model, X, y, [d, d1], [[1.0, 0.0], [0.0, 1.0]])
    L.interpolate(guard["digits_mlp_sgd"], guard["digits_mlp_sar"], X, y, steps=5)
    L.interpolate(guard["digits_cnn_sgd"], guard["digits_cnn_sam"], X, y, steps=3)


def test_sharpness_functions(guard, digits_small):
    from sar_core.analysis import sharpness as S

    X, y = digits_small[0][:32], digits_small[1][:32]
    fm = FaultModel(format="int8", ber=0.01)
    for name in ("digits_mlp_sam", "digits_cnn_sar", "tiny_train_mode"):
        model = guard[name]
        S.hessian_eigenvalues(model, X, y, k=2, iters=5)
        S.hessian_trace(model, X, y, samples=4, chunk_size=2)
        S.sam_sharpness(model, X, y, steps=2)
        S.sam_sharpness(model, X, y, steps=2, adaptive=True)
        S.average_sharpness(model, X, y, samples=4)
        S.fault_sharpness(model, X, y, fm, trials=3)
        theta, _ = S.flat_loss(model, X, y, dtype=torch.float64)
        S.hessian_vector_product(model, X, y, torch.ones(theta.numel()))
    S.sharpness_report(guard["tiny_train_mode"], X, y, fault_model=fm, trials=3)
