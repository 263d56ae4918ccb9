"""SAR v3: the int8 range s(w) = max|W| / 127 inside SAR's objective, checked against references.

References: torch autograd through ``amax`` (an independent path from the closed-form range
gradient in ``optim._add_range_grad``), the NumPy int8 encoder of ``sar_core.formats.bits`` for the
sampled fault, and SGD bit for bit at rho = 0.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sar_core.faults.model import FaultModel
from sar_core.formats import bits as B
from sar_core.training.loop import TrainConfig, divergence_message, spec_for, train
from sar_core.training.optim import SAR, _add_range_grad
from sar_core.training.randbet import clip_bounds


@pytest.mark.parametrize("gran", ["tensor", "channel"])
def test_range_gradient_matches_autograd_through_the_max(gran):
    """d/dw L(w + v s(w)), v fixed, s = max|w|/127 per tensor or row: autograd vs closed form."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    v = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    c = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    wr = w.clone().requires_grad_(True)
    amax = wr.abs().amax(dim=1, keepdim=True) if gran == "channel" else wr.abs().amax()
    s = amax / 127
    (torch.sin(c * (wr + v * s)).sum()).backward()  # any smooth loss
    ref = wr.grad
    # closed form: g' at the perturbed point, plus (g' . delta / s) ds/dw at each max
    s_fixed = s.detach()
    g_up = c * torch.cos(c * (w + v * s_fixed))
    got = g_up.clone()
    _add_range_grad(got, v * s_fixed, w, gran)
    torch.testing.assert_close(got, ref)
    assert not torch.equal(got, g_up)  # the range term is really there


def _named_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


def test_sampled_fault_is_an_int8_code_flip_of_the_target():
    """At rho -> 0 the ascent point minus w is the sampled fault: (decode(flip(q)) - decode(q))."""
    model = _named_model()
    fm = FaultModel(format="int8", ber=0.05)
    opt = SAR(
        model.named_parameters(),
        rho=1e-12,
        geometry="fault",
        fault_model=fm,
        fault_sample=True,
        lr=0.1,
    )
    x, y = torch.randn(16, 6), torch.randint(0, 3, (16,))
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    nn.functional.cross_entropy(model(x), y).backward()
    opt.first_step(zero_grad=True)
    for n, p in model.named_parameters():
        d = (p.detach() - w0[n]).numpy().astype(np.float64)
        if p.dim() < 2:  # biases are not in the fault model's reach
            np.testing.assert_allclose(d, 0, atol=1e-9)
            continue
        w = w0[n].numpy()
        scale = B.int8_scale(w, "tensor")
        q = B.encode(w, "int8", scale).astype(np.uint8).view(np.int8).astype(np.int64)
        dq = d / scale  # integer code differences, each a flip pattern of the code
        np.testing.assert_allclose(dq, np.round(dq), atol=1e-3)
        qf = (q + np.round(dq)).astype(np.int64)
        assert ((qf >= -128) & (qf <= 127)).all()
        flipped = q.astype(np.int8).view(np.uint8) ^ qf.astype(np.int8).view(np.uint8)
        frac = np.unpackbits(flipped.reshape(-1, 1), axis=1).mean()
        assert 0 < frac < 0.2  # about the target rate of flipped bits
    opt.second_step()  # no gradient at the ascent point: the base step does nothing
    for n, p in model.named_parameters():  # w restored exactly, not w + e + D - e - D
        assert torch.equal(p.detach(), w0[n])


def test_v3_terms_need_the_fault_geometry_and_an_int8_target():
    model = _named_model()
    with pytest.raises(ValueError, match="range_grad"):
        SAR(
            model.parameters(),
            geometry="elementwise",
            range_grad=True,
            fault_model=FaultModel(format="int8", ber=0.01),
            lr=0.1,
        )
    with pytest.raises(ValueError, match="int8"):
        SAR(
            model.parameters(),
            geometry="fault",
            fault_sample=True,
            fault_model=FaultModel(format="float16", ber=1e-4),
            lr=0.1,
        )
    cfg = TrainConfig(method="sar", fault_model=FaultModel(format="float16", ber=1e-4))
    off = {"range_grad": False, "fault_sample": False, "fault_mean": 0.0, "fault_mean_alt": False}
    assert cfg.sar_v3 == off  # floats: v2 intensity only
    with pytest.raises(ValueError, match="fault_mean"):
        SAR(
            model.parameters(),
            geometry="fault",
            fault_mean=0.5,
            lr=0.1,
            fault_model=FaultModel(format="float16", ber=1e-4),
        )


