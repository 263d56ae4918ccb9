"""The one int8 scale rule (``bits.int8_scale_of_max``, used by ``bits.int8_scale``, the injector,
and the training code) against an independent reference: the float64 quotient rounded to float32.

For a float32 m, m / 127 rounded once to float32 equals float32(float64(m) / 127): float64 carries
more than twice float32's precision plus two bits, so the double rounding is innocuous.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sar_core.formats import bits as B

SUB = 2.0**-149  # the smallest float32 subnormal


def _ranges() -> np.ndarray:
    """max|w| values: zero, every subnormal (k x 2^-149) up to k = 300, so both sides of the band
    edge at 63.5 x 2^-149, powers of two over the whole float32 range, random normals, the largest
    finite float32, the float32 below each of these, and NaN."""
    gen = np.random.default_rng(0)
    subnormal = np.arange(0, 301) * SUB
    powers = 2.0 ** np.arange(-149, 128)
    normal = gen.random(2000) * 10.0 ** gen.integers(-37, 38, 2000)
    extremes = [np.finfo(np.float32).tiny, np.finfo(np.float32).max, np.nextafter(np.float32(0), 1)]
    m = np.concatenate([subnormal, powers, normal, extremes]).astype(np.float32)
    return np.concatenate([m, np.nextafter(m, np.float32(0)), [np.nan]]).astype(np.float32)


def _reference(m: np.ndarray) -> np.ndarray:
    s = (m.astype(np.float64) / 127.0).astype(np.float32)
    return np.where(s > 0, s, np.float32(1.0)).astype(np.float32)  # 0, NaN, the band: 1


def test_the_rule_equals_the_float64_reference_bit_for_bit_in_numpy_and_torch():
    m = _ranges()
    want = _reference(m)
    assert np.isfinite(m[:-1]).all() and np.isnan(m[-1])
    got_np = B.int8_scale_of_max(m)
    got_t = B.int8_scale_of_max(torch.from_numpy(m)).numpy()
    for got in (got_np, got_t):
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    band = (m > 0) & (m <= 63 * SUB)
    assert np.float32(63 * SUB) in m and np.float32(64 * SUB) in m and band.sum() >= 63
    assert (got_np[band] == 1).all() and (m[~band & (m > 0) & np.isfinite(m)] / 127 > 0).all()
    assert B.int8_scale_of_max(np.float32(64 * SUB)) == np.float32(64 * SUB / 127)


def test_out_and_kept_receive_the_scale_and_where_it_follows_the_range():
    m = _ranges()[:, None]
    for lib in ("numpy", "torch"):
        x = m if lib == "numpy" else torch.from_numpy(m)
        out = np.zeros_like(m) if lib == "numpy" else torch.zeros(m.shape)
        kept = np.zeros(m.shape, bool) if lib == "numpy" else torch.zeros(m.shape, dtype=torch.bool)
        got = B.int8_scale_of_max(x, out=out, kept=kept)
        assert got is out
        got, kept = np.asarray(got), np.asarray(kept)
        np.testing.assert_array_equal(got, _reference(m))
        np.testing.assert_array_equal(kept, (m.astype(np.float64) / 127).astype(np.float32) > 0)


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_int8_scale_numpy_and_torch_agree_and_follow_the_rule(granularity):
    gen = np.random.default_rng(1)
    m = _ranges()[:-1]
    sign = np.where(gen.random(m.size) < 0.5, -1, 1).astype(np.float32)
    # rows whose max|w| is each range, the max at a random position among smaller values
    w = (gen.random((m.size, 5)) * m[:, None]).astype(np.float32)
    w[np.arange(m.size), gen.integers(0, 5, m.size)] = m * sign
    want = _reference(m)
    for wt in (w, w.reshape(m.size, 1, 5)):  # 2-D and 3-D weights
        got_np = B.int8_scale(wt, granularity)
        got_t = B.int8_scale(torch.from_numpy(wt), granularity).numpy()
        np.testing.assert_array_equal(got_np.view(np.uint32), got_t.view(np.uint32))
        if granularity == "channel":
            np.testing.assert_array_equal(got_np.reshape(-1), want)
        else:
            assert got_np == _reference(np.float32([np.abs(wt).max()]))[0]


def test_the_torch_rule_is_differentiable_in_the_range():
    """ds/dm = 1/127 where s = m / 127, 0 where s = 1 (zero range, or the band)."""
    m = torch.tensor([3.0, 1e-20, 0.0, 40 * SUB, 64 * SUB], requires_grad=True)
    B.int8_scale_of_max(m).sum().backward()
    want = torch.tensor([1 / 127.0, 1 / 127.0, 0.0, 0.0, 1 / 127.0])
    assert torch.equal(m.grad, want)
    w = torch.tensor([[0.5, -2.0], [0.0, 0.0]], requires_grad=True)
    B.int8_scale(w, "channel").sum().backward()  # through max|w|: sign(w) / 127 at the max
    assert torch.equal(w.grad, torch.tensor([[0.0, -1 / 127.0], [0.0, 0.0]]))


def test_a_bias_takes_one_scale_per_channel_in_the_injector_and_in_training():
    """granularity="channel" scales a weight per output row; a 1-D bias has no channel axis and
    takes one scale, in the injector (what is evaluated) as in RandBET (what is trained)."""
    import torch
    from torch import nn

    from sar_core.faults.injector import Injector
    from sar_core.faults.model import FaultModel
    from sar_core.training.randbet import int8_codes

    torch.manual_seed(0)
    lin = nn.Linear(5, 4)
    with torch.no_grad():
        lin.bias.copy_(torch.tensor([0.5, -0.01, 0.2, 0.003]))
    inj = Injector(
        lin, FaultModel(format="int8", ber=1e-3, include_bias=True, granularity="channel")
    )
    b = lin.bias.detach().numpy()
    s = np.float32(np.abs(b).max()) / np.float32(127)  # one scale for the whole bias
    want = (np.clip(np.round(b / s), -127, 127) * s).astype(np.float32)
    np.testing.assert_array_equal(inj.deployed()["bias"].numpy(), want)
    q, s_train = int8_codes(lin.bias.detach(), "channel")
    np.testing.assert_array_equal((q.float() * s_train).numpy(), want)
    # the weight is scaled per output row
    w = lin.weight.detach().numpy()
    s_rows = (np.abs(w).max(axis=1, keepdims=True) / np.float32(127)).astype(np.float32)
    want_w = (np.clip(np.round(w / s_rows), -127, 127) * s_rows).astype(np.float32)
    np.testing.assert_array_equal(inj.deployed()["weight"].numpy(), want_w)
