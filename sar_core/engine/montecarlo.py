"""The one Monte Carlo core: sample fault patterns, apply them, evaluate (batched), yield trials.

Every trial-based analysis (campaigns, paired comparisons, sweeps, fault sharpness, SAR's radius
calibration) runs through ``MonteCarlo``; it imports no training and no analysis module.

Trial t of seed s uses the pattern drawn from ``rng([s, t])``: the same on every run, for every
model of one architecture (asymmetric rates aside: they depend on each model's stored bits), and
for every rate of a sweep. A trial whose pattern changes no stored bit reuses the deployed score
exactly, without an evaluation. Each trial draws its own pattern (its own generator: the
stream is per trial); the patterns of a chunk are then applied at once, O(total flips): one
unique / encode / flip / decode over all hit codes of the chunk (``Injector.chunk_delta``), and
the evaluator receives the chunk's changed entries as (trial, index, value) arrays.

Evaluators (``evaluator=``):
- ``"resume"`` (exact): for an ``nn.Sequential``, the clean activations are cached and a trial
  restarts at the first layer it touches; otherwise one ``functional_call``. Bit-identical to a
  full forward pass with the faulty parameters (the same kernels on the same inputs).
- ``"batched"`` (Sequential of Linear layers and elementwise activations, e.g. the MLP): K trials
  at once. The first touched layer adds the sparse correction dW x of the changed weights to its
  cached clean output on the units it touches (O(N x changed) instead of a dense matmul); the
  next Linear adds a low-rank update of its cached output (inner size: the touched units);
  later layers are batched matmuls with per-trial weights, in blocks of trials. Chunks of K are
  sized by ``memory_mb``. Same maths, other rounding: logits agree with ``"resume"`` to float32
  rounding (tested against a derived bound; accuracies equal except on near-ties).
- ``"auto"``: ``"batched"`` where it applies and a trial hits at most
  ``AUTO_BATCHED_MAX_HIT_FRACTION`` of the weights, else ``"resume"``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sar_core.engine.checks import check_logits, check_model, data_of
from sar_core.engine.evaluate import logits_of, score_logits
from sar_core.engine.evaluators import EVALUATORS, make_evaluator
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel, FaultPattern, parameter_shapes
from sar_core.validate import check_choice, check_float, check_int


@dataclass(frozen=True)
class Trial:
    """One trial's outcome for each model (tuples indexed like the models)."""

    index: int
    n_flips: tuple[int, ...]  # hit sites (flips, stuck sites or bursts)
    n_changed: tuple[int, ...]  # stored bits that changed value
    accuracy: tuple[float, ...]
    loss: tuple[float, ...]  # inf when logits were not finite


def trial_rng(seed: int, t: int) -> np.random.Generator:
    """The generator of trial ``t`` of seed ``seed`` (common random numbers across models)."""
    return np.random.default_rng([seed, t])


def check_same_architecture(models: Sequence[nn.Module]) -> dict[str, tuple[int, ...]]:
    """Parameter shapes shared by all ``models``; ValueError naming the first that differs."""
    if not models:
        raise ValueError("Invalid models=[]: give at least one model")
    shapes = parameter_shapes(models[0])
    for i, m in enumerate(models[1:], start=1):
        if parameter_shapes(m) != shapes:
            raise ValueError(
                f"Invalid models: model {i} has other parameter shapes than model 0; paired "
                "comparison needs the same architecture"
            )
    return shapes


