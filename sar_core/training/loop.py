"""One train() for every method: same split, same seed, same initial weights; only the optimizer differs.

Methods: sgd, adam, sam, asam, sar, fat (fault-aware training: each step takes the gradient at
a freshly sampled faulty copy of the weights and applies it to the clean weights), and the
defenses of Stutz et al. (MLSys 2021): clip (every weight tensor clamped to [-w_max, w_max] after
each step), randbet (clip + random bit errors: each forward pass sees the int8-quantized weights,
once clean and once with every selected bit flipped with probability = the target BER; the mean of
the two losses is differentiated with the straight-through estimator, d/dw of the quantized weight
taken as 1), and sar_clip (SAR + the same clipping).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sar_core.data.datasets import Dataset
from sar_core.data.models import ModelSpec, build_model
from sar_core.engine.evaluate import as_tensors, logits_of, score_logits
from sar_core.engine.montecarlo import faulty_parameters
from sar_core.faults.model import FaultModel
from sar_core.training.calibrate import Calibration, calibrate_rho
from sar_core.training.config import METHODS, TrainConfig, with_method  # noqa: F401 — public API
from sar_core.training.optim import ASAM, SAM, SAR
from sar_core.training.randbet import RandBET, clip_bounds, clip_weights


@dataclass
class TrainResult:
    """A trained model (on CPU, eval mode) with its per-epoch history."""

    model: nn.Module
    spec: ModelSpec
    config: TrainConfig
    history: list[dict] = field(default_factory=list)
    calibrations: list[Calibration] = field(default_factory=list)
    stopped: bool = False  # cancelled before the last epoch
    diverged: str | None = None  # first non-finite loss: "ascent" (at w + e(w)) or "loss" (at w)

    @property
    def clean_accuracy(self) -> float:
        """Test accuracy after the last completed epoch."""
        return self.history[-1]["test_acc"] if self.history else float("nan")

    @property
    def train_seconds(self) -> float:
        """Wall time of all epochs."""
        return float(sum(h["seconds"] for h in self.history))

    def metadata(self, data: Dataset) -> dict:
        """Checkpoint metadata (io.checkpoint_bytes adds the spec): method, config, data, metrics."""
        return {
            "method": self.config.method,
            "label": self.config.label,
            "config": self.config.to_dict(),
            "dataset": data.describe(),
            "seed": self.config.seed,
            "metrics": {"clean_accuracy": self.clean_accuracy, "train_seconds": self.train_seconds},
            "history": self.history,
            "calibrations": [c.to_dict() for c in self.calibrations],
            "stopped": self.stopped,
        }


# hidden widths / channels when none are given: the 1-D CNN's are the suite's MNIST-1D CNN's
DEFAULT_WIDTHS = {"mlp": (128, 64), "cnn": (8, 16), "cnn1d": (16, 32)}


def spec_for(
    data: Dataset,
    arch: str = "mlp",
    widths: tuple[int, ...] | None = None,
    activation: str = "relu",
) -> ModelSpec:
    """Model spec matching a dataset (widths default to DEFAULT_WIDTHS of the architecture)."""
    if widths is None:
        widths = DEFAULT_WIDTHS.get(arch, DEFAULT_WIDTHS["mlp"])
    return ModelSpec(
        arch=arch,
        n_features=data.n_features,
        n_classes=data.n_classes,
        widths=tuple(widths),
        activation=activation,
        image_shape=data.image_shape,
    )


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    lr, wd = cfg.effective_lr, cfg.weight_decay
    if cfg.method == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    base = dict(lr=lr, momentum=cfg.momentum, weight_decay=wd)
    if cfg.method in ("sgd", "fat", "clip", "randbet"):
        return torch.optim.SGD(model.parameters(), **base)
    if cfg.method == "sam":
        return SAM(model.parameters(), torch.optim.SGD, rho=cfg.effective_rho, eta=cfg.eta, **base)
    if cfg.method == "asam":
        return ASAM(model.parameters(), torch.optim.SGD, rho=cfg.effective_rho, eta=cfg.eta, **base)
    return SAR(
        model.named_parameters(),
        torch.optim.SGD,
        rho=cfg.effective_rho,
        geometry=cfg.effective_geometry,
        eta=cfg.eta,
        fault_model=cfg.target,
        seed=cfg.seed,
        **cfg.sar_v3,
        **base,
    )


def _fat_grads(model: nn.Module, xb, yb, fm: FaultModel, rng: np.random.Generator) -> float:
    """Gradient at a sampled faulty copy of the weights, written into the clean weights' .grad."""
    faulty, _ = faulty_parameters(model, fm, rng)  # the Monte Carlo core's sampling and apply
    faulty = {n: t.detach().requires_grad_(True) for n, t in faulty.items()}
    logits = functional_call(model, faulty, (xb,))
    finite = torch.isfinite(logits).all(
        dim=1
    )  # rows destroyed by a catastrophic flip carry no signal
    loss = F.cross_entropy(logits[finite], yb[finite]) if finite.any() else logits.sum() * 0
    grads = torch.autograd.grad(loss, list(faulty.values()), allow_unused=True)
    for (_, p), g in zip(model.named_parameters(), grads):
        p.grad = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0) if g is not None else None
    return float(loss.detach())


