"""ONNX neural-network layers as torch functions: Gemm, Conv, pooling, norms, softmax, GELU.

Part of ``sar_core.data.onnx_ops`` (the ``OPS`` table; the calling convention is documented
there).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from sar_core.data.onnx_ops_tensor import Op, _axis


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


def _gelu(x: list, a: dict, o: int) -> list:
    return [F.gelu(x[0], approximate=a.get("approximate", "none"))]


def _clip(x: list, a: dict, o: int) -> list:
    lo = x[1] if len(x) > 1 and x[1] is not None else a.get("min")
    hi = x[2] if len(x) > 2 and x[2] is not None else a.get("max")
    return [torch.clamp(x[0], lo, hi)]
