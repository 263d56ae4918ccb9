"""The Monte Carlo core against independent references: full forward passes, scipy, numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import state_digest

from sar_core.analysis import campaign as C
from sar_core.analysis import sweeps as S
from sar_core.engine import montecarlo as M
from sar_core.engine.evaluate import as_tensors, evaluate, score_logits
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel

FORMATS = [
    ("float32", "mantissa"),
    ("float16", "mantissa"),
    ("bfloat16", "mantissa"),
    ("int8", None),
]


@pytest.fixture(scope="module")
def xy(digits):
    return as_tensors(digits.X_test[:96], digits.y_test[:96])


def _reference(model, X, y, fm, trials, seed):
    """The plain path: one full functional forward pass per trial with Injector.apply."""
    inj = Injector(model, fm)
    out = []
    for t in range(trials):
        s = evaluate(model, X, y, inj.apply(inj.sample(M.trial_rng(seed, t))))
        out.append((s.accuracy, s.loss))
    return out


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_resume_evaluator_is_bit_identical_to_full_forward_passes(demo, xy, arch):
    X, y = xy
    model = demo[f"digits_{arch}_sgd"].model
    fm = FaultModel(
        format="int8", ber=2e-3, include_bias=True, layers=("out",) if arch == "cnn" else None
    )
    ref = _reference(model, X, y, fm, 12, 5)
    got = [
        (t.accuracy[0], t.loss[0])
        for t in M.MonteCarlo([model], X, y, fm, evaluator="resume").run(12, seed=5)
    ]
    assert got == ref


@pytest.mark.parametrize("fmt, bits", FORMATS)
@pytest.mark.parametrize("layers, bias", [(None, True), (("fc2",), False), (("out",), True)])
def test_batched_matches_full_forward_passes(demo, xy, fmt, bits, layers, bias):
    """Batched (sparse corrections, other rounding): equal accuracies, losses to rtol 1e-4."""
    X, y = xy
    model = demo["digits_mlp_sar"].model
    fm = FaultModel(format=fmt, bits=bits, ber=3e-3, include_bias=bias, layers=layers)
    ref = _reference(model, X, y, fm, 20, 1)
    mc = M.MonteCarlo([model], X, y, fm, evaluator="batched", memory_mb=2)
    got = [(t.accuracy[0], t.loss[0]) for t in mc.run(20, seed=1)]
    assert [a for a, _ in got] == [a for a, _ in ref]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in ref], rtol=1e-4)


def test_batched_with_overflow_stays_within_stated_tolerance(demo, xy):
    """All float32 bits (exponent flips overflow), against full forward passes per trial.

    Derived bound, not a tuned one. A float32 dot product of length n errs by at most
    n 2^-24 sum|w_i h_i|; through the layers of a ReLU MLP the errors add up to at most
    (sum of fan-ins) 2^-24 A, with A the forward pass of |X| through |W'| + |W| (it bounds every
    sum of magnitudes either path forms: the reference's W' h, the batched W h + dW h). Both paths
    err by that much, so ``bound = 2 (sum of fan-ins) 2^-24 A`` (doubled again for slack in the
    first-order analysis). Rows: the same non-finite rows; finite logits within ``bound``; a
    prediction may change only where the reference's top-two margin is within twice the row's
    bound, so a trial's accuracy differs by at most those rows; the loss by the mean row bound.
    """
    from torch.func import functional_call

    X, y = xy
    model = demo["digits_mlp_sgd"].model
    assert all(type(m) in (torch.nn.Linear, torch.nn.ReLU) for m in model.children())
    fan_in = sum(m.in_features for m in model.children() if isinstance(m, torch.nn.Linear))
    fm = FaultModel(format="float32", ber=3e-4, include_bias=True)
    mc = M.MonteCarlo([model], X, y, fm, evaluator="batched")
    ev, inj = mc._evals[0], mc.injectors[0]
    deployed = inj.deployed()
    scores = [(t.accuracy[0], t.loss[0]) for t in mc.run(30, seed=2)]
    overflow = 0
    for t, (acc, loss) in enumerate(scores):
        pat = inj.sample(M.trial_rng(2, t))
        faulty = inj.apply(pat)
        with torch.no_grad():
            ref = functional_call(model, faulty, (X,))  # (N, C)
            mag = {n: faulty[n].abs() + deployed[n].abs() for n in faulty}
            A = functional_call(model, mag, (X.abs(),))
        bound = 4 * fan_in * 2.0**-24 * A
        d = inj.delta(pat)
        if not (d.n_changed and d.values):
            assert (acc, loss) == mc.deployed[0]
            continue
        got = ev.logits([d], min(ev.owner[p] for p in d.values))[0].t()  # (N, C)
        finite = torch.isfinite(ref).all(dim=1)
        overflow += int((~finite).sum())
        assert torch.equal(torch.isfinite(got).all(dim=1), finite)
        f = finite
        assert bool(((got[f] - ref[f]).abs() <= bound[f]).all())  # (rows, C)
        row = bound[f].max(dim=1).values
        top2 = ref[f].topk(2, dim=1).values
        ties = int(((top2[:, 0] - top2[:, 1]) <= 2 * row).sum())
        ref_acc = float(((ref.argmax(1) == y) & finite).float().mean())
        assert abs(acc - ref_acc) * len(y) <= ties + 1e-9
        ref_loss = score_logits(ref, y).loss
        if np.isfinite(ref_loss) and np.isfinite(loss):
            assert abs(loss - ref_loss) <= 2 * float(row.mean()) + 1e-6 * abs(ref_loss)
    assert overflow > 0  # the overflow case is exercised


def test_chunk_size_follows_memory_and_results_do_not_depend_on_it(demo, xy):
    X, y = xy
    model = demo["digits_mlp_sam"].model
    fm = FaultModel(format="float32", ber=3e-4, include_bias=True)
    small = M.MonteCarlo([model], X, y, fm, memory_mb=1)
    big = M.MonteCarlo([model], X, y, fm, memory_mb=64)
    assert small.chunk < big.chunk
    a = [(t.accuracy, t.loss) for t in small.run(40, seed=3)]
    b = [(t.accuracy, t.loss) for t in big.run(40, seed=3)]
    assert a == b  # bit-identical: a trial's result does not depend on its chunk-mates


def test_run_is_lazy_so_memory_grows_with_the_chunk_not_the_trials(demo, xy, monkeypatch):
    X, y = xy
    mc = M.MonteCarlo([demo["digits_mlp_sgd"].model], X, y, FaultModel(ber=1e-4), memory_mb=1)
    calls = []
    real = Injector.chunk_delta
    monkeypatch.setattr(Injector, "chunk_delta", lambda self, p: calls.append(len(p)) or real(self, p))  # fmt: skip
    first = next(mc.run(2000, seed=0))
    assert first.index == 0 and calls == [mc.chunk] and mc.chunk < 2000


def test_zero_flip_trials_reuse_the_deployed_score_without_evaluation(demo, xy, monkeypatch):
    X, y = xy
    model = demo["digits_cnn_sgd"].model
    fm = FaultModel(format="float16", ber=1e-7)
    mc = M.MonteCarlo([model], X, y, fm)
    evaluated = []
    ev = mc._evals[0]
    real = ev.scores
    monkeypatch.setattr(ev, "scores", lambda ch: evaluated.extend(range(ch.size)) or real(ch))
    trials = list(mc.run(50, seed=0))
    zero = [t for t in trials if t.n_flips[0] == 0]
    assert len(zero) > 40
    deployed = evaluate(model, X, y, Injector(model, fm).deployed())
    assert all(t.accuracy[0] == deployed.accuracy and t.loss[0] == deployed.loss for t in zero)
    assert len(evaluated) == 50 - len(zero)


def test_stuck_sites_that_change_nothing_are_not_evaluated(xy):
    from conftest import tiny_linear

    model = tiny_linear([[1.0, -1.0], [-1.0, 1.0]], [0.0, 0.0])  # every code holds bit 31 = 0 or 1
    X, y = torch.ones(4, 2), torch.tensor([0, 1, 0, 1])
    fm = FaultModel(bits=(29,), count=1, kind="stuck-at-0")  # 1.0 holds bit 29 = 1 ...
    mc = M.MonteCarlo([model], X, y, fm)
    for t in mc.run(8, seed=0):
        assert t.n_changed == (1,)  # ... so every stuck site changes one bit
    fm1 = FaultModel(bits=(29,), count=1, kind="stuck-at-1")  # already 1: nothing changes
    for t in M.MonteCarlo([model], X, y, fm1).run(8, seed=0):
        assert t.n_changed == (0,) and t.accuracy == (mc.deployed[0][0],)


def test_paired_models_see_the_same_patterns(demo, xy):
    X, y = xy
    models = [demo[f"digits_mlp_{m}"].model for m in ("sgd", "sar")]
    mc = M.MonteCarlo(models, X, y, FaultModel(format="int8", ber=1e-3))
    for t in range(5):
        a, b = mc.patterns(7, t)
        assert a is b
    solo = [t.accuracy[0] for t in M.MonteCarlo(models[1:], X, y, mc.fm).run(10, seed=7)]
    assert [t.accuracy[1] for t in mc.run(10, seed=7)] == solo


# ------------------------------------------------------------ injector aliasing -------------


@pytest.mark.parametrize("include_bias", [False, True])
def test_injector_outputs_never_alias_the_model_or_each_other(demo, include_bias):
    model = demo["digits_mlp_sgd"].model
    before = state_digest(model)
    inj = Injector(model, FaultModel(format="float32", count=40, include_bias=include_bias))
    pattern = inj.sample(0)
    ref = {n: t.clone() for n, t in inj.apply(pattern).items()}
    ref_dep = {n: t.clone() for n, t in inj.deployed().items()}
    for out in (inj.deployed(), inj.apply(pattern), inj.perturbation(pattern)):
        for t in out.values():
            t.add_(1.0).mul_(-3.0)  # in place, on every returned tensor (biases included)
    assert state_digest(model) == before
    again = inj.apply(pattern)
    assert all(torch.equal(again[n], ref[n]) for n in ref)
    assert all(torch.equal(inj.deployed()[n], ref_dep[n]) for n in ref_dep)


# ------------------------------------------------------------ statistics --------------------


def test_t_quantile_matches_scipy():
    from scipy import stats

    from sar_core.stats.quantiles import t_quantile

    for df in [1, 2, 3, 4, 5, 7, 10, 19, 29, 30, 49, 99, 199, 1999, 10**5]:
        for p in (0.5, 0.6, 0.9, 0.975, 0.995, 0.025, 0.999):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-10, abs=1e-12)


def test_campaign_module_does_not_import_scipy():
    import subprocess
    import sys

    code = "import sys, sar_core.analysis.campaign; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_accuracy_ci_is_clamped_to_the_unit_interval():
    res = C.CampaignResult(FaultModel(ber=0.1), 1.0, 1.0, 10, accuracy=[1.0] * 9 + [0.9])
    res.flips, res.loss = [1] * 10, [0.1] * 10
    raw = C.summarize(res.accuracy)["ci95"]
    s = res.summary()
    assert raw[1] > 1.0 and s["ci95"][1] == 1.0 and s["ci95"][0] == raw[0]
    res0 = C.CampaignResult(FaultModel(ber=0.1), 1.0, 1.0, 10, accuracy=[0.0] * 9 + [0.1])
    res0.flips, res0.loss = [1] * 10, [0.1] * 10
    assert res0.summary()["ci95"][0] == 0.0


def test_sweep_curves_match_the_summaries(demo, xy):
    X, y = xy
    models = [demo[f"digits_mlp_{m}"].model for m in ("sgd", "sam")]
    fm = FaultModel(format="int8", ber=0.1)
    points = list(S.iter_sweep(models, X, y, fm, bers=[1e-3, 1e-2], trials=6))
    curves = S.sweep_curves(points)
    assert curves["levels"] == [1e-3, 1e-2]
    for m, model_curve in enumerate(curves["models"]):
        assert model_curve["mean_accuracy"] == [s[m]["mean_accuracy"] for _, s in points]
        assert model_curve["ci95_low"] == [s[m]["ci95"][0] for _, s in points]
        assert model_curve["ci95_high"] == [s[m]["ci95"][1] for _, s in points]
    # each level equals an independent campaign with that rate (same trial seeds)
    solo = C.run_campaign(models[1], X, y, fm.with_rate(ber=1e-2), trials=6).summary()
    assert points[1][1][1]["mean_accuracy"] == solo["mean_accuracy"]


def test_pattern_filter_keeps_the_unfiltered_draw_and_applies_the_filtered_pattern(demo, xy):
    """A filter that keeps only layer fc1's sites equals an fc1-only reference, trial by trial."""
    from sar_core.faults.model import FaultPattern

    X, y = xy
    model = demo["digits_mlp_sgd"].model
    fm = FaultModel(format="int8", ber=3e-3)
    seen = []

    def keep_fc1(p, rng):
        seen.append(p.n_flips)
        sites = {n: s for n, s in p.sites.items() if n.startswith("fc1.")}
        n = sum(len(i) for i, _ in sites.values())
        return FaultPattern(sites=sites, n_flips=n, n_sites=p.n_sites)

    got = list(M.MonteCarlo([model], X, y, fm, pattern_filter=keep_fc1).run(6, seed=3))
    inj = Injector(model, fm)
    for t, trial in zip(range(6), got):
        full = inj.sample(M.trial_rng(3, t))  # the unfiltered draw is unchanged by the filter
        assert seen[t] == full.n_flips
        kept = keep_fc1(full, None)
        s = evaluate(model, X, y, inj.apply(kept))
        assert trial.n_flips[0] == kept.n_flips
        assert trial.accuracy[0] == pytest.approx(s.accuracy, abs=1.5 / len(y))
    with pytest.raises(ValueError, match="pattern_filter"):
        M.MonteCarlo(
            [model], X, y, FaultModel(ber=1e-3, target="activations"), pattern_filter=keep_fc1
        )
