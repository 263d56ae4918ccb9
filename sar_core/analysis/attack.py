"""Adversarial worst case: progressive bit search (Rakin et al., ICCV 2019) on int8 weights.

The model is deployed in int8 (w = q·s, the same encoding a campaign uses) and never mutated: the
search works on copies of the int8 codes q. Each iteration
  1. takes the gradient g of the cross-entropy on a fixed, seeded attack batch w.r.t. the weights;
  2. in-layer search: scores every eligible bit by the first-order loss change of its flip,
     g · Δq · s, where Δq = ±2^b for bit b < 7 and ±128 for the sign bit 7 (two's complement),
     and keeps the ``candidates`` best sites of each layer;
  3. cross-layer search: evaluates the exact attack-batch loss of each candidate flip and accepts
     the one that raises it most.
A flip is accepted only if it raises the attack-batch loss; when no candidate does, the candidate
list is widened (x4, up to ``max_candidates``) before the search gives up ("stalled"). The search
stops when the evaluation accuracy falls to the target (default 1/K + 0.10: ten points above
chance) or the flip budget is spent. Sites already flipped are never flipped back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sar_core import limits
from sar_core.engine.checks import check_model
from sar_core.engine.evaluate import as_tensors, evaluate, logits_of, model_device
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel, FaultPattern
from sar_core.formats import bits as B
from sar_core.validate import check_float, check_int

INT8_BITS = 8


@dataclass(frozen=True)
class AttackResult:
    """Outcome of one progressive bit search."""

    initial_accuracy: float  # evaluation accuracy of the deployed int8 model, no flips
    initial_loss: float  # attack-batch loss before any flip
    target_accuracy: float
    accuracy: list[float]  # evaluation accuracy after each accepted flip
    loss: list[float]  # attack-batch loss after each accepted flip (strictly increasing)
    sites: list[dict]  # per flip: param, index (flat), bit, q_before, q_after
    stop_reason: str  # "target" | "budget" | "stalled"
    n_sites: int  # eligible bit sites the search could choose from
    fault_model: FaultModel = field(repr=False)

    @property
    def flips(self) -> int:
        """Number of accepted flips."""
        return len(self.sites)

    @property
    def reached(self) -> bool:
        """Whether the evaluation accuracy fell to the target."""
        return self.stop_reason == "target"

    def pattern(self) -> FaultPattern:
        """The flipped sites as a fault pattern (for Injector.apply / a campaign's shapes)."""
        sites: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for s in self.sites:
            idx, bit = sites.get(s["param"], (np.empty(0, np.int64), np.empty(0, np.int64)))
            sites[s["param"]] = (np.append(idx, s["index"]), np.append(bit, s["bit"]))
        return FaultPattern(sites=sites, n_flips=self.flips, n_sites=self.n_sites)

    def to_dict(self) -> dict:
        """JSON-friendly summary."""
        return {
            "flips": self.flips,
            "reached": self.reached,
            "stop_reason": self.stop_reason,
            "initial_accuracy": self.initial_accuracy,
            "target_accuracy": self.target_accuracy,
            "final_accuracy": self.accuracy[-1] if self.accuracy else self.initial_accuracy,
            "initial_loss": self.initial_loss,
            "accuracy": list(self.accuracy),
            "loss": list(self.loss),
            "sites": [dict(s) for s in self.sites],
            "n_sites": self.n_sites,
            "fault_model": self.fault_model.to_dict(),
        }


def _int8_state(inj: Injector, model: nn.Module, granularity: str):
    """Per eligible parameter: int8 codes q (int16 tensor, room for -128) and scale s (float32)."""
    q, s = {}, {}
    own = dict(model.named_parameters())
    deployed = inj.deployed()
    for n in inj.eligible:
        w = own[n].detach().cpu().numpy()
        scale = B.int8_scale(w, granularity)
        codes = B.encode(w, "int8", scale).view(np.int8)
        q[n] = torch.from_numpy(codes.astype(np.int16)).to(deployed[n].device)
        s[n] = torch.from_numpy(np.asarray(scale, dtype=np.float32)).to(deployed[n].device)
        if not torch.equal(q[n].float() * s[n], deployed[n]):  # must match the campaign's int8
            raise RuntimeError(f"int8 codes of {n!r} do not reproduce the injector's deployment")
    return q, s


def _delta_q(q: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Δq of flipping each selected bit of each code: shape (numel, n_bits)."""
    u = (q.reshape(-1, 1).to(torch.int32)) & 0xFF  # two's complement byte
    is_set = ((u >> positions) & 1).bool()  # (numel, n_bits)
    mag = torch.where(positions == 7, 128, 1 << positions)  # bit 7 weighs -128
    sign = torch.where(positions == 7, -1, 1)  # setting bit 7 subtracts 128
    return torch.where(is_set, -sign * mag, sign * mag)


def _loss(model: nn.Module, params: dict, X: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        out = functional_call(model, params, (X,))
        loss = float(F.cross_entropy(out, y)) if bool(torch.isfinite(out).all()) else np.inf
    return loss if np.isfinite(loss) else float("inf")


def _grads(model, params, names, X, y) -> tuple[float, dict[str, torch.Tensor]]:
    leaves = {n: params[n].detach().clone().requires_grad_(True) for n in names}
    loss = F.cross_entropy(functional_call(model, {**params, **leaves}, (X,)), y)
    g = torch.autograd.grad(loss, [leaves[n] for n in names])
    return float(loss.detach()), {n: torch.nan_to_num(gi) for n, gi in zip(names, g)}


def _candidates(g, q, s, positions, flipped, k) -> list[tuple[float, int, int, int]]:
    """Top-k sites of one tensor by first-order loss increase: (score, flat index, bit, Δq)."""
    dq = _delta_q(q, positions)  # (numel, n_bits)
    s_flat = s.expand_as(q).reshape(-1, 1) if s.ndim else s
    score = g.reshape(-1, 1) * dq.float() * s_flat
    for idx, bit in flipped:
        score[idx, int((positions == bit).nonzero()[0, 0])] = -torch.inf
    top = torch.topk(score.reshape(-1), min(k, score.numel()))
    out = []
    for val, flat in zip(top.values.tolist(), top.indices.tolist()):
        if val == -float("inf"):
            continue
        i, j = divmod(flat, positions.numel())
        out.append((val, i, int(positions[j]), int(dq[i, j])))
    return out


@dataclass
class _Search:
    """Mutable state of one search: current codes and parameters (copies, never the model's)."""

    model: nn.Module
    params: dict[str, torch.Tensor]
    q: dict[str, torch.Tensor]
    s: dict[str, torch.Tensor]
    positions: torch.Tensor
    flipped: dict[str, set] = field(default_factory=dict)

    def trial_params(self, name: str, idx: int, dq: int) -> dict[str, torch.Tensor]:
        w = self.params[name].clone()
        q_new = self.q[name].reshape(-1)[idx] + dq
        s_i = (
            self.s[name].expand_as(self.q[name]).reshape(-1)[idx]
            if self.s[name].ndim
            else self.s[name]
        )
        w.reshape(-1)[idx] = q_new.float() * s_i
        return {**self.params, name: w}

    def best_flip(self, Xa, ya, k: int):
        """Exact attack-batch loss of each layer's top-k candidates; the best (loss, site)."""
        names = list(self.q)
        _, grads = _grads(self.model, self.params, names, Xa, ya)
        best = None
        for n in names:
            flipped = self.flipped.get(n, set())
            for _, idx, bit, dq in _candidates(
                grads[n], self.q[n], self.s[n], self.positions, flipped, k
            ):
                loss = _loss(self.model, self.trial_params(n, idx, dq), Xa, ya)
                if best is None or loss > best[0]:
                    best = (loss, n, idx, bit, dq)
        return best

    def accept(self, name: str, idx: int, bit: int, dq: int) -> dict:
        q_before = int(self.q[name].reshape(-1)[idx])
        self.params = self.trial_params(name, idx, dq)
        q = self.q[name].clone()
        q.reshape(-1)[idx] += dq
        self.q[name] = q
        self.flipped.setdefault(name, set()).add((idx, bit))
        return {
            "param": name,
            "index": idx,
            "bit": bit,
            "q_before": q_before,
            "q_after": q_before + dq,
        }


def attack_batch(X, y, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random subset of (X, y) without replacement (all rows when batch_size >= N)."""
    X, y = np.asarray(X), np.asarray(y)
    batch_size = check_int("batch_size", batch_size, low=1, high=limits.MAX_CSV_ROWS)
    idx = np.random.default_rng([seed, 0xBFA]).permutation(len(y))[:batch_size]
    return X[idx], y[idx]


def check_attack_settings(
    *,
    max_flips: int = 200,
    candidates: int = 1,
    max_candidates: int = 64,
    seed: int = 0,
    target_accuracy: float | None = None,
    batch_size: int = 128,
) -> None:
    """Validate search settings (ValueError naming the parameter, its value and the range)."""
    check_int("batch_size", batch_size, low=1, high=limits.MAX_CSV_ROWS)
    check_int("max_flips", max_flips, low=1, high=limits.MAX_FLIP_COUNT)
    check_int("candidates", candidates, low=1, high=100_000)
    check_int("max_candidates", max_candidates, low=candidates, high=100_000)
    check_int("seed", seed, low=0, high=2**63 - 1)
    if target_accuracy is not None:
        check_float("target_accuracy", target_accuracy, low=0.0, high=1.0)


@dataclass(frozen=True)
class SearchSettings:
    """Settings of a progressive bit search (validated on construction)."""

    target_accuracy: float | None = None  # stop at or below this eval accuracy; None: 1/K + 0.10
    max_flips: int = 200  # flip budget
    batch_size: int = 128  # attack-batch rows drawn from (X_attack, y_attack) with ``seed``
    candidates: int = 1  # sites per layer evaluated exactly per iteration (Rakin et al.: 1)
    max_candidates: int = 64  # a stalled search widens its candidates x4 up to this
    bits: tuple[int, ...] | str | None = None  # eligible bits as in a FaultModel ("0-6": no sign)
    layers: tuple[str, ...] | None = None  # eligible layers; None: all
    include_bias: bool = False
    granularity: str = "tensor"  # int8 scale per "tensor" or per output "channel"
    seed: int = 0  # the attack batch's seed

    def __post_init__(self) -> None:
        check_attack_settings(
            max_flips=self.max_flips,
            candidates=self.candidates,
            max_candidates=self.max_candidates,
            seed=self.seed,
            target_accuracy=self.target_accuracy,
            batch_size=self.batch_size,
        )
        self.fault_model()  # bits and granularity, checked by FaultModel

    def fault_model(self) -> FaultModel:
        """The int8 sites the search may flip (count=1: one flip per accepted step)."""
        return FaultModel(
            format="int8",
            bits=self.bits,
            count=1,
            layers=self.layers,
            include_bias=self.include_bias,
            granularity=self.granularity,
        )


def progressive_bit_search(
    model: nn.Module,
    X_attack,
    y_attack,
    X_eval,
    y_eval,
    settings: SearchSettings | None = None,
    **overrides,
) -> AttackResult:
    """Flip int8 weight bits greedily (PBS) until eval accuracy <= target or the flip budget.

    ``settings`` (default ``SearchSettings()``), with ``overrides`` replacing its fields (e.g.
    ``max_flips=300, seed=1``). The attack batch is ``batch_size`` rows of (X_attack, y_attack)
    drawn with ``seed``; accuracy is measured on (X_eval, y_eval).
    """
    cfg = replace(settings or SearchSettings(), **overrides)
    fm = cfg.fault_model()
    check_model(model)
    inj = Injector(model, fm)
    dev = model_device(model)
    Xa, ya = as_tensors(*attack_batch(X_attack, y_attack, cfg.batch_size, cfg.seed), dev)
    Xe, ye = as_tensors(X_eval, y_eval, dev)
    q, s = _int8_state(inj, model, cfg.granularity)
    positions = torch.tensor(fm.bits, dtype=torch.int32, device=dev)
    search = _Search(model, inj.deployed(), q, s, positions)
    n_classes = int(logits_of(model, search.params, Xe[:1]).shape[1])
    target = 1.0 / n_classes + 0.10 if cfg.target_accuracy is None else cfg.target_accuracy
    acc0 = evaluate(model, Xe, ye, search.params).accuracy
    loss0 = _loss(model, search.params, Xa, ya)
    trace = _greedy(search, (Xa, ya), (Xe, ye), float(target), cfg)
    return AttackResult(
        initial_accuracy=acc0,
        initial_loss=loss0,
        target_accuracy=float(target),
        n_sites=inj.n_sites,
        fault_model=fm,
        **trace,
    )


def _greedy(search: _Search, attack, evaluation, target: float, cfg: SearchSettings) -> dict:
    """Accept loss-raising flips until eval accuracy <= target, the budget, or a stall."""
    (Xa, ya), (Xe, ye) = attack, evaluation
    max_flips, k0, k_max = cfg.max_flips, cfg.candidates, cfg.max_candidates
    cur = _loss(search.model, search.params, Xa, ya)
    accs, losses, sites, k = [], [], [], k0
    reason = "target" if evaluate(search.model, Xe, ye, search.params).accuracy <= target else ""
    while not reason and len(sites) < max_flips:
        best = search.best_flip(Xa, ya, k)
        if best is None or not best[0] > cur:  # no candidate raises the loss: widen the search
            if k >= k_max:
                reason = "stalled"
            k = min(4 * k, k_max)
            continue
        cur, name, idx, bit, dq = best
        sites.append(search.accept(name, idx, bit, dq))
        losses.append(cur)
        accs.append(evaluate(search.model, Xe, ye, search.params).accuracy)
        k = k0
        if accs[-1] <= target:
            reason = "target"
    return {"accuracy": accs, "loss": losses, "sites": sites, "stop_reason": reason or "budget"}


def random_flip_baseline(
    model: nn.Module,
    X,
    y,
    n_flips: int,
    *,
    trials: int = 100,
    seed: int = 0,
    bits=None,
    layers: tuple[str, ...] | None = None,
    include_bias: bool = False,
    granularity: str = "tensor",
) -> dict:
    """Accuracy under ``n_flips`` uniformly random int8 weight-bit flips (campaign summary)."""
    from sar_core.analysis.campaign import run_campaign

    fm = FaultModel(
        format="int8",
        bits=bits,
        count=check_int("n_flips", n_flips, low=1, high=limits.MAX_FLIP_COUNT),
        layers=layers,
        include_bias=include_bias,
        granularity=granularity,
    )
    return run_campaign(model, X, y, fm, trials=trials, seed=seed).summary()
