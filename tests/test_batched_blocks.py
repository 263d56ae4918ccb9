"""The batched evaluator's block path, class-major scoring and chunk reordering, against
independent references.

References: full forward passes (``torch.func.functional_call``) with faulty weights made here
by numpy bit views (``w.view(np.uint32) ^ (1 << bit)`` at each hit site of the sampled
pattern), scored by ``score_logits``; a plain numpy argmax / finiteness rule for the scores.
Models: the bundled digits MLP (64-128-64-10) and MLPs built here from a seed with other widths
and depths (four Linear layers: later layers run with per-trial weights on each block).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

from sar_core.data.models import ModelSpec, build_model
from sar_core.engine import evaluators as E
from sar_core.engine import montecarlo as M
from sar_core.engine.evaluate import as_tensors, score_batch, score_logits
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel


@pytest.fixture(scope="module")
def xy(digits):
    return as_tensors(digits.X_test[:80], digits.y_test[:80])


def _mlp(widths: tuple[int, ...], seed: int) -> torch.nn.Module:
    return build_model(ModelSpec(n_features=64, n_classes=10, widths=widths), seed).eval()


def _numpy_flipped(model, pattern) -> dict[str, torch.Tensor]:
    """float32 parameters with the pattern's bits flipped through numpy uint32 views."""
    out = {}
    for name, p in model.named_parameters():
        codes = p.detach().numpy().reshape(-1).view(np.uint32).copy()
        if name in pattern.sites:
            elem, bit = pattern.sites[name]
            np.bitwise_xor.at(codes, elem, np.left_shift(np.uint32(1), bit.astype(np.uint32)))
        out[name] = torch.from_numpy(codes.view(np.float32).reshape(p.shape))
    return out


