"""Accuracy and loss of a model under a given parameter dict, functionally (no mutation)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sar_core.engine.checks import check_logits, model_data


@dataclass(frozen=True)
class Score:
    """Accuracy in [0, 1] and mean cross-entropy (inf when logits are not finite)."""

    accuracy: float
    loss: float


def as_tensors(X: np.ndarray, y: np.ndarray, device: torch.device | str = "cpu"):
    """Numpy arrays -> (float32, int64) tensors on ``device``."""
    return (
        torch.as_tensor(np.asarray(X, dtype=np.float32), device=device),
        torch.as_tensor(np.asarray(y, dtype=np.int64), device=device),
    )


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


def logits_of(
    model: nn.Module,
    params: Mapping[str, torch.Tensor] | None,
    X: torch.Tensor,
    batch_size: int = 4096,
) -> torch.Tensor:
    """Logits (N, K) of ``model`` evaluated with ``params`` (its own parameters when None)."""
    outs = []
    with torch.no_grad():
        for i in range(0, X.shape[0], batch_size):
            # a copy: a model whose first module writes into its input (x += 1, ReLU(inplace))
            # must not change the caller's data, nor the next pass's input (DESIGN rule 1)
            xb = X[i : i + batch_size].clone()
            if params is None:
                outs.append(model(xb))
            else:
                outs.append(functional_call(model, dict(params), (xb,)))
    return torch.cat(outs)


def score_logits(logits: torch.Tensor, y: torch.Tensor) -> Score:
    """Accuracy (rows with NaN/Inf are wrong) and loss (inf when not finite)."""
    finite_rows = torch.isfinite(logits).all(dim=1)
    correct = (logits.argmax(dim=1) == y) & finite_rows
    acc = float(correct.float().mean())
    if bool(finite_rows.all()):
        loss = float(F.cross_entropy(logits, y))
        if not np.isfinite(loss):
            loss = float("inf")
    else:
        loss = float("inf")
    return Score(accuracy=acc, loss=loss)


def score_batch(
    logits: torch.Tensor, y: torch.Tensor, *, class_dim: int = 2
) -> list[tuple[float, float]]:
    """(accuracy, loss) per trial of logits (K, N, C) (or (K, C, N) with class_dim=1).

    Conventions of ``score_logits``: a row with a NaN/Inf logit is wrong, and the trial's loss is
    inf when any row is not finite. The prediction is the first maximal logit (``argmax``).
    """
    if class_dim == 1 and logits.shape[1] <= 64:
        return _score_class_major(logits, y)
    if class_dim == 1:  # reductions over the last dim are the fast ones
        logits = logits.transpose(1, 2).contiguous()
    finite = torch.isfinite(logits).all(dim=2)  # (K, N)
    acc = ((logits.argmax(dim=2) == y) & finite).float().mean(dim=1)
    ce = F.cross_entropy(logits.transpose(1, 2), y.expand(logits.shape[0], -1), reduction="none")
    return _trial_scores(acc, ce, finite)


def _score_class_major(logits: torch.Tensor, y: torch.Tensor) -> list[tuple[float, float]]:
    """``score_batch`` of class-major logits (K, C, N), few classes.

    Torch's reductions over a middle dim of a few classes are slow on the CPU (argmax over 10
    classes costs ~50x an elementwise pass), so they run as C elementwise steps on (K, N) rows:
    row n is right iff it is finite, its label's logit l_y equals the maximum m, and every class
    before the label is below l_y (argmax returns the first maximal index)."""
    K, C, N = logits.shape
    rows = logits.unbind(1)  # C views (K, N)
    m, lo = rows[0].clone(), rows[0].clone()
    for r in rows[1:]:
        torch.maximum(m, r, out=m)  # NaN propagates
        torch.minimum(lo, r, out=lo)
    finite = torch.maximum(m, lo.neg_()) < float("inf")  # False for NaN, +inf and -inf
    ly = logits.gather(1, y.expand(K, 1, N)).squeeze(1)  # (K, N) the label's logit
    classes = torch.arange(C, device=y.device)[:, None]
    # -inf on classes at or after the label: "before" is the max over classes before it
    neg = torch.zeros(C, N, dtype=logits.dtype, device=y.device)
    neg.masked_fill_(classes >= y, float("-inf"))
    before = rows[0] + neg[0]
    for c in range(1, C):
        torch.maximum(before, rows[c] + neg[c], out=before)
    correct = (ly == m) & (before < ly) & finite
    ce = F.cross_entropy(logits, y.expand(K, -1), reduction="none")  # (K, N)
    return _trial_scores(correct.float().mean(dim=1), ce, finite)


def _trial_scores(acc, ce, finite) -> list[tuple[float, float]]:
    """(accuracy, mean loss) per trial; the loss is inf where a row or the mean is not finite."""
    loss = ce.mean(dim=1)
    ok = finite.all(dim=1) & torch.isfinite(loss)
    loss = torch.where(ok, loss, torch.full_like(loss, float("inf")))
    return list(zip(acc.tolist(), loss.tolist()))


def evaluate(
    model: nn.Module,
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    params: Mapping[str, torch.Tensor] | None = None,
) -> Score:
    """Score of ``model`` on (X, y), optionally with substituted parameters; never mutates.

    The model and data are checked first (``sar_core.engine.checks``): ValueError on a model
    that cannot be evaluated as deployed, on bad data and on labels the output cannot hold."""
    X, y = model_data(model, X, y)
    logits = logits_of(model, params, X)
    check_logits(logits, y)
    return score_logits(logits, y)