def _batch_step(model, opt, config: TrainConfig, xb, yb, aux, bounds=None, bn=None):
    """One optimizer step on a batch; returns (loss at w, logits at w); clamps to ``bounds``.
    ``bn``: the model's ``_bn_buffers`` (found here when None)."""

    def closure():
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        loss.backward()
        return loss, out

    opt.zero_grad()
    if isinstance(opt, SAM):  # ascent at w, descent with the gradient at w + e(w)
        loss, out = closure()
        opt.first_step(zero_grad=True)
        bn = _bn_buffers(model) if bn is None else bn
        saved = [b.clone() for b in bn]
        loss_up, _ = closure()
        with torch.no_grad():  # the pass at w + e(w) must not move them: once per step, at w
            for b, v in zip(bn, saved):
                b.copy_(v)
        opt.second_step()
        if not getattr(opt, "diverged", None) and not bool(torch.isfinite(loss_up)):
            # the first non-finite loss appeared at w + e(w) while L(w) was finite: the radius
            opt.diverged = "ascent" if bool(torch.isfinite(loss)) else "loss"
    elif config.method == "fat":
        with torch.no_grad():
            out = model(xb)
        loss = torch.tensor(_fat_grads(model, xb, yb, config.training_faults, aux))
        opt.step()
    elif config.method == "randbet":
        loss, out = aux.loss(model, xb, yb)
        loss.backward()
        opt.step()
    else:
        loss, out = closure()
        opt.step()
    if bounds is not None:
        clip_weights(model, bounds)
    if not getattr(opt, "diverged", None) and not bool(torch.isfinite(loss)):
        opt.diverged = "loss"
    return loss, out


def _bn_buffers(model: nn.Module) -> list[torch.Tensor]:
    """BatchNorm running statistics and batch counts: what a training-mode forward pass updates.
    A SAM-family step keeps them across its pass at the ascent point w + e(w) (davda54/sam
    disables them there too), or it would move them twice, once at perturbed weights."""
    return [
        b
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._NormBase)
        for b in m.buffers(recurse=False)
    ]


def _calibrate(model, opt, config: TrainConfig, Xtr, ytr, epoch: int) -> Calibration:
    n = Xtr.shape[0]
    sub = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + epoch))[:512]
    was_training = model.training
    model.eval()  # the faults hit the deployed network (no Dropout, frozen BatchNorm)
    try:
        cal = calibrate_rho(
            model,
            Xtr[sub],
            ytr[sub],
            config.target,
            geometry=opt.param_groups[0]["geometry"],
            eta=config.eta,
            seed=config.seed + epoch,
            rho_max=config.rho_max,
        )
    finally:
        model.train(was_training)
    opt.set_rho(cal.rho)
    return cal