def _bound_check(model, X, y, faulty, acc: float, loss: float) -> None:
    """(acc, loss) against the full forward pass with ``faulty``, within the derived float32
    bound of test_montecarlo (2 paths x (sum of fan-ins) 2^-24 A, doubled): the same non-finite
    status, accuracy equal except on rows whose top-two margin is within twice the bound."""
    fan_in = sum(m.in_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    deployed = dict(model.named_parameters())
    with torch.no_grad():
        ref = functional_call(model, faulty, (X,))
        mag = {n: faulty[n].abs() + deployed[n].detach().abs() for n in faulty}
        A = functional_call(model, mag, (X.abs(),))
    bound = 4 * fan_in * 2.0**-24 * A
    ref_score = score_logits(ref, y)
    finite = torch.isfinite(ref).all(dim=1)
    assert np.isinf(loss) == np.isinf(ref_score.loss)
    row = bound[finite].max(dim=1).values
    top2 = ref[finite].topk(2, dim=1).values
    ties = int(((top2[:, 0] - top2[:, 1]) <= 2 * row).sum())
    assert abs(acc - ref_score.accuracy) * len(y) <= ties + 1e-9
    if np.isfinite(loss):
        assert abs(loss - ref_score.loss) <= 2 * float(row.mean()) + 1e-6 * abs(ref_score.loss)


# ------------------------------------------------------------ scoring ---------------------------


def _numpy_scores(logits: np.ndarray, y: np.ndarray) -> list[tuple[float, bool]]:
    """(accuracy, all rows finite) per trial of class-major logits (K, C, N), in numpy."""
    out = []
    for lk in logits:  # (C, N)
        finite = np.isfinite(lk).all(axis=0)
        pred = np.argmax(np.where(np.isnan(lk), -np.inf, lk), axis=0)  # first maximal index
        out.append((float(np.mean((pred == y) & finite)), bool(finite.all())))
    return out


@pytest.mark.parametrize("C", [2, 3, 10])
def test_class_major_scores_match_numpy_and_score_logits(C):
    g = torch.Generator().manual_seed(C)
    K, N = 9, 50
    logits = torch.randint(-2, 3, (K, C, N), generator=g).float()  # many exact ties
    logits[1, :, 4] = 7.0  # a row where every class ties
    logits[2, C - 1, 5] = float("inf")
    logits[3, 0, 6] = float("-inf")
    logits[4, 1, 7] = float("nan")
    logits[5] = torch.randn(C, N, generator=g) * 30  # large spread: the loss is finite
    y = torch.randint(0, C, (N,), generator=g)
    got = score_batch(logits, y, class_dim=1)
    ref = _numpy_scores(logits.numpy(), y.numpy())
    for k in range(K):
        s = score_logits(logits[k].t().contiguous(), y)  # the per-trial (N, C) rule
        assert got[k][0] == pytest.approx(s.accuracy, abs=1e-7) and got[k][0] == pytest.approx(
            ref[k][0], abs=1e-7
        )
        if ref[k][1]:
            assert got[k][1] == pytest.approx(s.loss, rel=1e-6)
        else:
            assert got[k][1] == float("inf") == s.loss
    # the (K, N, C) layout and the path for many classes give the same scores
    other = score_batch(logits.transpose(1, 2).contiguous(), y)
    flat = lambda rows: [v for row in rows for v in row]  # noqa: E731 (approx takes no nesting)
    assert len(other) == len(got) and flat(other) == pytest.approx(flat(got))


def test_many_classes_use_the_row_major_rule():
    g = torch.Generator().manual_seed(1)
    logits = torch.randint(-1, 2, (3, 80, 20), generator=g).float()  # (K, C=80, N)
    y = torch.randint(0, 80, (20,), generator=g)
    got = score_batch(logits, y, class_dim=1)
    for k, (acc, loss) in enumerate(got):
        s = score_logits(logits[k].t().contiguous(), y)
        assert acc == pytest.approx(s.accuracy) and loss == pytest.approx(s.loss, rel=1e-6)


# ------------------------------------------------------------ chunk reordering ------------------


def test_select_in_any_order_keeps_each_trials_changes(demo):
    model = demo["digits_mlp_sgd"].model
    inj = Injector(model, FaultModel(format="float32", ber=2e-4, include_bias=True))
    pats = [inj.sample(M.trial_rng(4, t)) for t in range(12)]
    chunk = inj.chunk_delta(pats)
    order = np.array([7, 2, 11, 0, 5, 9, 3])
    sub = chunk.select(order)
    assert sub.n_changed.tolist() == chunk.n_changed[order].tolist()
    for i, t in enumerate(order.tolist()):
        want, got = inj.delta(pats[t]), sub.trial(i)
        assert set(got.values) == set(want.values)
        for name, (idx, vals) in want.values.items():
            assert torch.equal(got.values[name][0], idx)
            assert torch.equal(got.values[name][1], vals)
    for kk, idx, _ in sub.values.values():  # sorted by trial, then index
        key = kk * 10**7 + idx
        assert bool((key[1:] > key[:-1]).all())
    assert chunk.select(np.arange(chunk.size)) is chunk


# ------------------------------------------------------------ the block path --------------------


@pytest.mark.parametrize("block", [1, 7, 24])
@pytest.mark.parametrize("widths", [(128, 64), (24, 40), (32, 48, 16)])
def test_blocks_match_numpy_flipped_full_forward_passes(demo, xy, monkeypatch, block, widths):
    X, y = xy
    model = demo["digits_mlp_sgd"].model if widths == (128, 64) else _mlp(widths, 3)
    monkeypatch.setattr(E, "BLOCK", block)
    fm = FaultModel(format="float32", ber=4e-4, include_bias=True)  # exponent flips included
    mc = M.MonteCarlo([model], X, y, fm, evaluator="batched")
    inj = mc.injectors[0]
    trials = list(mc.run(30, seed=6))
    for t in trials:
        pat = inj.sample(M.trial_rng(6, t.index))
        if t.n_changed[0] == 0:
            assert (t.accuracy[0], t.loss[0]) == mc.deployed[0]
            continue
        _bound_check(model, X, y, _numpy_flipped(model, pat), t.accuracy[0], t.loss[0])


def test_a_trials_result_does_not_depend_on_its_block_or_chunk_mates(demo, xy, monkeypatch):
    """Blocks of 1 have no pads and no mates; larger blocks and chunks pad each trial to its
    widest mate. Faulty weights that overflow (inf) must not leak through a pad."""
    X, y = xy
    model = demo["digits_mlp_sar"].model
    fm = FaultModel(format="float32", ber=6e-5, include_bias=True)
    runs = []
    for block, memory_mb in ((1, 64), (5, 1), (24, 64)):
        monkeypatch.setattr(E, "BLOCK", block)
        mc = M.MonteCarlo([model], X, y, fm, evaluator="batched", memory_mb=memory_mb)
        runs.append([(t.accuracy, t.loss) for t in mc.run(60, seed=2)])
    assert runs[0] == runs[1] == runs[2]
    assert any(np.isinf(loss[0]) for _, loss in runs[0])  # overflow is exercised
    assert any(np.isfinite(loss[0]) for _, loss in runs[0])


def test_evaluators_that_share_the_workspace_take_turns_safely(demo, xy):
    """Two engines on models of other widths, their chunks interleaved, give what each gives
    alone (the scratch buffers are shared by every Batched evaluator of a thread)."""
    X, y = xy
    models = [demo["digits_mlp_sgd"].model, _mlp((24, 40), 5)]
    fm = FaultModel(format="float32", ber=3e-4, include_bias=True)
    alone = []
    for m in models:
        mc = M.MonteCarlo([m], X, y, fm, evaluator="batched", memory_mb=1)
        alone.append([(t.accuracy, t.loss) for t in mc.run(24, seed=9)])
    engines = [M.MonteCarlo([m], X, y, fm, evaluator="batched", memory_mb=1) for m in models]
    assert engines[0].chunk < 12  # the first runs several chunks: the second's runs between
    runs = [e.run(24, seed=9) for e in engines]
    mixed: list[list] = [[], []]
    for _ in range(24):
        for i, r in enumerate(runs):
            t = next(r)
            mixed[i].append((t.accuracy, t.loss))
    assert mixed == alone


def test_batched_logits_of_a_chunk_match_numpy_flipped_logits(demo, xy, monkeypatch):
    """Logits, not only scores: each trial of a chunk whose trials all start at fc1 (the block
    path), blocks of 4, against the full forward pass within the derived bound."""
    X, y = xy
    model = demo["digits_mlp_sgd"].model
    monkeypatch.setattr(E, "BLOCK", 4)
    fm = FaultModel(format="float32", bits="mantissa", ber=5e-4, include_bias=True)
    mc = M.MonteCarlo([model], X, y, fm, evaluator="batched")
    ev, inj = mc._evals[0], mc.injectors[0]
    pats = [inj.sample(M.trial_rng(1, t)) for t in range(40)]
    pats = [p for p in pats if "fc1.weight" in p.sites or "fc1.bias" in p.sites][:13]
    chunk = inj.chunk_delta(pats)
    logits = ev.logits(chunk, 0)  # (K, C, N)
    fan_in = 64 + 128 + 64
    for k, p in enumerate(pats):
        faulty = _numpy_flipped(model, p)
        with torch.no_grad():
            ref = functional_call(model, faulty, (X,))
            mag = {n: faulty[n].abs() + q.detach().abs() for n, q in model.named_parameters()}
            A = functional_call(model, mag, (X.abs(),))
        bound = 4 * fan_in * 2.0**-24 * A
        assert bool(((logits[k].t() - ref).abs() <= bound).all())


def test_a_pattern_from_a_space_with_other_start_bits_keeps_its_bits(demo):
    """A pattern drawn over the mantissa bits, applied by an injector over all bits (same
    parameters and offsets, other site numbering): its own start bits are flipped (numpy)."""
    model = demo["digits_mlp_sgd"].model
    draw = Injector(model, FaultModel(format="float32", bits="mantissa", count=60))
    apply = Injector(model, FaultModel(format="float32", count=60))
    pats = [draw.sample(M.trial_rng(3, t)) for t in range(4)]
    chunk = apply.chunk_delta(pats)
    for k, p in enumerate(pats):
        ref = _numpy_flipped(model, p)
        got = apply.apply_delta(chunk.trial(k))
        for name in ref:
            assert torch.equal(got[name], ref[name])
        assert all(int(b.max()) <= 22 for _, b in p.sites.values())  # mantissa bits only
