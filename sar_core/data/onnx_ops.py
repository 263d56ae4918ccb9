"""The ONNX operators SAR Lab runs, each as a torch function: ``OPS[op_type](inputs, attrs, opset)``.

``inputs`` is the node's input list (``None`` where an optional input is absent), ``attrs`` its
attributes as Python values (tensors as numpy arrays), ``opset`` the model's default-domain
opset. Every function returns the list of the node's outputs. The semantics follow the ONNX
operator specification (https://onnx.ai/onnx/operators/); onnxruntime is the reference the tests
compare against. Shape arithmetic (Shape / Gather / Concat / Reshape ...) runs on int64 tensors.

The operators live by kind: ``onnx_ops_nn`` (layers: Gemm, Conv, pooling, normalization,
softmax), ``onnx_ops_tensor`` (shapes, indexing, reductions, casts, constants) and
``onnx_ops_quant`` (QuantizeLinear, DequantizeLinear, MatMulInteger and their integer ranges);
elementwise arithmetic and activations are defined with the table below.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from sar_core.data.onnx_ops_nn import (
    _batchnorm,
    _clip,
    _conv,
    _gelu,
    _gemm,
    _global_avg,
    _layernorm,
    _pool,
    _softmax,
)
from sar_core.data.onnx_ops_quant import _dequantize, _dynamic_quantize, _matmul_integer, _quantize
from sar_core.data.onnx_ops_tensor import (
    Op,
    Tensor,
    _cast,
    _concat,
    _constant,
    _constant_of_shape,
    _expand,
    _flatten,
    _gather,
    _range,
    _reduce,
    _reduce_sum,
    _reshape,
    _shape,
    _slice,
    _split,
    _squeeze,
    _transpose,
    _unsqueeze,
)


def _binary(fn: Callable[[Tensor, Tensor], Tensor]) -> Op:
    return lambda x, a, o: [fn(x[0], x[1])]


def _unary(fn: Callable[[Tensor], Tensor]) -> Op:
    return lambda x, a, o: [fn(x[0])]


def _div(a: Tensor, b: Tensor) -> Tensor:
    if not a.is_floating_point() and not b.is_floating_point():
        return torch.div(a, b, rounding_mode="trunc")  # ONNX integer division truncates
    return a / b


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
