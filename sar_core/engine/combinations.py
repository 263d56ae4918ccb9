"""Loss and accuracy of a model at many linear combinations of parameter sets, batched.

The engine under the loss landscapes: every point is sum_k c_k v_k (e.g. w + a d1 + b d2, or
(1 - t) w_a + t w_b), evaluated with ``torch.func.functional_call`` (the model's own tensors are
read, never written), in chunks of points.

Two things keep it near the cost of plain forward passes (benchmarks/landscape_chunks.py):
- *Affine head.* When the model is an ``nn.Sequential`` whose first parameterized layer is a
  Linear or Conv (affine in its weight and bias jointly) after parameter-free modules only, that
  layer's output at any point is sum_k c_k head(x; v_k): computed once per vector, then each
  point costs a K-term sum instead of the layer (about half the MACs of a 2-layer MLP). Not used
  when a vector holds Inf/NaN (0 * inf must stay 0).
- *Cache-sized chunks.* A chunk's stacked parameters and activations are kept within
  ``CHUNK_BUDGET`` float32 elements, from a measured activation count (``activation_elements``:
  conv outputs at full spatial size, 2-D and 4-D inputs alike). Larger chunks made batched
  (grouped) convolutions up to 2x slower than plain forwards.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.overrides import TorchFunctionMode

from sar_core.engine.evaluate import evaluate, score_batch
from sar_core.faults.chain import sequence
from sar_core.validate import check_int

Params = dict[str, torch.Tensor]
CHUNK_BUDGET = 2**23  # float32 elements of one chunk's parameters + activations (32 MiB)
MAX_CHUNK = 16  # points per chunk at most: 32 doubled the digits MLP's time (41x41, 1 thread)
_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class _Allocations(TorchFunctionMode):
    """Counts the elements of every new (non-view) tensor the ops of a forward pass create."""

    def __init__(self) -> None:
        super().__init__()
        self.elements = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and not t._is_view():
                self.elements += t.numel()
        return out


def activation_elements(
    model: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor
) -> int:
    """Elements of all tensors one forward pass allocates per input row (measured on row 0).

    Counts every op's output (convolutions at full spatial size, pooling, activations, logits)
    for 2-D and 4-D inputs alike: an upper bound on the live activations under no_grad.
    """
    counter = _Allocations()
    with torch.no_grad(), counter:
        functional_call(model, dict(params), (x[:1],))
    return counter.elements


def chunk_size_for(model: nn.Module, params: Mapping[str, torch.Tensor], X: torch.Tensor) -> int:
    """Points per chunk: as many as keep parameters + activations within CHUNK_BUDGET."""
    per_point = sum(p.numel() for p in params.values())
    per_point += X.shape[0] * activation_elements(model, params, X)
    return int(max(1, min(MAX_CHUNK, CHUNK_BUDGET // max(per_point, 1))))


def _split_head(model: nn.Module, names: list[str]):
    """(prefix, head name, rest) when the first parameterized layer is affine, else None."""
    if not isinstance(model, nn.Sequential):
        return None
    children = sequence(model)
    for i, (name, module) in enumerate(children):
        if any(True for _ in module.parameters()):
            owned = {f"{name}.{n}" for n, _ in module.named_parameters()}
            ok = isinstance(module, _AFFINE) and owned <= set(names) and i < len(children) - 1
            if not ok or any(True for _ in module.buffers()):
                return None
            prefix = nn.Sequential(OrderedDict(children[:i]))
            return prefix, name, nn.Sequential(OrderedDict(children[i + 1 :]))
    return None


class _Points:
    """Maps a chunk of coefficient rows (C, K) to logits (C, N, n_classes)."""

    def __init__(self, model, X, vectors, finite, batched: bool) -> None:
        names = list(vectors[0])
        split = _split_head(model, names) if all(finite) else None
        self.model, self.X, self.batched, self.H = model, X, batched, None
        if split is not None:
            prefix, head, self.model = split
            own = [n for n in names if n.startswith(head + ".")]
            layer = getattr(model, head)
            with torch.no_grad():
                x = prefix(X)
                outs = [functional_call(layer, {n.split(".", 1)[1]: v[n] for n in own}, (x,))
                        for v in vectors]  # fmt: skip
                self.H = torch.stack(outs)  # (K, N, ...): head(x; v_k)
            vectors = [{n: v[n] for n in names if n not in own} for v in vectors]
        self.combine = _Combiner(vectors, finite, X.device)

    def __call__(self, cc: torch.Tensor) -> torch.Tensor:
        args: tuple = (self.combine(cc),)
        if self.H is None:
            fn = lambda p: functional_call(self.model, p, (self.X,))  # noqa: E731
        else:  # the head's output at each point is sum_k c_k H_k (it is affine in v)
            args += (torch.tensordot(cc, self.H, dims=([1], [0])),)  # (C, N, ...)
            fn = lambda p, x: functional_call(self.model, p, (x,))  # noqa: E731
        if self.batched:
            return vmap(fn)(*args)
        return torch.stack([fn(*[_index(a, i) for a in args]) for i in range(len(cc))])


def _index(a, i: int):
    return {k: v[i] for k, v in a.items()} if isinstance(a, dict) else a[i]


def evaluate_combinations(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    vectors: Sequence[Mapping[str, torch.Tensor]],
    coeffs: np.ndarray | Sequence[Sequence[float]],
    *,
    chunk_size: int | None = None,
    batched: bool | None = None,
) -> tuple[list[float], list[float]]:
    """(loss, accuracy) at every point sum_k coeffs[i, k] * vectors[k]; coeffs: (P, K).

    X, y: tensors on the model's device. ``chunk_size``: points per chunk (default from the
    memory budget); ``batched``: vmap over a chunk (default when chunk_size > 1) or one plain
    forward per point. A zero coefficient contributes exactly nothing, even where its vector is
    not finite. A point that is exactly one of the vectors (a unit coefficient row, e.g.
    alpha = 0) is scored by ``evaluate`` itself, so it matches it bit for bit.
    """
    c = torch.as_tensor(np.asarray(coeffs, dtype=np.float32))  # (P, K)
    if c.ndim != 2 or c.shape[1] != len(vectors):
        raise ValueError(f"Invalid coeffs shape={tuple(c.shape)}: expected (P, {len(vectors)})")
    names = list(vectors[0])
    finite = [all(bool(torch.isfinite(v[n]).all()) for n in names) for v in vectors]
    if chunk_size is None:
        chunk_size = chunk_size_for(model, vectors[0], X)
    chunk_size = check_int("chunk_size", chunk_size, low=1, high=100_000)
    unit = ((c == 0) | (c == 1)).all(dim=1) & ((c == 1).sum(dim=1) == 1)  # (P,)
    exact = {k: evaluate(model, X, y, vectors[k]) for k in set(c[unit].argmax(dim=1).tolist())}
    points = _Points(model, X, vectors, finite, chunk_size > 1 if batched is None else batched)
    losses: list[float] = []
    accs: list[float] = []
    with torch.no_grad():
        for start in range(0, c.shape[0], chunk_size):
            cc = c[start : start + chunk_size].to(X.device)  # (C, K)
            acc, loss = map(
                list, zip(*score_batch(points(cc), y))
            )  # (C, N, K): (acc, loss) per point
            for i in torch.nonzero(unit[start : start + chunk_size]).flatten().tolist():
                s = exact[int(cc[i].argmax())]
                loss[i], acc[i] = s.loss, s.accuracy
            losses += loss
            accs += acc
    return losses, accs


class _Combiner:
    """Parameter sets sum_k c_k v_k for a chunk of coefficient rows, stacked per parameter.

    Each parameter's K vectors are flattened into one (K, size) matrix once, so a chunk (C, K)
    costs one matrix product per parameter, (C, K) @ (K, size), giving a contiguous (C, *shape)
    stack (vmap is several times slower on strided views). A vector holding Inf/NaN takes the
    elementwise path, where a zero coefficient contributes exactly 0 (not 0 * inf).
    """

    def __init__(self, vectors: Sequence[Mapping[str, torch.Tensor]], finite, device) -> None:
        self.vectors, self.finite = vectors, finite
        self.names = list(vectors[0])
        self.flat: dict[str, torch.Tensor] | None = None
        if all(finite):
            self.flat = {
                n: torch.stack([v[n].reshape(-1) for v in vectors]).to(device)  # (K, size)
                for n in self.names
            }

    def __call__(self, cc: torch.Tensor) -> Params:
        if self.flat is None:
            return {n: _combine(cc, [v[n] for v in self.vectors], self.finite) for n in self.names}
        shapes = {n: self.vectors[0][n].shape for n in self.names}
        return {n: (cc @ m).view(len(cc), *shapes[n]) for n, m in self.flat.items()}


def _combine(cc: torch.Tensor, tensors: list[torch.Tensor], finite: list[bool]) -> torch.Tensor:
    out = None
    for k, (t, ok) in enumerate(zip(tensors, finite)):
        ck = cc[:, k].reshape(-1, *([1] * t.ndim))  # (C, 1, ..., 1)
        term = ck * t.unsqueeze(0)  # (C, *shape)
        if not ok:
            term = torch.where(ck == 0, torch.zeros_like(term), term)  # 0 * inf must be 0
        out = term if out is None else out + term
    return out
