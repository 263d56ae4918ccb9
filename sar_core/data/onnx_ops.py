"""The ONNX operators SAR Lab runs, each as a torch function: ``OPS[op_type](inputs, attrs, opset)``.

``inputs`` is the node's input list (``None`` where an optional input is absent), ``attrs`` its
attributes as Python values (tensors as numpy arrays), ``opset`` the model's default-domain
opset. Every function returns the list of the node's outputs. The semantics follow the ONNX
operator specification (https://onnx.ai/onnx/operators/); onnxruntime is the reference the tests
compare against. Shape arithmetic (Shape / Gather / Concat / Reshape ...) runs on int64 tensors.

Quantization: ``QuantizeLinear`` gives the integer codes as a float tensor (round half to even,
saturate to the zero point's type); ``DequantizeLinear`` maps codes back, (q - zero_point) * scale.
While gradients are tracked, the rounding passes them straight through (straight-through
estimator), so a quantized model can be fine-tuned; the values computed are the same either way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Op = Callable[[list, dict, int], list]

# integer range of the codes a QuantizeLinear / DequantizeLinear of each ONNX element type holds
INT_RANGES = {
    2: (0, 255),
    3: (-128, 127),
    4: (0, 65535),
    5: (-32768, 32767),
    6: (-(2**31), 2**31 - 1),
}
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


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> Op:
    return lambda x, a, o: [fn(x[0], x[1])]


def _unary(fn: Callable[[Tensor], Tensor]) -> Op:
    return lambda x, a, o: [fn(x[0])]


def _div(a: Tensor, b: Tensor) -> Tensor:
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")  # ONNX integer division truncates
    return a / b


def _gemm(x: list, a: dict, o: int) -> list:
    A = x[0].transpose(0, 1) if a.get("transA", 0) else x[0]
    B = x[1].transpose(0, 1) if a.get("transB", 0) else x[1]
    alpha, beta = a.get("alpha", 1.0), a.get("beta", 1.0)
    C = x[2] if len(x) > 2 else None
    if C is not None and alpha == 1.0 and beta == 1.0:
        return [torch.addmm(C, A, B)]  # what nn.Linear computes: the same rounding
    y = alpha * (A @ B)
    return [y if C is None else y + beta * C]


def _pads(a: dict, nd: int) -> list[int]:
    """ONNX pads (begin..., end...) as F.pad's (last dim first) list, after auto_pad checks."""
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise ValueError(
            f"Invalid auto_pad={a['auto_pad']!r}: only NOTSET and VALID are supported; export "
            "the model with explicit pads"
        )
    p = list(a.get("pads", [0] * (2 * nd)))
    out: list[int] = []
    for i in reversed(range(nd)):
        out += [p[i], p[i + nd]]
    return out


def _conv(x: list, a: dict, o: int) -> list:
    w = x[1]
    nd = w.dim() - 2
    fn = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}.get(nd)
    if fn is None:
        raise ValueError(f"Invalid Conv with a {w.dim()}-D weight: 3-D to 5-D weights only")
    pads = _pads(a, nd)
    inp, padding = x[0], 0
    if all(pads[2 * i] == pads[2 * i + 1] for i in range(nd)):  # symmetric: as nn.ConvNd pads
        padding = [pads[2 * (nd - 1 - i)] for i in range(nd)]
    else:
        inp = F.pad(inp, pads)
    bias = x[2] if len(x) > 2 else None
    return [
        fn(
            inp,
            w,
            bias,
            stride=a.get("strides", [1] * nd),
            padding=padding,
            dilation=a.get("dilations", [1] * nd),
            groups=a.get("group", 1),
        )
    ]


def _pool(kind: str) -> Op:
    def run(x: list, a: dict, o: int) -> list:
        k = a["kernel_shape"]
        nd = len(k)
        stride = a.get("strides", [1] * nd)
        pads = _pads(a, nd)
        sym = all(pads[2 * i] == pads[2 * i + 1] for i in range(nd)) and all(
            pads[2 * i] * 2 <= k[nd - 1 - i] for i in range(nd)
        )
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "max":
            fn = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
            if sym:
                pad = [pads[2 * (nd - 1 - i)] for i in range(nd)]
                return [fn(x[0], k, stride, pad, a.get("dilations", [1] * nd), ceil_mode=ceil)]
            inp = F.pad(x[0], pads, value=-math.inf)
            return [fn(inp, k, stride, 0, a.get("dilations", [1] * nd), ceil_mode=ceil)]
        fn = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[nd]
        include = bool(a.get("count_include_pad", 0))
        if not sym:
            raise ValueError("Invalid AveragePool with asymmetric pads: not supported")
        pad = [pads[2 * (nd - 1 - i)] for i in range(nd)]
        return [fn(x[0], k, stride, pad, ceil_mode=ceil, count_include_pad=include)]

    return run


def _global_avg(x: list, a: dict, o: int) -> list:
    return [x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True)]


def _batchnorm(x: list, a: dict, o: int) -> list:
    # inference semantics always: the imported running statistics normalise (frozen BatchNorm)
    return [F.batch_norm(x[0], x[3], x[4], x[1], x[2], training=False, eps=a.get("epsilon", 1e-5))]


def _layernorm(x: list, a: dict, o: int) -> list:
    axis = _axis(a.get("axis", -1), x[0].dim())
    shape = tuple(x[0].shape[axis:])
    bias = x[2] if len(x) > 2 else None
    return [F.layer_norm(x[0], shape, x[1].expand(shape), bias, eps=a.get("epsilon", 1e-5))]


