"""Checks at the API boundary: a model and data an analysis can evaluate as deployed.

Every analysis substitutes weights by name (``torch.func.functional_call``) and evaluates the
network as it would run deployed. Models for which that would give a silent wrong answer, or
change the caller's model, are refused here with a message that says what to do:

- a module with parameters or buffers registered under two names (``Sequential(a, mid, mid)``,
  or one module under two attributes): ``functional_call`` on such a model writes the
  substituted tensors into it, and weights are looked up under one of the two names only;
- Dropout or BatchNorm-style modules in training mode: random or batch-dependent outputs, and
  a BatchNorm in training mode updates its running statistics (the caller's model changes);
- parameters that are not float32 (the number formats model float32 weights), or not finite;
- logits that are not (N, C >= 2), and labels outside 0 .. C - 1.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# modules whose forward depends on the training flag in torch.nn itself
_TRAIN_MODE = {
    nn.modules.dropout._DropoutNd: "drops random units on every pass",
    nn.modules.batchnorm._NormBase: (
        "normalizes with batch statistics and updates its running statistics"
    ),
}


def check_model(model: nn.Module, *, name: str = "model", float64: bool = False) -> nn.Module:
    """``model`` if an analysis can evaluate it as deployed, else ValueError saying why.

    ``float64``: also accept a float64 model (analyses that never encode weights: Hessians)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"Invalid {name}={type(model).__name__}: expected a torch.nn.Module")
    params = list(model.named_parameters())
    if not params:
        raise ValueError(f"Invalid {name}: it has no parameters, so there are no weights to fault")
    allowed = (torch.float32, torch.float64) if float64 else (torch.float32,)
    for pname, p in params:
        if p.dtype not in allowed:
            raise ValueError(
                f"Invalid {name}: parameter {pname!r} is {str(p.dtype).replace('torch.', '')}; "
                f"analyses take float32 models (the number formats encode float32 weights): "
                f"pass {name}.float()"
            )
    for pname, p in params:
        if bool(torch.isfinite(p.detach().sum())):  # a NaN or inf element makes the sum one
            continue
        bad = torch.nonzero(~torch.isfinite(p.detach()))
        if len(bad):
            at = tuple(bad[0].tolist())
            raise ValueError(
                f"Invalid {name}: parameter {pname!r} holds {float(p.detach()[at])} at index "
                f"{at}; a deployed model's weights must be finite"
            )
    _check_registered_once(model, name)
    for path, m in model.named_modules():
        for kind, effect in _TRAIN_MODE.items():
            if m.training and isinstance(m, kind):
                where = repr(path) if path else "the model"
                raise ValueError(
                    f"Invalid {name}: {where} ({type(m).__name__}) is in training mode, where it "
                    f"{effect}; analyses evaluate the deployed network: call {name}.eval() first"
                )
    return model


def _check_registered_once(model: nn.Module, name: str) -> None:
    """ValueError when a module holding tensors appears under two names."""
    seen: dict[int, str] = {}
    for path, m in model.named_modules(remove_duplicate=False):
        first = seen.setdefault(id(m), path)
        holds = any(True for _ in m.parameters()) or any(True for _ in m.buffers())
        if first != path and holds:
            raise ValueError(
                f"Invalid {name}: the module at {first!r} is registered again at {path!r}; "
                "weights are substituted by name, which torch.func.functional_call cannot do for "
                "a module registered twice (it would write the faulty weights into your model). "
                "Register it once and call it twice in forward(), or share only its Parameter "
                "between two modules"
            )


def check_logits(logits: torch.Tensor, y: torch.Tensor, *, name: str = "model") -> None:
    """ValueError unless logits are (N, C) with C >= 2 and every label lies in 0 .. C - 1."""
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] < 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(
            f"Invalid {name} output {shape}: analyses score classifiers, whose output is logits "
            "(N, C) with C >= 2 classes"
        )
    if logits.shape[0] != y.shape[0]:
        raise ValueError(
            f"Invalid {name} output {tuple(logits.shape)}: {logits.shape[0]} rows for "
            f"{y.shape[0]} labels"
        )
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= logits.shape[1]:
        raise ValueError(
            f"Invalid y: label {lo if lo < 0 else hi} is out of range; the {name} has "
            f"{logits.shape[1]} outputs, so labels must lie in 0..{logits.shape[1] - 1}"
        )


def check_data(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(X float32, y int64) after checking shapes, finiteness and integer labels."""
    if not isinstance(X, torch.Tensor) or X.dim() < 2 or X.shape[0] < 1:
        shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
        raise ValueError(f"Invalid X {shape}: expected (N, ...) with N >= 1 rows, one per sample")
    if X.dtype.is_complex:
        raise ValueError(f"Invalid X: dtype {X.dtype}; expected real numbers")
    if not isinstance(y, torch.Tensor) or y.shape != (X.shape[0],):
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(
            f"Invalid y {shape}: expected ({X.shape[0]},), one integer label per row of X"
        )
    X = X.float()
    # a NaN or inf element makes the sum non-finite (a finite sum can also overflow: then scan)
    bad = () if bool(torch.isfinite(X.sum())) else torch.nonzero(~torch.isfinite(X))
    if len(bad):
        at = tuple(bad[0].tolist())
        raise ValueError(f"Invalid X: value {float(X[at])} at index {at}; inputs must be finite")
    if y.dtype.is_floating_point:
        if not bool(torch.all(torch.isfinite(y) & (y == torch.round(y)))):
            raise ValueError(
                f"Invalid y: dtype {y.dtype} with non-integer values; labels must be integer "
                "class indices"
            )
    elif y.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise ValueError(f"Invalid y: dtype {y.dtype}; labels must be integer class indices")
    return X, y.long()


def model_data(
    model: nn.Module, X, y, *, name: str = "model", float64: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(X in the model's float dtype, y int64) on the model's device, after ``check_model``
    (``float64``: see there) and ``check_data``."""
    check_model(model, name=name, float64=float64)
    return data_of(model, X, y)


def data_of(model: nn.Module, X, y) -> tuple[torch.Tensor, torch.Tensor]:
    """``model_data`` without checking the model (the caller has)."""
    first = next(model.parameters())
    X, y = _tensor("X", X, first.device), _tensor("y", y, first.device)
    X, y = check_data(X, y)
    return X.to(first.dtype), y


def _tensor(name: str, value, device) -> torch.Tensor:
    """``value`` as a tensor (arrays and nested lists of numbers), else ValueError."""
    if isinstance(value, torch.Tensor):
        return value
    arr = np.asarray(value) if value is not None else np.asarray([])
    if arr.dtype.kind not in "biuf" or arr.size == 0:
        raise ValueError(
            f"Invalid {name}: {type(value).__name__} of dtype {arr.dtype} with shape {arr.shape}; "
            "expected a non-empty array of numbers"
        )
    return torch.as_tensor(arr, device=device)
