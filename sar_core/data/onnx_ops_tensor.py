"""ONNX tensor plumbing as torch functions: shapes, indexing, reductions, casts and constants.

Part of ``sar_core.data.onnx_ops`` (the ``OPS`` table; the calling convention is documented
there). Shape arithmetic (Shape / Gather / Concat / Reshape ...) runs on int64 tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

Tensor = torch.Tensor
Op = Callable[[list, dict, int], list]
_TORCH_DTYPES = {
    1: torch.float32,
    2: torch.uint8,
    3: torch.int8,
    5: torch.int16,
    6: torch.int32,
    7: torch.int64,
    9: torch.bool,
    10: torch.float16,
    11: torch.float64,
    16: torch.bfloat16,
}


def _ints(t) -> list[int]:
    """A 0-D / 1-D tensor, array or list of integers as a Python list."""
    if isinstance(t, Tensor):
        return [int(v) for v in t.reshape(-1).tolist()]
    return [int(v) for v in np.asarray(t).reshape(-1).tolist()]


def _axis(axis: int, ndim: int) -> int:
    return axis + ndim if axis < 0 else axis


def _flatten(x: list, a: dict, o: int) -> list:
    t = x[0]
    axis = _axis(a.get("axis", 1), t.dim())
    return [t.reshape(math.prod(t.shape[:axis]), -1)]


def _reshape(x: list, a: dict, o: int) -> list:
    t, shape = x[0], _ints(x[1])
    if not a.get("allowzero", 0):
        shape = [t.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [t.reshape(shape)]


def _transpose(x: list, a: dict, o: int) -> list:
    perm = a.get("perm", list(reversed(range(x[0].dim()))))
    return [x[0].permute(*perm)]


def _axes(x: list, a: dict, o: int, first_version: int) -> list[int] | None:
    if o >= first_version:
        return _ints(x[1]) if len(x) > 1 and x[1] is not None else None
    return a.get("axes")


def _squeeze(x: list, a: dict, o: int) -> list:
    axes = _axes(x, a, o, 13)
    t = x[0]
    if axes is None:
        return [t.squeeze()]
    return [t.squeeze(tuple(_axis(i, t.dim()) for i in axes))]


def _unsqueeze(x: list, a: dict, o: int) -> list:
    t, axes = x[0], _axes(x, a, o, 13)
    out_dim = t.dim() + len(axes)
    for ax in sorted(_axis(i, out_dim) for i in axes):
        t = t.unsqueeze(ax)
    return [t]


def _reduce(fn: str) -> Op:
    def run(x: list, a: dict, o: int) -> list:
        t = x[0]
        axes = _axes(x, a, o, 18)
        keep = bool(a.get("keepdims", 1))
        if axes is None or not axes:
            if a.get("noop_with_empty_axes", 0):
                return [t]
            axes = list(range(t.dim()))
        dims = tuple(_axis(i, t.dim()) for i in axes)
        if fn == "mean":
            return [t.mean(dim=dims, keepdim=keep)]
        if fn == "sum":
            return [t.sum(dim=dims, keepdim=keep)]
        return [t.amax(dim=dims, keepdim=keep)]

    return run


def _reduce_sum(x: list, a: dict, o: int) -> list:
    return _reduce("sum")(x, a, o if o < 13 else 18)  # ReduceSum took axes as an input at 13


def _shape(x: list, a: dict, o: int) -> list:
    s = list(x[0].shape)
    start, end = a.get("start", 0), a.get("end", len(s))
    return [torch.tensor(s[start:end], dtype=torch.int64)]


def _gather(x: list, a: dict, o: int) -> list:
    t, idx = x[0], x[1].long()
    axis = _axis(a.get("axis", 0), t.dim())
    idx = torch.where(idx < 0, idx + t.shape[axis], idx)
    out = torch.index_select(t, axis, idx.reshape(-1))
    return [out.reshape(t.shape[:axis] + idx.shape + t.shape[axis + 1 :])]


def _concat(x: list, a: dict, o: int) -> list:
    return [torch.cat([t for t in x if t is not None], dim=a["axis"])]


def _slice(x: list, a: dict, o: int) -> list:
    t = x[0]
    if o >= 10:
        starts, ends = _ints(x[1]), _ints(x[2])
        axes = _ints(x[3]) if len(x) > 3 and x[3] is not None else list(range(len(starts)))
        steps = _ints(x[4]) if len(x) > 4 and x[4] is not None else [1] * len(starts)
    else:
        starts, ends = a["starts"], a["ends"]
        axes, steps = a.get("axes", list(range(len(starts)))), [1] * len(starts)
    index = [slice(None)] * t.dim()
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if st <= 0:
            raise ValueError(f"Invalid Slice step={st}: only positive steps are supported")
        n = t.shape[_axis(ax, t.dim())]
        s = max(0, min(n, s + n if s < 0 else s))
        e = max(0, min(n, e + n if e < 0 else e))
        index[_axis(ax, t.dim())] = slice(s, e, st)
    return [t[tuple(index)]]


def _split(x: list, a: dict, o: int) -> list:
    t = x[0]
    axis = _axis(a.get("axis", 0), t.dim())
    sizes = _ints(x[1]) if len(x) > 1 and x[1] is not None else a.get("split")
    if sizes is None:
        n = a.get("num_outputs") or a["_n_outputs"]
        sizes = [math.ceil(t.shape[axis] / n)] * (n - 1)
        sizes.append(t.shape[axis] - sum(sizes))
    return list(torch.split(t, list(sizes), dim=axis))


def _cast(x: list, a: dict, o: int) -> list:
    to = a["to"]
    if to not in _TORCH_DTYPES:
        raise ValueError(f"Invalid Cast to={to}: element type not supported")
    return [x[0].to(_TORCH_DTYPES[to])]


def _constant(x: list, a: dict, o: int) -> list:
    for key in ("value", "value_float", "value_floats", "value_int", "value_ints"):
        if key in a:
            return [torch.as_tensor(np.array(a[key]))]
    raise ValueError(f"Invalid Constant with attributes {sorted(a)}: no supported value")


def _constant_of_shape(x: list, a: dict, o: int) -> list:
    value = torch.as_tensor(np.array(a.get("value", np.zeros(1, np.float32)))).reshape(-1)
    return [torch.full(_ints(x[0]), value[0].item(), dtype=value.dtype)]


def _expand(x: list, a: dict, o: int) -> list:
    shape = _ints(x[1])
    t = x[0]
    nd = max(t.dim(), len(shape))
    shape = [1] * (nd - len(shape)) + shape
    have = [1] * (nd - t.dim()) + list(t.shape)
    return [t.reshape(have).expand([max(s, h) if s != 1 else h for s, h in zip(shape, have)])]


def _range(x: list, a: dict, o: int) -> list:
    return [torch.arange(x[0].item(), x[1].item(), x[2].item(), dtype=x[0].dtype)]