class MonteCarlo:
    """Fault-injection trials on one or more models of one architecture, common random numbers.

    ``clean`` / ``deployed`` hold each model's (accuracy, loss) without faults, in float32 and as
    stored in the format (for activation faults the weights stay float32: deployed = clean).
    ``run`` yields ``Trial`` records in trial order. ``calibration`` (inputs, e.g. X_train) sets
    the int8 activation scales; it is required for int8 activation faults only.
    ``pattern_filter(pattern, rng) -> pattern`` (weight faults only) rewrites each sampled pattern
    before it is applied, e.g. to drop the sites an error-correcting code repairs; it gets its own
    generator ``rng([seed, t, 1])``, so the unfiltered draw, and hence the pairing with an
    unfiltered campaign of the same seed, is unchanged.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        X,
        y,
        fm: FaultModel,
        *,
        evaluator: str = "auto",
        memory_mb: float = 64.0,
        calibration=None,
        pattern_filter: Callable[[FaultPattern, np.random.Generator], FaultPattern] | None = None,
    ) -> None:
        check_choice("evaluator", evaluator, EVALUATORS)
        if pattern_filter is not None and fm.target == "activations":
            raise ValueError(
                "Invalid pattern_filter with target='activations': a pattern filter applies to "
                "stored weights only"
            )
        self.pattern_filter = pattern_filter
        memory_mb = check_float("memory_mb", memory_mb, low=1.0, high=1e6)
        self.models, self.fm = list(models), fm
        if not self.models:
            raise ValueError("Invalid models=[]: give at least one model")
        for i, m in enumerate(self.models):
            check_model(m, name=f"models[{i}]" if len(self.models) > 1 else "model")
        check_same_architecture(self.models)
        X, y = data_of(self.models[0], X, y)
        self.X, self.y = X, y
        self.clean = []
        for m in self.models:
            logits = logits_of(m, None, X)
            check_logits(logits, y)
            self.clean.append(_score(logits, y))
        if fm.target == "activations":
            from sar_core.faults.activations import ActivationFaults

            self.injectors, self._evals = (
                [],
                [ActivationFaults(m, fm, X, calibration) for m in self.models],
            )
            self.n_sites = self._evals[0].space.n_sites
            self.deployed = list(self.clean)
            self.chunk = 64
            return
        self.injectors = [Injector(m, fm) for m in self.models]
        self.n_sites = self.injectors[0].n_sites
        self.deployed, self._evals = [], []
        for m, clean, inj in zip(self.models, self.clean, self.injectors):
            params = inj._deployed  # read-only inside the core; never handed out
            self._evals.append(
                make_evaluator(
                    evaluator,
                    m,
                    params,
                    X,
                    y,
                    memory_mb,
                    expected_flips=_expected_flips(fm, self.n_sites),
                )  # fmt: skip
            )
            # an exact full forward pass, unless storing changed no bit (float32): then clean
            same = _same_bits(params, dict(m.named_parameters()))
            self.deployed.append(clean if same else _score(logits_of(m, params, X), y))
        self.chunk = min(ev.max_chunk for ev in self._evals)

    def with_rate(self, fm: FaultModel) -> MonteCarlo:
        """This engine (deployed models, caches) under ``fm``, which may differ only in its rate."""
        rate = ("ber", "count", "ber_01", "ber_10")
        same = {k: v for k, v in fm.to_dict().items() if k not in rate}
        if same != {k: v for k, v in self.fm.to_dict().items() if k not in rate}:
            raise ValueError(
                "Invalid fault model: with_rate may change only ber/count/ber_01/ber_10; "
                "build a new MonteCarlo for other changes"
            )
        new = copy.copy(self)
        new.fm = fm
        new.injectors = [inj.with_rate(fm) for inj in self.injectors]
        if fm.target == "activations":
            new._evals = [copy.copy(ev) for ev in self._evals]
            for ev in new._evals:
                ev.fm, ev.space = fm, ev.space.with_fault_model(fm)
        return new

    def patterns(self, seed: int, t: int) -> list[FaultPattern]:
        """Trial t's pattern for each model (one shared pattern unless rates are asymmetric)."""
        return self.chunk_patterns(seed, [t])[0]

    def chunk_patterns(self, seed: int, trials: Sequence[int]) -> list[list[FaultPattern]]:
        """``[self.patterns(seed, t) for t in trials]``: shared patterns are drawn for all trials
        at once (``SiteSpace.sample_trials``); asymmetric rates read each model's stored bits."""
        if self.fm.asymmetric and self.fm.target != "activations":
            drawn = [[inj.sample(trial_rng(seed, t)) for inj in self.injectors] for t in trials]
        else:
            acts = self.fm.target == "activations"
            space = self._evals[0].space if acts else self.injectors[0].space
            drawn = [[p] * len(self.models) for p in space.sample_trials(seed, trials)]
        if self.pattern_filter is None:
            return drawn
        # one filter draw per trial, shared by all models (common random numbers)
        return [
            [self.pattern_filter(p, np.random.default_rng([seed, t, 1])) for p in pats]
            for t, pats in zip(trials, drawn)
        ]

    def _scores(self, m: int, pats: list[FaultPattern]) -> tuple[list[int], list]:
        """(bits changed, (accuracy, loss)) per pattern for model m."""
        scores = [self.deployed[m]] * len(pats)  # nothing changed: the deployed score
        if self.fm.target == "activations":
            changed = []
            for i, p in enumerate(pats):
                logits, c = self._evals[m].logits(p)
                changed.append(c)
                if c:
                    scores[i] = _score(logits, self.y)
            return changed, scores
        chunk = self.injectors[m].chunk_delta(pats)  # sample, encode, flip, decode: all at once
        need = np.flatnonzero(chunk.n_changed > 0)  # a changed bit changes a stored value
        if need.size:
            for i, s in zip(need.tolist(), self._evals[m].scores(chunk.select(need))):
                scores[i] = s
        return chunk.n_changed.tolist(), scores

    def run(self, trials: int, *, seed: int = 0, start: int = 0) -> Iterator[Trial]:
        """Trials start .. start + trials - 1, in order; chunks of ``self.chunk`` at once."""
        trials = check_int("trials", trials, low=0, high=10**9)
        seed = check_int("seed", seed, low=0, high=2**63 - 1)
        end = start + trials
        for c0 in range(start, end, self.chunk):
            ts = range(c0, min(c0 + self.chunk, end))
            pats = self.chunk_patterns(seed, ts)
            per_model = [self._scores(m, [p[m] for p in pats]) for m in range(len(self.models))]
            # columns per trial, each a tuple over the models
            changed = zip(*(c for c, _ in per_model))
            accuracy = zip(*([a for a, _ in s] for _, s in per_model))
            loss = zip(*([v for _, v in s] for _, s in per_model))
            for t, p, c, a, v in zip(ts, pats, changed, accuracy, loss):
                n_flips = tuple(q.n_flips for q in p)
                yield Trial(index=t, n_flips=n_flips, n_changed=c, accuracy=a, loss=v)