def test_default_sar_targets_give_different_weights_and_rho_zero_is_sgd(digits):
    spec = spec_for(digits, "mlp", widths=(16,))
    base = dict(method="sar", epochs=2, seed=3)
    targets = [
        FaultModel(format="int8", ber=0.01),
        FaultModel(format="int8", ber=0.03),
        FaultModel(format="int8", ber=0.01, granularity="channel"),
        FaultModel(format="float16", ber=1e-4),
    ]
    models = [train(spec, digits, TrainConfig(fault_model=fm, **base)).model for fm in targets]
    for i in range(len(models)):
        for j in range(i + 1, len(models)):
            assert not all(
                torch.equal(p, q) for p, q in zip(models[i].parameters(), models[j].parameters())
            ), (targets[i], targets[j])
    sgd = train(spec, digits, TrainConfig(method="sgd", epochs=2, seed=3)).model
    zero = train(spec, digits, TrainConfig(rho=0.0, fault_model=targets[0], **base)).model
    assert all(torch.equal(p, q) for p, q in zip(sgd.parameters(), zero.parameters()))


def test_relative_clip_bounds_follow_each_layers_initial_range(digits):
    spec = spec_for(digits, "mlp", widths=(32,))
    res = train(spec, digits, TrainConfig(method="clip", epochs=2, seed=1, w_max_rel=0.5))
    from sar_core.data.models import build_model

    init = build_model(spec, 1)
    bounds = clip_bounds(init, None, 0.5)
    for n, p in init.named_parameters():
        if p.dim() > 1:
            assert bounds[n] == pytest.approx(0.5 * float(p.detach().abs().max()))
    got = dict(res.model.named_parameters())
    for n, b in bounds.items():
        assert float(got[n].detach().abs().max()) <= b * (1 + 1e-6)
    assert len(set(bounds.values())) > 1  # layers of different fan-in: different bounds


