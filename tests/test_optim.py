"""SAM / ASAM / SAR against hand-computed ascent steps and the bare base optimizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sar_core.faults.model import FaultModel
from sar_core.training.optim import ASAM, SAM, SAR, SAR_DEFAULT_GEOMETRY, SAR_DEFAULT_RHO


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    X = torch.randn(32, 5)
    y = torch.randint(0, 3, (32,))
    return model, X, y


def _grads(model, X, y) -> list[np.ndarray]:
    model.zero_grad()
    F.cross_entropy(model(X), y).backward()
    return [p.grad.detach().double().numpy().copy() for p in model.parameters()]


def _params(model) -> list[np.ndarray]:
    return [p.detach().double().numpy().copy() for p in model.parameters()]


def _reference_ascent(ws, gs, rho, geometry, eta):
    """e = rho * T^2 g / ||T g|| in float64, T per the geometry (None = identity)."""
    if geometry == "plain":
        ts = [np.ones_like(w) for w in ws]
    elif geometry == "elementwise":
        ts = [np.abs(w) + eta for w in ws]
    else:  # layer: |w| / max|W_layer| + eta
        ts = [np.abs(w) / np.abs(w).max() + eta for w in ws]
    norm = np.sqrt(sum(float(np.sum((t * g) ** 2)) for t, g in zip(ts, gs)))
    return [rho * t * t * g / norm for t, g in zip(ts, gs)]


@pytest.mark.parametrize("geometry", ["plain", "elementwise", "layer"])
@pytest.mark.parametrize("rho", [0.05, 0.5])
def test_ascent_step_matches_manual_formula(geometry, rho):
    model, X, y = _setup(1)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=rho, geometry=geometry, eta=0.01, lr=0.1)
    w0 = _params(model)
    g = _grads(model, X, y)
    expected = _reference_ascent(w0, g, rho, geometry, 0.01)
    opt.first_step()
    moved = [w1 - w for w1, w in zip(_params(model), w0)]
    for m, e in zip(moved, expected):
        np.testing.assert_allclose(m, e, rtol=2e-4, atol=1e-7)
    if geometry == "plain":  # the step has length exactly rho
        assert np.sqrt(sum(float(np.sum(m**2)) for m in moved)) == pytest.approx(rho, rel=1e-5)


def test_plain_ascent_is_rho_times_unit_gradient():
    model, X, y = _setup(2)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
    w0 = _params(model)
    g = _grads(model, X, y)
    gnorm = np.sqrt(sum(float(np.sum(x**2)) for x in g))
    opt.first_step()
    for w1, w, gi in zip(_params(model), w0, g):
        np.testing.assert_allclose(w1 - w, 0.1 * gi / gnorm, rtol=2e-4, atol=1e-8)


def test_asam_is_elementwise_sam_and_sar_defaults_are_the_preset():
    model, _, _ = _setup(3)
    a = ASAM(model.parameters(), torch.optim.SGD, rho=0.3, lr=0.1)
    assert a.param_groups[0]["geometry"] == "elementwise" and a.param_groups[0]["rho"] == 0.3
    # the default geometry ("fault", SAR v3) takes its shape from the target: no target, no SAR
    with pytest.raises(ValueError, match="fault_model=None"):
        SAR(model.parameters(), torch.optim.SGD, lr=0.1)
    s = SAR(model.parameters(), torch.optim.SGD, lr=0.1, fault_model=FaultModel("int8", ber=0.01))
    g = s.param_groups[0]
    assert (g["geometry"], g["rho"]) == (SAR_DEFAULT_GEOMETRY, SAR_DEFAULT_RHO)
    s.set_rho(0.2)
    assert s.param_groups[0]["rho"] == 0.2


def test_ascent_direction_does_not_move_weights():
    model, X, y = _setup(4)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.5, lr=0.1)
    _grads(model, X, y)
    w0 = _params(model)
    e = opt.ascent_direction()
    assert len(e) == len(w0)
    assert all(np.array_equal(a, b) for a, b in zip(_params(model), w0))


class _RecordingSGD(torch.optim.SGD):
    """SGD that records the weights it sees when its step() starts."""

    seen: list[list[torch.Tensor]] = []

    def step(self, closure=None):
        type(self).seen.append([p.detach().clone() for g in self.param_groups for p in g["params"]])
        return super().step(closure)


def test_second_step_restores_w_exactly_before_the_base_step():
    model, X, y = _setup(5)
    _RecordingSGD.seen = []
    opt = SAM(model.parameters(), _RecordingSGD, rho=0.7, geometry="elementwise", lr=0.1)
    w0 = [p.detach().clone() for p in model.parameters()]
    _grads(model, X, y)
    opt.first_step(zero_grad=True)
    assert not all(torch.equal(p, w) for p, w in zip(model.parameters(), w0))  # moved to w + e
    _grads(model, X, y)
    opt.second_step(zero_grad=True)
    seen = _RecordingSGD.seen[-1]
    assert all(torch.equal(s, w) for s, w in zip(seen, w0))  # bit-exact w, not w + e - e


def test_descent_uses_the_gradient_at_the_perturbed_point():
    model, X, y = _setup(6)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.2, lr=1.0)
    w0 = [p.detach().clone() for p in model.parameters()]
    g0 = _grads(model, X, y)
    e = _reference_ascent([w.double().numpy() for w in w0], g0, 0.2, "plain", 0.01)
    # reference: gradient of the loss at w + e, by autograd on a fresh copy
    ref = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    with torch.no_grad():
        for p, w, ei in zip(ref.parameters(), w0, e):
            p.copy_(w + torch.from_numpy(ei).float())
    g_adv = [gi for gi in _grads(ref, X, y)]
    _grads(model, X, y)
    opt.first_step(zero_grad=True)
    _grads(model, X, y)
    opt.second_step()
    for p, w, g in zip(model.parameters(), w0, g_adv):
        np.testing.assert_allclose(p.detach().double().numpy(), w.double().numpy() - g, atol=1e-5)


def _run(make_opt, steps: int, sam: bool) -> list[torch.Tensor]:
    model, X, y = _setup(7)
    opt = make_opt(model.parameters())
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randperm(32, generator=gen)[:16]

        def closure(idx=idx):
            opt.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            return loss

        if sam:
            opt.step(closure)
        else:
            closure()
            opt.step()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize(
    "base, kwargs",
    [
        (torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=5e-4)),
        (torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True)),
        (torch.optim.Adam, dict(lr=0.01, weight_decay=1e-4)),
    ],
)
@pytest.mark.parametrize("cls", [SAM, ASAM, SAR])
def test_rho_zero_reproduces_the_base_optimizer_bit_exactly(base, kwargs, cls):
    ref = _run(lambda ps: base(ps, **kwargs), steps=12, sam=False)
    extra = {"fault_model": FaultModel("int8", ber=0.01)} if cls is SAR else {}
    got = _run(lambda ps: cls(ps, base, rho=0.0, **extra, **kwargs), steps=12, sam=True)
    assert all(torch.equal(a, b) for a, b in zip(ref, got))


def test_positive_rho_differs_from_base():
    kwargs = dict(lr=0.1, momentum=0.9)
    ref = _run(lambda ps: torch.optim.SGD(ps, **kwargs), steps=5, sam=False)
    got = _run(lambda ps: SAM(ps, torch.optim.SGD, rho=0.05, **kwargs), steps=5, sam=True)
    assert not all(torch.equal(a, b) for a, b in zip(ref, got))


def test_step_with_closure_equals_first_and_second_step():
    def manual(ps):
        return SAM(ps, torch.optim.SGD, rho=0.1, geometry="layer", lr=0.1, momentum=0.9)

    a = _run(manual, steps=6, sam=True)
    model, X, y = _setup(7)
    opt = manual(model.parameters())
    gen = torch.Generator().manual_seed(0)
    for _ in range(6):
        idx = torch.randperm(32, generator=gen)[:16]
        opt.zero_grad()
        F.cross_entropy(model(X[idx]), y[idx]).backward()
        opt.first_step(zero_grad=True)
        F.cross_entropy(model(X[idx]), y[idx]).backward()
        opt.second_step(zero_grad=True)
    assert all(torch.equal(p.detach(), q) for p, q in zip(model.parameters(), a))


def test_step_without_closure_is_a_clear_error():
    model, _, _ = _setup(8)
    opt = SAM(model.parameters(), torch.optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match="closure"):
        opt.step()