def train(
    spec: ModelSpec,
    data: Dataset,
    config: TrainConfig,
    *,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    device: str | torch.device | None = None,
) -> TrainResult:
    """Train a fresh model (initial weights from ``config.seed``) and return it with its history.

    ``on_epoch`` receives each epoch's record; ``should_stop`` is polled between batches and ends
    training early (the result then has ``stopped=True``, the epochs completed so far, and the
    weights as they were at the end of the last completed epoch).
    """
    if spec.n_features != data.n_features or spec.n_classes != data.n_classes:
        raise ValueError(
            f"Invalid spec: n_features={spec.n_features}, n_classes={spec.n_classes} do not match "
            f"dataset {data.name!r} ({data.n_features} features, {data.n_classes} classes)"
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_model(spec, config.seed).to(dev)
    opt = _optimizer(model, config)
    Xtr, ytr = as_tensors(data.X_train, data.y_train, dev)
    Xte, yte = as_tensors(data.X_test, data.y_test, dev)
    gen = torch.Generator().manual_seed(config.seed)  # batch order, same for every method
    aux = (
        RandBET(model, config.target, config.seed)
        if config.method == "randbet"
        else np.random.default_rng([config.seed, 1])  # fat's fault patterns
    )
    bounds = clip_bounds(model, config.effective_w_max, config.w_max_rel) if config.clips else None
    result = TrainResult(model=model, spec=spec, config=config)
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        # weights at the end of the last completed epoch: a stop mid-epoch returns these, so the
        # model always matches its history
        completed = {k: v.detach().clone() for k, v in model.state_dict().items()}
        calibrating = config.rho_mode == "calibrated" and config.method in ("sar", "sar_clip")
        if calibrating and (epoch - 1) % config.calibrate_every == 0:
            result.calibrations.append(_calibrate(model, opt, config, Xtr, ytr, epoch))
        rec = _epoch(model, opt, config, Xtr, ytr, gen, aux, should_stop, bounds)
        if rec is None:
            result.stopped = True
            with torch.no_grad():
                model.load_state_dict(completed)
            break
        model.eval()
        score = score_logits(logits_of(model, None, Xte), yte)  # unchecked: may have diverged
        rec = {"epoch": epoch, "method": config.method, **rec}
        rec.update(
            test_acc=score.accuracy, test_loss=score.loss, rho=opt.param_groups[0].get("rho")
        )
        if isinstance(aux, RandBET):
            rec.update(bit_errors=aux.flips, bit_error_sites=aux.sites)
        rec["seconds"] = time.perf_counter() - t0
        result.history.append(rec)
        result.diverged = getattr(opt, "diverged", None)
        if on_epoch is not None:
            on_epoch(dict(rec))
    model.eval()
    result.model = model.cpu()
    return result


def divergence_message(result: TrainResult) -> str | None:
    """One line naming the cause when training diverged (weights NaN/Inf), else None.

    The cause is read from where the first non-finite loss appeared: at the ascent point
    w + e(w) while L(w) was still finite means the radius rho was too large for this model (the
    same learning rate without the ascent is fine); at w itself it is the learning rate.
    """
    finite = all(bool(p.isfinite().all()) for p in result.model.parameters())
    if finite and result.diverged is None:
        return None
    cfg = result.config
    if result.diverged == "ascent":
        geo = cfg.effective_geometry
        unit = " (a multiplier of the fault radius sqrt(E[n]))" if geo == "fault" else ""
        return (
            f"Invalid rho={cfg.effective_rho}{unit}: training diverged (non-finite loss at the "
            f"ascent point w + e(w), geometry {geo!r}, while the loss at w was finite); use a "
            "smaller --rho"
        )
    if cfg.method in ("fat", "randbet"):
        t = cfg.target
        return (
            f"Invalid fault_model ber={t.ber if t else None}: training of {cfg.method} "
            f"diverged (weights became NaN/Inf) at lr={cfg.effective_lr}; use a smaller "
            "training BER or a smaller --lr"
        )
    return (
        f"Invalid lr={cfg.effective_lr}: training diverged (weights became NaN/Inf); use a "
        "smaller --lr"
    )


def _epoch(model, opt, config, Xtr, ytr, gen, aux, should_stop, bounds=None) -> dict | None:
    """One pass over the training set; None when stopped mid-epoch."""
    model.train()
    n, bn = Xtr.shape[0], _bn_buffers(model)
    perm = torch.randperm(n, generator=gen).to(Xtr.device)
    tot_loss, tot_correct = 0.0, 0
    if isinstance(aux, RandBET):
        aux.flips = aux.sites = 0
    for i in range(0, n, config.batch_size):
        if should_stop is not None and should_stop():
            return None
        idx = perm[i : i + config.batch_size]
        xb, yb = Xtr[idx], ytr[idx]
        loss, out = _batch_step(model, opt, config, xb, yb, aux, bounds, bn)
        tot_loss += float(loss.detach()) * len(idx)
        ok = (out.argmax(1) == yb) & torch.isfinite(out).all(dim=1)  # NaN/Inf rows: wrong
        tot_correct += int(ok.sum())
    return {
        "train_loss": tot_loss / n if np.isfinite(tot_loss) else float("inf"),
        "train_acc": tot_correct / n,
    }
