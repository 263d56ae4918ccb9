"""SAR's optimizer step against a plain re-implementation of its update, written out here.

The reference below takes every step of SAR's formula with one torch op per tensor (and a Python
loop over the rows of the range gradient), in the formula's order: T (int8: from the injector's
scale, bits.int8_scale), T g, ||T g||, the ascent w + r T (T g) / ||T g||, the gradient at the
ascent point, the range term, restore w, base step (torch's SGD, the optimizer SAR wraps), then
the optional clamp. SAR batches the same float32 operations over tensors and rows (``Int8Rows``,
its row work in NumPy or in torch), so after several steps the weights must be bit-identical, on
an MLP and a CNN, for int8 targets per tensor and per channel (SAR v3, also with a sampled fault,
clamped, with a weight tensor in the band where max|w| / 127 rounds to 0; SAR v2) and a float16
target (SAR v2); at rho = 0 SAR is torch's SGD bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sar_core.data.models import build_model
from sar_core.faults.model import FaultModel, eligible_parameters
from sar_core.formats import bits as B
from sar_core.training.fault_geometry import Int8Rows, fault_intensity
from sar_core.training.loop import spec_for
from sar_core.training.optim import SAR, _add_range_grad
from sar_core.training.randbet import clip_weights, random_bit_errors
from sar_core.training.sam import _ascent_scale


def _batches(digits, n: int):
    X, y = torch.as_tensor(digits.X_train), torch.as_tensor(digits.y_train)
    return [(X[32 * i : 32 * i + 32], y[32 * i : 32 * i + 32]) for i in range(n)]


def _loss_backward(model, X, y) -> None:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(X), y).backward()


def _reference_sar(
    model,
    batches,
    fm: FaultModel,
    rho: float,
    range_grad: bool,
    sample: bool = False,
    clip=None,
    **sgd,
) -> None:
    """SAR by hand, per tensor, in the order of its formula; torch's SGD is the base step."""
    params = dict(model.named_parameters())
    hit = set(eligible_parameters({n: tuple(p.shape) for n, p in params.items()}, fm))
    kept = [b for b in fm.bits if not (fm.format == "float16" and b == 14)]  # exponent MSB out
    radius = rho * math.sqrt(fm.ber * sum(params[n].numel() for n in hit) * len(kept))
    rms_dq = math.sqrt(sum((128.0 if b == 7 else 2.0**b) ** 2 for b in kept) / len(kept))
    base = torch.optim.SGD(model.parameters(), **sgd)
    gen = torch.Generator().manual_seed(0 + 7919)  # SAR's own fault draws: its seed + 7919
    for X, y in batches:
        _loss_backward(model, X, y)
        with torch.no_grad():
            w = {n: p.detach().clone() for n, p in params.items()}
            t, s_of = {}, {}
            for n, p in params.items():
                if n not in hit:
                    t[n] = torch.zeros(())  # no ascent where the faults cannot hit
                elif fm.format == "int8":  # the injector's s = max|W| / 127 (NumPy, float32)
                    s = torch.from_numpy(B.int8_scale(p.detach().numpy(), fm.granularity))
                    t[n], s_of[n] = s * rms_dq, s
                else:
                    t[n] = fault_intensity(p, fm)
            tg = {n: t[n] * p.grad for n, p in params.items()}
            norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(tg[n]) for n in params])
            )
            scale = float(radius / (norm + 1e-12))
            for n, p in params.items():
                p.addcmul_(t[n], tg[n], value=scale)  # w + r T (T g) / ||T g||
            for n in params if sample else ():  # a target fault D = (flip(q) - q) s, in order
                if n in hit:
                    q = torch.round(w[n] / s_of[n]).clamp(-127, 127).to(torch.int8)
                    qf, _ = random_bit_errors(q, fm.bits, fm.ber, gen)
                    params[n].add_((qf.float() - q.float()) * s_of[n])
        _loss_backward(model, X, y)  # g' at the ascent point
        with torch.no_grad():
            if range_grad:  # g'[k] += (g' . (p - w)) / max|w| * sign(w[k]), k = first argmax
                for n in hit:  # where s = max|w| / 127 (elsewhere s = 1: constant, no term)
                    p = params[n]
                    rows = p.shape[0] if fm.granularity == "channel" and p.dim() > 1 else 1
                    w2, g2 = w[n].reshape(rows, -1), p.grad.view(rows, -1)
                    d2 = (p - w[n]).reshape(rows, -1)
                    m, k = w2.abs().max(dim=1)
                    for r in range(rows):
                        if m[r] / 127.0 > 0:
                            dot = (g2[r] * d2[r]).sum()
                            g2[r, k[r]] += dot / m[r] * torch.sign(w2[r, k[r]])
            for n, p in params.items():
                p.copy_(w[n])
        base.step()
        if clip is not None:
            clip_weights(model, clip)