def _expected_flips(fm: FaultModel, n_sites: int) -> float:
    """Stored bits a trial of ``fm`` hits on average (a count, or the rate times the sites)."""
    if fm.count is not None:
        return float(fm.count)
    rates = [r for r in (fm.ber, fm.ber_01, fm.ber_10) if r is not None]
    return float(max(rates, default=0.0)) * n_sites


def _same_bits(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether ``a`` and ``b`` hold the same tensors bit for bit: equal values and equal sign
    bits (-0.0 differs from 0.0; a NaN is never equal, so it is never taken as unchanged)."""
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype
        and torch.equal(a[k], b[k])
        and torch.equal(torch.signbit(a[k]), torch.signbit(b[k]))
        for k in a
    )


def _score(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    s = score_logits(logits, y)
    return s.accuracy, s.loss


def loss_increases(
    model: nn.Module, X, y, fm: FaultModel, *, trials: int, seed: int
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(deployed loss, per-trial L(w_faulty) - L(w_deployed) (inf where not finite), hit sites,
    changed bits): what fault sharpness and SAR's radius calibration average."""
    mc = MonteCarlo([model], X, y, fm)
    base = mc.deployed[0][1]
    rows = [(t.loss[0] - base, t.n_flips[0], t.n_changed[0]) for t in mc.run(trials, seed=seed)]
    inc, flips, changed = (np.array(col, dtype=np.float64) for col in zip(*rows))
    return base, inc, flips, changed


def faulty_parameters(
    model: nn.Module, fm: FaultModel, rng: np.random.Generator | int
) -> tuple[dict[str, torch.Tensor], FaultPattern]:
    """One sampled faulty copy of ``model``'s parameters (fresh tensors) and its pattern."""
    inj = Injector(model, fm)
    pattern = inj.sample(rng)
    return inj.apply(pattern), pattern