def _softmax(kind: str) -> Op:
    def run(x: list, a: dict, o: int) -> list:
        fn = torch.softmax if kind == "softmax" else torch.log_softmax
        t = x[0]
        if o >= 13:
            return [fn(t, dim=a.get("axis", -1))]
        axis = _axis(a.get("axis", 1), t.dim())  # opset < 13: coerced to 2-D at axis
        flat = t.reshape(math.prod(t.shape[:axis]), -1)
        return [fn(flat, dim=1).reshape(t.shape)]

    return run


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


def _gelu(x: list, a: dict, o: int) -> list:
    return [F.gelu(x[0], approximate=a.get("approximate", "none"))]


def _clip(x: list, a: dict, o: int) -> list:
    lo = x[1] if len(x) > 1 and x[1] is not None else a.get("min")
    hi = x[2] if len(x) > 2 and x[2] is not None else a.get("max")
    return [torch.clamp(x[0], lo, hi)]


def _quant_params(x: list, a: dict, t: Tensor) -> tuple[Tensor, Tensor]:
    """(scale, zero point) shaped to broadcast along the node's axis of ``t``."""
    scale = x[1].to(torch.float32)
    zp = x[2].to(torch.float32) if len(x) > 2 and x[2] is not None else torch.zeros(())
    if scale.dim() == 1 and scale.numel() > 1:
        axis = _axis(a.get("axis", 1), t.dim())
        shape = [1] * t.dim()
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape) if zp.dim() else zp
    return scale, zp


def _quantize(x: list, a: dict, o: int) -> list:
    t = x[0]
    scale, zp = _quant_params(x, a, t)
    lo, hi = a["_range"]
    y = t / scale
    q = torch.clamp(torch.round(y) + zp, lo, hi)  # torch.round: half to even, as ONNX
    if torch.is_grad_enabled() and t.requires_grad:
        q = y + zp + (q - y - zp).detach()  # straight-through: d q / d x = 1 / scale
    return [q]


def _dequantize(x: list, a: dict, o: int) -> list:
    t = x[0].to(torch.float32)
    scale, zp = _quant_params(x, a, t)
    return [(t - zp) * scale]


def _dynamic_quantize(x: list, a: dict, o: int) -> list:
    """uint8 codes of x with a scale and zero point from its own range (ONNX's formulas)."""
    t = x[0]
    lo = torch.clamp(t.detach().min(), max=0.0)
    hi = torch.clamp(t.detach().max(), min=0.0)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero input
    zp = torch.clamp(torch.round(-lo / scale), 0, 255)
    y = t / scale
    q = torch.clamp(torch.round(y) + zp, 0, 255)
    if torch.is_grad_enabled() and t.requires_grad:
        q = y + zp + (q - y - zp).detach()  # straight-through
    return [q, scale, zp]


def _matmul_integer(x: list, a: dict, o: int) -> list:
    """(A - a_zero_point) @ (B - b_zero_point); the integer products are exact in float32 for
    int8 / uint8 codes up to 2^24 / 2^15 ~ 512 terms, and the graph's Cast/Mul follow."""
    A, B = x[0].to(torch.float32), x[1].to(torch.float32)
    if len(x) > 2 and x[2] is not None:
        A = A - x[2].to(torch.float32)
    if len(x) > 3 and x[3] is not None:
        B = B - x[3].to(torch.float32)
    return [A @ B]


OPS: dict[str, Op] = {
    "Add": _binary(torch.add),
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": _binary(_div),
    "Pow": _binary(torch.pow),
    "Mod": lambda x, a, o: [
        torch.fmod(x[0], x[1]) if a.get("fmod", 0) else torch.remainder(x[0], x[1])
    ],
    "Equal": _binary(torch.eq),
    "Where": lambda x, a, o: [torch.where(x[0].bool(), x[1], x[2])],
    "MatMul": _binary(torch.matmul),
    "Gemm": _gemm,
    "Conv": _conv,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "Relu": _unary(torch.relu),
    "LeakyRelu": lambda x, a, o: [F.leaky_relu(x[0], a.get("alpha", 0.01))],
    "Gelu": _gelu,
    "Sigmoid": _unary(torch.sigmoid),
    "Tanh": _unary(torch.tanh),
    "Erf": _unary(torch.erf),
    "Sqrt": _unary(torch.sqrt),
    "Exp": _unary(torch.exp),
    "Neg": _unary(torch.neg),
    "Clip": _clip,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": _global_avg,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Transpose": _transpose,
    "Concat": _concat,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Softmax": _softmax("softmax"),
    "LogSoftmax": _softmax("log_softmax"),
    "ReduceMean": _reduce("mean"),
    "ReduceSum": _reduce_sum,
    "ReduceMax": _reduce("max"),
    "Dropout": lambda x, a, o: [x[0]],  # inference: identity (a mask output is never read)
    "Identity": lambda x, a, o: [x[0]],
    "Shape": _shape,
    "Gather": _gather,
    "Slice": _slice,
    "Split": _split,
    "Cast": _cast,
    "Constant": _constant,
    "ConstantOfShape": _constant_of_shape,
    "Expand": _expand,
    "Range": _range,
    "QuantizeLinear": _quantize,
    "DequantizeLinear": _dequantize,
    "DynamicQuantizeLinear": _dynamic_quantize,
    "MatMulInteger": _matmul_integer,
}