class _Fragile(nn.Module):
    """A linear model whose output is infinite once a weight leaves [-1, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        out = self.lin(x)
        return out * float("inf") if bool(self.lin.weight.abs().max() > 1) else out


def test_divergence_is_blamed_on_rho_when_the_ascent_point_blew_up(digits):
    from sar_core.training.loop import TrainResult, _batch_step
    from sar_core.training.optim import SAM

    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    cause = {}
    for rho in (5.0, 0.0):
        model = _Fragile()
        cfg = TrainConfig(method="sam", rho=rho, lr=0.05)
        opt = SAM(model.parameters(), rho=rho, lr=0.05)
        for _ in range(3):
            _batch_step(model, opt, cfg, x, y, None)
        res = TrainResult(
            model=model, spec=None, config=cfg, diverged=getattr(opt, "diverged", None)
        )
        cause[rho] = (res.diverged, divergence_message(res))
    assert cause[5.0][0] == "ascent" and cause[5.0][1].startswith("Invalid rho=5.0")
    assert "smaller --rho" in cause[5.0][1]
    assert cause[0.0] == (None, None)  # no ascent: nothing left [-1, 1], nothing diverged
    # a learning rate that blows up at w itself is blamed on the learning rate
    spec = spec_for(digits, "mlp", widths=(16,))
    res = train(spec, digits, TrainConfig(method="sgd", lr=10.0, epochs=2, seed=0))
    assert divergence_message(res).startswith("Invalid lr=10.0")
    ok = train(spec, digits, TrainConfig(method="sgd", epochs=1, seed=0))
    assert ok.diverged is None and divergence_message(ok) is None


def test_labels_tell_sar_variants_apart():
    fm = FaultModel(format="int8", ber=0.01)
    labels = {
        TrainConfig(method="sar", fault_model=fm).label,
        TrainConfig(
            method="sar", geometry="fault", range_grad=False, fault_sample=False, fault_model=fm
        ).label,
        TrainConfig(method="sar", geometry="elementwise", fault_model=fm).label,
        TrainConfig(method="sar", fault_model=fm.with_rate(ber=0.02)).label,
        TrainConfig(method="asam", rho=1.0).label,
    }
    assert len(labels) == 5


def test_cli_targets_give_different_checkpoints_and_compare_labels_tell_them_apart(
    tmp_path, capsys
):
    import json

    from sar_core.cli import main

    paths = []
    for i, extra in enumerate(
        (
            ["--target-ber", "0.01"],
            ["--target-ber", "0.03"],
            ["--target-ber", "0.01", "--target-granularity", "channel"],
        )
    ):
        out = tmp_path / f"m{i}.safetensors"
        args = ["train", "--method", "sar", "--dataset", "wine", "--epochs", "2", "--quiet"]
        assert main([*args, *extra, "--out", str(out)]) == 0
        paths.append(out)
    from sar_core.data.io import load_checkpoint

    weights = [load_checkpoint(p).model.state_dict() for p in paths]
    for i in range(3):  # the old bug: three targets gave identical weights
        for j in range(i + 1, 3):
            assert not all(torch.equal(weights[i][k], weights[j][k]) for k in weights[i])
    capsys.readouterr()
    argv = ["compare", "--models", *map(str, paths), "--format", "int8", "--ber", "0.05"]
    assert main([*argv, "--trials", "3", "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert [r["method"] for r in res] == ["sar"] * 3
    assert len({r["label"] for r in res}) == 3


def test_fat_trains_at_a_fraction_of_the_target_rate_and_reports_it():
    fm = FaultModel(format="int8", ber=0.02)
    cfg = TrainConfig(method="fat", fault_model=fm)
    assert cfg.training_faults.ber == pytest.approx(0.02 * cfg.fat_scale) and cfg.fat_scale < 1
    assert cfg.target == fm  # the target itself is unchanged (what the model is judged against)
    assert TrainConfig(method="fat", fault_model=fm, fat_scale=1.0).training_faults == fm
    count = TrainConfig(method="fat", fault_model=fm.with_rate(count=40), fat_scale=0.1)
    assert count.training_faults.count == 4
    assert cfg.to_dict()["fat_scale"] == cfg.fat_scale
    assert "fat_scale" not in TrainConfig(method="sgd").to_dict()
    with pytest.raises(ValueError, match="fat_scale"):
        TrainConfig(method="fat", fat_scale=0.0)


def test_fault_mean_moves_the_ascent_point_by_the_expected_int8_fault():
    """E[dq | q] over independent flips of all 8 bits at rate p is -p (2q + 1) (closed form,
    two's complement); kappa = 1 adds that times the scale s at the ascent point."""
    torch.manual_seed(0)
    lin = nn.Linear(6, 4)
    w0 = lin.weight.detach().clone()
    p = 0.1
    opt = SAR(
        lin.parameters(),
        geometry="fault",
        rho=1e-12,
        fault_mean=1.0,
        lr=0.1,
        fault_model=FaultModel(format="int8", ber=p),
    )
    x = torch.randn(8, 6)
    lin(x).square().mean().backward()
    opt.first_step(zero_grad=True)
    s = float(w0.abs().max()) / 127
    q = np.round(w0.numpy().astype(np.float64) / s)
    expected = -p * (2 * q + 1) * s
    assert np.allclose(lin.weight.detach().numpy() - w0.numpy(), expected, atol=1e-6)
    # a Monte Carlo of the same flips on the int8 codes agrees with the closed form
    rng = np.random.default_rng(0)
    codes = q.astype(np.int8).view(np.uint8)
    hits = (rng.random((20000, *codes.shape, 8)) < p) * (1 << np.arange(8))
    flipped = (codes ^ hits.sum(-1).astype(np.uint8)).view(np.int8).astype(np.float64)
    assert np.allclose(flipped.mean(0) - q, -p * (2 * q + 1), atol=1.5)  # ~4.5 MC sigma


@pytest.mark.parametrize("bits", [tuple(range(8)), (7,), (0, 1, 2, 6)])
def test_expected_int8_fault_equals_a_numpy_sum_over_the_bits(bits):
    from sar_core.training.randbet import expected_int8_fault

    torch.manual_seed(3)
    w = torch.randn(5, 7)
    s = w.abs().max() / 127
    q = np.clip(np.round(w.numpy() / float(s)), -128, 127).astype(np.int8)
    dq = np.zeros(q.shape)
    for b in bits:  # flipping bit b of the code, read back as int8
        dq += (q.view(np.uint8) ^ np.uint8(1 << b)).view(np.int8).astype(np.float64) - q
    got = expected_int8_fault(w, s, bits, 0.1).numpy()
    assert np.allclose(got, 0.1 * dq * float(s), atol=1e-6)


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_mean_fault_on_the_buffers_equals_the_per_tensor_function_bit_for_bit(granularity):
    from sar_core.training.fault_geometry import Int8Rows
    from sar_core.training.randbet import expected_int8_fault

    torch.manual_seed(4)
    ps = [torch.randn(6, 5), torch.randn(3, 2, 3, 3), torch.zeros(4, 4), torch.randn(9) * 1e-3]
    rows = Int8Rows(ps, granularity)
    torch._foreach_copy_(rows.views, ps)
    rows.find_max()
    rows.set_t(1.0)
    got = rows.mean_fault(0.0123)
    for p, g, w, s in zip(ps, got, rows.views, rows.scale_views):
        assert torch.equal(g, expected_int8_fault(w, s, tuple(range(8)), 0.0123)), p.shape
