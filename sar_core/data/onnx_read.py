"""Reading an ONNX file safely: size cap, protobuf parse, and the checks made before conversion.

Nothing here runs model code: ``onnx.load_model_from_string`` parses protobuf and never loads
external data; a tensor that points to an external file (a path on the server) is refused.
"""

from __future__ import annotations

import math
from pathlib import Path

from sar_core import limits
from sar_core.data.onnx_ops import OPS
from sar_core.validate import read_capped

SUPPORTED_OPS = tuple(sorted(OPS))
_FLOAT_TYPES = {1, 10, 11, 16}  # float, float16, double, bfloat16


def read_model_bytes(source: str | Path | bytes, max_bytes: int | None) -> bytes:
    """The file's bytes, size-capped (None: limits.MAX_MODEL_BYTES, read at call time)."""
    max_bytes = limits.MAX_MODEL_BYTES if max_bytes is None else max_bytes
    return read_capped(
        source, max_bytes, path_label="model", hint=" (sar_core.limits.MAX_MODEL_BYTES)"
    )


def parse_onnx(source: str | Path | bytes, *, max_bytes: int | None = None):
    """The checked ``onnx.ModelProto`` of a file or bytes (ValueError when it is not usable)."""
    import onnx
    from google.protobuf.message import DecodeError

    data = read_model_bytes(source, max_bytes)
    try:
        proto = onnx.load_model_from_string(data)  # never loads external data
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ValueError(
            f"Invalid model: the file is not an ONNX protobuf (truncated or another format?): "
            f"{type(e).__name__}"
        ) from None
    g = proto.graph
    if not g.node or not g.output:
        raise ValueError(
            "Invalid model: the file holds no ONNX graph (no nodes or no outputs); is it really "
            "an .onnx model?"
        )
    for t in list(g.initializer) + _attribute_tensors(g):
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
            raise ValueError(
                f"Invalid model: tensor {t.name!r} points to external data "
                f"({', '.join(f'{e.key}={e.value}' for e in t.external_data)[:120]}); SAR Lab "
                "reads only self-contained .onnx files (save with save_as_external_data=False)"
            )
    if len(g.sparse_initializer):
        raise ValueError("Invalid model: sparse initializers are not supported")
    if len(g.node) > limits.MAX_ONNX_NODES:
        raise ValueError(
            f"Invalid model nodes={len(g.node)}: the cap is {limits.MAX_ONNX_NODES} nodes"
        )
    for n in g.node:
        if n.domain not in ("", "ai.onnx") or n.op_type not in OPS:
            op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
            raise ValueError(
                f"Invalid model: operator {op!r} (node {n.name!r}) is not supported; supported "
                f"operators: {', '.join(SUPPORTED_OPS)}"
            )
    return proto


def _attribute_tensors(g) -> list:
    return [a.t for n in g.node for a in n.attribute if a.HasField("t")]


def opset_of(proto) -> int:
    """The model's default-domain (ai.onnx) opset version."""
    for o in proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


def graph_input(g, inits: dict) -> tuple[str, tuple[int, ...]]:
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise ValueError(
            f"Invalid model: {len(inputs)} graph inputs ({', '.join(i.name for i in inputs)}); "
            "SAR Lab models take exactly one input tensor"
        )
    inp = inputs[0]
    tt = inp.type.tensor_type
    if tt.elem_type not in _FLOAT_TYPES:
        raise ValueError(
            f"Invalid model input {inp.name!r}: element type {tt.elem_type}; a float tensor is needed"
        )
    dims = list(tt.shape.dim)
    if len(dims) < 2:
        raise ValueError(
            f"Invalid model input {inp.name!r}: rank {len(dims)}; expected (batch, features...)"
        )
    shape = []
    for k, d in enumerate(dims[1:], start=1):
        if not d.HasField("dim_value") or d.dim_value < 1:
            raise ValueError(
                f"Invalid model input {inp.name!r}: dimension {k} is not fixed "
                f"({d.dim_param or '?'}); only the batch dimension may vary"
            )
        shape.append(int(d.dim_value))
    if math.prod(shape) > limits.MAX_MODEL_INPUT:
        raise ValueError(
            f"Invalid model input {inp.name!r}: {math.prod(shape)} values per row; the cap is "
            f"{limits.MAX_MODEL_INPUT}"
        )
    return inp.name, tuple(shape)
