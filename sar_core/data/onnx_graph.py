"""An ONNX graph read as Python values: nodes, their attributes, and what names a weight.

``Node`` is one graph node with its attributes decoded (tensors as numpy arrays);
``QuantizedWeight`` says where a quantized parameter's codes live in the file. ``_WEIGHT_ROLES``
and ``_module_path`` give an exporter-named initializer (``onnx::Conv_36``) a readable parameter
name (``stem.weight``): the exporter's scope of the node that reads it, plus the input's role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sar_core.data.onnx_ops_quant import INT_RANGES

_WEIGHT_ROLES = {
    "Conv": ("input", "weight", "bias"),
    "Gemm": ("input", "weight", "bias"),
    "MatMul": ("input", "weight"),
    "BatchNormalization": ("input", "weight", "bias", "running_mean", "running_var"),
    "LayerNormalization": ("input", "weight", "bias"),
    "Add": ("input", "bias"),
    "Mul": ("input", "scale"),
    "QuantizeLinear": ("input", "scale", "zero_point"),
    "DequantizeLinear": ("input", "scale", "zero_point"),
}
# BatchNorm statistics (frozen) and quantization parameters: buffers, never trained or hit
_NOT_TRAINED = {"running_mean", "running_var", "zero_point"}
_DOTTED = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+")


@dataclass(frozen=True)
class Node:
    """One graph node: operator, input / output value names, attributes (numpy for tensors)."""

    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict
    name: str


@dataclass(frozen=True)
class QuantizedWeight:
    """Where a quantized parameter's codes live in the ONNX file, and how they are read."""

    initializer: str  # the integer initializer holding the stored codes
    scale: str | None  # initializer names of the scale (None: not found) and the zero point
    zero_point: str | None
    elem_type: int  # ONNX element type of the codes (3 int8, 2 uint8, 6 int32)
    axis: int | None  # per-channel axis of the scale; None: one scale per tensor


def _attrs(node, inits: dict) -> dict:
    from onnx import helper, numpy_helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if hasattr(v, "dims") and hasattr(v, "data_type"):  # a TensorProto
            v = numpy_helper.to_array(v)
        elif isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode("utf-8", "replace") for s in v]
        out[a.name] = v
    if node.op_type == "QuantizeLinear":
        zp = inits.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        out["_range"] = INT_RANGES.get(zp.data_type if zp is not None else 2, (0, 255))
    if node.op_type == "Split":
        out["_n_outputs"] = len(node.output)
    return out


def _module_path(node_name: str) -> str:
    """'/layer1/conv1/Conv' -> 'layer1.conv1' (the exporter's scope), else 'graph'."""
    parts = [re.sub(r"\W", "_", s) for s in node_name.strip("/").split("/")[:-1] if s]
    return ".".join(parts) or "graph"