def _sar(
    model,
    batches,
    fm: FaultModel,
    rho: float,
    range_grad: bool,
    sample: bool = False,
    clip=None,
    **sgd,
) -> None:
    opt = SAR(
        model.named_parameters(),
        torch.optim.SGD,
        rho=rho,
        geometry="fault",
        fault_model=fm,
        range_grad=range_grad,
        fault_sample=sample,
        **sgd,
    )
    for X, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(X), y).backward()
        opt.first_step(zero_grad=True)
        F.cross_entropy(model(X), y).backward()
        opt.second_step()
        if clip is not None:
            clip_weights(model, clip)


def _into_the_band(model) -> None:
    """The first weight tensor's max|w| into (0, 63 * 2^-149], where max|w| / 127 rounds to 0:
    the injector's scale is then 1 (and the range term off), the previous training code's 0."""
    w = next(p for p in model.parameters() if p.dim() > 1)
    with torch.no_grad():
        codes = torch.arange(w.numel()).reshape(w.shape) % 61 - 30  # |codes| <= 30
        w.copy_(codes.float() * 2.0**-149)  # exact subnormals; max|w| = 30 * 2^-149
    assert (
        B.int8_scale(w.detach().numpy()) == 1.0
        and 0 < float(w.detach().abs().max()) / 127 < 2**-149
    )


_I8 = FaultModel(format="int8", ber=0.01)
_I8C = FaultModel(format="int8", ber=0.01, granularity="channel")
_I8V2 = FaultModel(format="int8", ber=0.01, bits=(0, 3, 7))
_F16 = FaultModel(format="float16", ber=1e-4)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
@pytest.mark.parametrize(
    "fm, range_grad, sample, clip, band",
    [
        (_I8, True, False, None, False),  # SAR v3, per tensor
        (_I8C, True, False, None, False),  # SAR v3, per channel
        (FaultModel(format="int8", ber=1e-3), True, True, None, False),  # + a sampled fault
        (_I8, True, False, 0.05, False),  # clamped to +-0.05 after each step
        (_I8, True, False, None, True),  # first weight tensor in the scale-1 band
        (_I8C, True, False, 0.05, True),
        (_I8V2, False, False, None, False),  # SAR v2 int8
        (_I8V2, False, False, 0.05, True),
        (_F16, False, False, None, False),  # SAR v2 float16
        (_F16, False, False, 0.05, False),
    ],
    ids=[
        "int8-tensor-v3",
        "int8-channel-v3",
        "int8-v3-sampled",
        "int8-tensor-v3-clip",
        "int8-tensor-v3-band",
        "int8-channel-v3-clip-band",
        "int8-v2",
        "int8-v2-clip-band",
        "float16-v2",
        "float16-v2-clip",
    ],
)
@pytest.mark.parametrize("rows_on", ["numpy", "torch"])
def test_sar_steps_equal_the_plain_reimplementation_bit_for_bit(
    digits, monkeypatch, arch, fm, range_grad, sample, clip, band, rows_on
):
    """Several steps of SAR (from an MLP or CNN start, or with its first weight tensor in the band
    where max|w| / 127 rounds to 0; clamped to +-clip after each step or not) against the
    reference, with the row work of ``Int8Rows`` in NumPy and in torch."""
    monkeypatch.setattr(Int8Rows, "use_numpy", rows_on == "numpy")
    spec = spec_for(digits, arch)
    batches = _batches(digits, 4)
    sgd = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
    ref, got, init = build_model(spec, 0), build_model(spec, 0), build_model(spec, 0)
    for m in (ref, got, init) if band else ():
        _into_the_band(m)
    rho = 0.05
    _reference_sar(ref, batches, fm, rho, range_grad, sample, clip, **sgd)
    _sar(got, batches, fm, rho, range_grad, sample, clip, **sgd)
    if clip is not None:  # the clamp really binds
        assert any(bool((p.abs() == clip).any()) for p in got.parameters() if p.dim() > 1)
    moved = 0
    for (n, a), b, c in zip(ref.named_parameters(), got.parameters(), init.parameters()):
        assert torch.equal(a, b), (n, float((a - b).abs().max()))
        moved += not torch.equal(a, c)
    assert moved == len(list(init.parameters()))  # every tensor trained, nothing vacuous


