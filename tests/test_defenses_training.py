"""Training defenses of Stutz et al. (MLSys 2021): clip, randbet, sar_clip (issue 11 item 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sar_core.data.models import build_model
from sar_core.faults.model import FaultModel
from sar_core.formats import bits as B
from sar_core.training.loop import TrainConfig, spec_for, train
from sar_core.training.randbet import int8_codes, random_bit_errors


@pytest.fixture(scope="module")
def spec(digits):
    return spec_for(digits, "mlp", widths=(32,))


@pytest.mark.parametrize("method", ["clip", "randbet", "sar_clip"])
def test_clipping_keeps_every_weight_within_w_max(digits, spec, method):
    kw = dict(geometry="fault", rho=0.02) if method == "sar_clip" else {}
    res = train(spec, digits, TrainConfig(method=method, epochs=2, w_max=0.03, seed=1, **kw))
    init = build_model(spec, 1)
    assert max(float(p.detach().abs().max()) for p in init.parameters() if p.dim() > 1) > 0.03
    for p in res.model.parameters():
        if p.dim() > 1:
            assert float(p.detach().abs().max()) <= 0.03
    assert any(float(p.detach().abs().max()) == pytest.approx(0.03) for p in res.model.parameters())
    assert res.config.to_dict()["w_max"] == 0.03


def test_int8_codes_match_the_numpy_encoder():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 7)).astype(np.float32)
    for gran in ("tensor", "channel"):
        q, s = int8_codes(torch.from_numpy(w), gran)
        ref = B.encode(w, "int8", B.int8_scale(w, gran)).view(np.int8)
        assert np.array_equal(q.numpy(), ref)
        np.testing.assert_allclose(s.numpy(), B.int8_scale(w, gran))


def test_random_bit_errors_flip_exactly_the_counted_bits_at_the_rate():
    q = torch.randint(-127, 128, (200, 50), dtype=torch.int8)
    gen = torch.Generator().manual_seed(0)
    flipped, k = random_bit_errors(q, (0, 3, 7), 0.05, gen)
    diff = (q.view(torch.uint8) ^ flipped.view(torch.uint8)).numpy()
    assert int(np.unpackbits(diff).sum()) == k  # popcount of the XOR = reported flips
    assert not (diff & 0b01110110).any()  # only the selected bits 0, 3, 7
    n = q.numel() * 3
    assert abs(k - n * 0.05) < 5 * np.sqrt(n * 0.05 * 0.95)


def test_randbet_injects_errors_at_the_configured_rate(digits, spec):
    fm = FaultModel(format="int8", ber=0.01)
    res = train(spec, digits, TrainConfig(method="randbet", epochs=2, fault_model=fm, seed=0))
    n_batches = -(-len(digits.y_train) // 64)
    n_weights = sum(p.numel() for p in res.model.parameters() if p.dim() > 1)
    for h in res.history:
        sites = h["bit_error_sites"]
        assert sites == n_batches * n_weights * 8  # every step, every weight, every bit
        mean, sd = sites * 0.01, np.sqrt(sites * 0.01 * 0.99)  # Binomial(sites, p)
        assert abs(h["bit_errors"] - mean) < 5 * sd
    assert res.clean_accuracy > 0.8


def test_randbet_needs_an_int8_ber_target():
    with pytest.raises(ValueError, match="int8"):
        TrainConfig(method="randbet", fault_model=FaultModel(format="float16", ber=1e-3))
    with pytest.raises(ValueError, match="ber"):
        TrainConfig(method="randbet", fault_model=FaultModel(format="int8", count=5))
    with pytest.raises(ValueError, match="w_max"):
        TrainConfig(method="clip", w_max=0.0)


@pytest.mark.parametrize("method", ["clip", "sar_clip"])
def test_inactive_clip_and_zero_rho_reproduce_sgd_bit_exactly(digits, spec, method):
    """Clamping to a bound no weight reaches is a no-op: the run equals SGD's, bit for bit."""
    a = train(spec, digits, TrainConfig(method="sgd", epochs=2, seed=6))
    b = train(spec, digits, TrainConfig(method=method, epochs=2, seed=6, w_max=50.0, rho=0.0))
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
