"""Accuracy and loss of a model under a given parameter dict, functionally (no mutation)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


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


def evaluate(
    model: nn.Module,
    X: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    params: Mapping[str, torch.Tensor] | None = None,
) -> Score:
    """Score of ``model`` on (X, y), optionally with substituted parameters; never mutates."""
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        X, y = as_tensors(X, y, model_device(model))
    return score_logits(logits_of(model, params, X), y)