def test_the_range_term_changes_the_weights(digits):
    """v3 and v2 part from the same start: the range term is really applied."""
    spec = spec_for(digits, "mlp")
    batches = _batches(digits, 2)
    fm = FaultModel(format="int8", ber=0.01)
    a, b = build_model(spec, 0), build_model(spec, 0)
    _sar(a, batches, fm, 0.05, True, lr=0.05)
    _sar(b, batches, fm, 0.05, False, lr=0.05)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("fm", [_I8, _I8C, _I8V2, _F16], ids=["v3", "v3-channel", "v2", "f16"])
def test_rho_zero_is_sgd_bit_for_bit(digits, fm):
    spec = spec_for(digits, "cnn")
    batches = _batches(digits, 3)
    sgd = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)
    ref, got = build_model(spec, 0), build_model(spec, 0)
    base = torch.optim.SGD(ref.parameters(), **sgd)
    for X, y in batches:
        _loss_backward(ref, X, y)
        base.step()
    _sar(got, batches, fm, 0.0, fm.format == "int8" and fm.bits == _I8.bits, **sgd)
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), got.parameters()))


def _rows_reference(p: torch.Tensor, per_channel: bool):
    rows = p.shape[0] if per_channel and p.dim() > 1 else 1
    flat = p.detach().reshape(rows, -1).numpy()
    a = np.abs(flat)
    m = a.max(axis=1)
    first = np.array([int(np.flatnonzero(a[r] == m[r])[0]) for r in range(rows)])
    return m, first, flat[np.arange(rows), first]


@pytest.mark.parametrize("host", [True, False], ids=["numpy", "torch"])
@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_int8_rows_give_each_rows_max_and_its_first_position(granularity, host):
    gen = torch.Generator().manual_seed(0)
    ps = [
        torch.randn(6, 5, generator=gen),
        torch.randn(4, 2, 3, 3, generator=gen),
        torch.randn(7, generator=gen),
        torch.zeros(3, 4),  # all-zero rows: max 0 at position 0
        torch.randn(3, 40000, generator=gen),  # long rows: a buffer of their own
    ]
    ps[0][1, 3] = -ps[0].abs().max() - 1  # negative maximum
    ps[0][2, :] = 0.5  # ties: the first one counts
    ps[1][2] = torch.tensor(-2.0)  # ties across a whole channel
    ps[1][3] = 5 * 2.0**-149  # a channel in the band where max|w| / 127 rounds to 0
    rows = Int8Rows(ps, granularity, host=host)
    assert rows.host == host
    assert len(rows.buffers) == 2  # the long rows would pad the short ones 2000x
    torch._foreach_copy_(rows.views, ps)
    rows.find_max()
    amax, first = rows.amax.clone(), rows.first.clone()
    w_top = rows.gather_top().view(-1).numpy()
    top = rows.top.view(-1)
    r0 = 0
    for p in ps:
        m, k, w = _rows_reference(p, granularity == "channel")
        n = len(m)
        np.testing.assert_array_equal(amax.view(-1)[r0 : r0 + n].numpy(), m)
        np.testing.assert_array_equal(first.view(-1)[r0 : r0 + n].numpy(), k)
        np.testing.assert_array_equal(w_top[r0 : r0 + n], w)
        np.testing.assert_array_equal(  # the flat positions hold the same values in p
            p.reshape(-1)[top[r0 : r0 + n]].numpy(), w
        )
        r0 += n
    assert r0 == amax.shape[0]
    rows.amax.zero_()
    rows.find_max(ps, first=False)  # |w| copied from ps, max only
    np.testing.assert_array_equal(rows.amax.numpy(), amax.numpy())
    rows.set_t(3.5)  # s by the injector's rule; pos: where s = max|w| / 127
    s_ref = np.concatenate(  # one row for a 1-D tensor (the injector would give one per element)
        [B.int8_scale(p.numpy(), granularity if p.dim() > 1 else "tensor").ravel() for p in ps]
    )
    np.testing.assert_array_equal(rows.scale.view(-1).numpy(), s_ref)
    np.testing.assert_array_equal(rows.t.view(-1).numpy(), s_ref * np.float32(3.5))
    np.testing.assert_array_equal(rows.pos.view(-1).numpy(), amax.view(-1).numpy() / 127 > 0)
    assert (granularity == "channel") == bool((~rows.pos & (rows.amax > 0)).any())  # the band
    for buf, content in zip(rows.buffers, ([0, 1, 2, 3], [4])):
        real = sum(ps[i].numel() for i in content)
        assert buf.numel() <= 2 * real + 4096  # padding is bounded


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_range_term_on_a_non_contiguous_gradient_equals_the_contiguous_one(granularity):
    gen = torch.Generator().manual_seed(3)
    w, delta = torch.randn(5, 7, generator=gen), torch.randn(5, 7, generator=gen)
    g0 = torch.randn(7, 5, generator=gen).t()  # (5, 7), not contiguous
    g_t, g_c = g0.clone(memory_format=torch.preserve_format), g0.contiguous()
    assert not g_t.is_contiguous() and g_c.is_contiguous()
    _add_range_grad(g_t, delta, w, granularity)
    _add_range_grad(g_c, delta, w, granularity)
    assert torch.equal(g_t, g_c)
    # one entry per row changed: at the first max of |w| of the tensor (or of each row)
    k = w.abs().argmax() if granularity == "tensor" else w.abs().argmax(dim=1) + 7 * torch.arange(5)
    changed = (g_c != g0).reshape(-1).nonzero().reshape(-1)
    assert torch.equal(changed, k.reshape(-1))


def test_ascent_scale_rounds_as_the_float32_tensor_expression():
    gen = torch.Generator().manual_seed(0)
    norms = torch.rand(3000, generator=gen) * 10.0 ** torch.randint(-40, 38, (3000,), generator=gen)
    special = [0.0, 1e-45, 1e-12, 3.4e38, float("inf"), float("nan")]
    norms = torch.cat([norms, torch.tensor(special)])
    for radius in (0.05, 1.0, 0.015 * 31.7, 7e-6):
        for n in norms:
            want = float(radius / (n + 1e-12))
            got = _ascent_scale(radius, np.float32(n.item()))
            assert got == want or (math.isnan(got) and math.isnan(want)), (radius, float(n))


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_training_int8_scales_equal_bits_int8_scale_bit_for_bit(granularity):
    """The training code's int8 scales (randbet.int8_codes, fault_intensity and Int8Rows.set_t in
    NumPy and torch, SAR's step) against the injector's, bits.int8_scale: equal bit for bit on
    zeros, subnormal and normal ranges, including the band 0 < max|w| <= 63 * 2^-149 where
    max|w| / 127 rounds to 0 and the scale is 1 (the training code gave 0 there before it used the
    shared rule)."""
    from sar_core.training.randbet import int8_codes

    fm = FaultModel(format="int8", ber=0.01, granularity=granularity, bits=(0,))
    sub = 2.0**-149
    band = 0
    for k in [0, 1, 2, 63, 64, 65, 127, 128, 1000, 2**23, 2**24, 2**30]:
        for scale in (1.0, 2.0**40, 2.0**100):
            top = np.float32(k * sub * scale)
            w = np.array([[top, -top / 2, 0.0], [0.0, 0.0, 0.0], [-top, 0.0, top]], np.float32)
            want = B.int8_scale(w, granularity)
            if 0 < top <= 63 * sub:  # max|w| / 127 rounds to 0: every row's scale is 1
                band += 1
                assert (want == 1).all() and (w.reshape(3, -1).max(1) / 127 == 0).all()
            wt = torch.from_numpy(w)
            _, s = int8_codes(wt, granularity)
            t = fault_intensity(wt, fm)  # one bit: T = s * |dq| = s * 1
            s_t = t.amax(dim=1, keepdim=True) if granularity == "channel" else t.amax()
            got = [s.numpy(), s_t.numpy()]
            for host in (True, False):
                rows = Int8Rows([wt], granularity, host=host)
                rows.views[0].copy_(wt)
                rows.find_max(first=False)
                rows.set_t(1.0)
                got += [rows.scale.view(want.shape).numpy(), rows.t.view(want.shape).numpy()]
            for g in got:
                np.testing.assert_array_equal(g, want)
                assert g.dtype == np.float32
    assert band == 3  # 1, 2 and 63 x 2^-149


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_int8_ascent_direction_is_the_first_steps_move_and_moves_nothing(digits, granularity):
    spec = spec_for(digits, "cnn")
    model = build_model(spec, 0)
    fm = FaultModel(format="int8", ber=0.01, granularity=granularity)
    opt = SAR(model.named_parameters(), rho=0.05, fault_model=fm, range_grad=True, lr=0.1)
    ((X, y),) = _batches(digits, 1)
    F.cross_entropy(model(X), y).backward()
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    e = opt.ascent_direction()
    assert all(torch.equal(p, w0[n]) for n, p in model.named_parameters())
    opt.first_step()
    for n, p in model.named_parameters():
        moved = p.detach() - w0[n]
        if p.dim() < 2:  # biases: out of the fault model's reach
            assert torch.equal(e[p], torch.zeros_like(p)) and torch.equal(moved, e[p])
        else:
            # e = (T (T g)) r/||Tg|| here, (r/||Tg|| T) (T g) in the step: a few roundings of e
            # apart (<= 3 eps |e|), and w + e rounds once (<= eps/2 (|w| + |e|)); w + e - w is
            # then exact (Sterbenz) or rounds once more
            bound = torch.finfo(torch.float32).eps * (p.detach().abs() + 4 * e[p].abs())
            assert bool(((moved - e[p]).abs() <= bound).all()) and bool(e[p].abs().sum() > 0)


def test_ascent_direction_during_a_step_leaves_the_step_alone(digits):
    spec = spec_for(digits, "mlp")
    fm = FaultModel(format="int8", ber=0.01)
    batches = _batches(digits, 2)
    models = [build_model(spec, 0), build_model(spec, 0)]
    for look in (False, True):
        model = models[look]
        opt = SAR(model.named_parameters(), rho=0.05, fault_model=fm, range_grad=True, lr=0.1)
        for X, y in batches:
            opt.zero_grad()
            F.cross_entropy(model(X), y).backward()
            opt.first_step(zero_grad=True)
            F.cross_entropy(model(X), y).backward()
            if look:  # at the ascent point, with its gradient: other rows and maxima
                assert len(opt.ascent_direction()) == len(list(model.parameters()))
            opt.second_step()
    assert all(torch.equal(p, q) for p, q in zip(models[0].parameters(), models[1].parameters()))
