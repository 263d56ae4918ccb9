"""Write an imported model's (fine-tuned) weights back into its own ONNX graph.

The file that comes out is the file that came in with new initializer values: the same nodes,
operators, attributes, inputs and outputs, and the same initializer names, shapes and element
types, so the deployed model's inference cost is unchanged. Only parameters are written
(BatchNorm running statistics and shape constants are buffers and stay as they were).

Quantized (QDQ) weights are quantized again after training:
- symmetric int8 (zero point 0) whose scale no other node reads: a new scale max|w| / 127 per
  tensor, or per channel along the DequantizeLinear's axis (as onnxruntime's quantizer computes
  it), and codes clip(round(w / s), -127, 127). An int32 bias whose scale is
  input scale x weight scale (what a fused integer kernel assumes) gets the new product scale;
- any other quantized tensor (uint8, a zero point, a shared scale) keeps its scale and zero point
  and gets new codes, saturated to the type's range (the count is reported).
"""

from __future__ import annotations

import numpy as np

from sar_core.data.onnx_ops_quant import INT_RANGES

_NP_TYPES = {2: np.uint8, 3: np.int8, 6: np.int32}


def export_onnx(model, raw: bytes) -> tuple[bytes, dict]:
    """(new .onnx bytes, report) for ``model`` (an ``OnnxModel`` imported from ``raw``)."""
    from onnx import numpy_helper

    from sar_core.data.onnx_import import OnnxModel
    from sar_core.data.onnx_read import parse_onnx

    proto = parse_onnx(raw, max_bytes=max(len(raw), 1))
    inits = {t.name: t for t in proto.graph.initializer}
    if isinstance(model, OnnxModel):
        source = model.float_weights()  # quantized parameters as dequantized floats
        params = dict(source.named_parameters())
    else:  # as_sequential's chain: the imported parameter names, float weights only
        source = OnnxModel(proto)
        if source.quantized:
            raise ValueError("Invalid model: a quantized graph is written from its OnnxModel")
        params = dict(model.named_parameters())
    arrays = {n: numpy_helper.to_array(t) for n, t in inits.items()}
    new: dict[str, np.ndarray] = {}
    for init, pname in source.param_of.items():
        if pname not in params or pname in source.quantized:
            continue
        w = params[pname].detach().cpu().numpy()
        new[init] = w.astype(arrays[init].dtype).reshape(arrays[init].shape)
    report = {"written": sorted(new), "requantized": [], "saturated_codes": 0}
    scale_uses = _uses(proto)
    bias_of = _bias_links(source)
    weights = {p: q for p, q in source.quantized.items() if q.elem_type != 6}
    biases = {p: q for p, q in source.quantized.items() if q.elem_type == 6}
    new_scale: dict[str, np.ndarray] = {}
    for pname, q in weights.items():
        w = params[pname].detach().cpu().numpy().astype(np.float64)
        zp = arrays[q.zero_point] if q.zero_point else np.zeros((), np.int8)
        own = scale_uses[q.scale] == 1 and q.elem_type == 3 and not np.any(zp != 0)
        if own:
            s = _symmetric_scale(w, q.axis, arrays[q.scale])
            new[q.scale] = s.astype(arrays[q.scale].dtype)
            new_scale[q.initializer] = s
        else:
            s = arrays[q.scale].astype(np.float32)
        codes, sat = _codes(w, s, zp, q.axis, q.elem_type, symmetric=own)
        new[q.initializer] = codes.reshape(arrays[q.initializer].shape)
        report["saturated_codes"] += sat
        report["requantized"].append({"parameter": pname, "codes": q.initializer, "new_scale": own})
    for pname, q in biases.items():
        b = params[pname].detach().cpu().numpy().astype(np.float64)
        s = arrays[q.scale].astype(np.float32)
        link = bias_of.get(q.initializer)
        if link is not None and link[1] in new_scale and scale_uses[q.scale] == 1:
            x_s, w_init = arrays[link[0]].astype(np.float32), link[1]
            old_w = _scale_of(source, w_init, arrays)
            if np.allclose(s, x_s * old_w, rtol=1e-5, atol=0):
                s = (x_s * new_scale[w_init]).astype(np.float32).reshape(s.shape)
                new[q.scale] = s
        zp = arrays[q.zero_point] if q.zero_point else np.zeros((), np.int32)
        codes, sat = _codes(b, s, zp, q.axis, 6, symmetric=False)
        new[q.initializer] = codes.reshape(arrays[q.initializer].shape)
        report["saturated_codes"] += sat
        report["requantized"].append({"parameter": pname, "codes": q.initializer})
    for name, arr in new.items():
        old = inits[name]
        if tuple(arr.shape) != tuple(old.dims):
            raise ValueError(
                f"Invalid model: parameter for initializer {name!r} has shape {arr.shape}, the "
                f"graph stores {tuple(old.dims)}"
            )
        old.CopyFrom(numpy_helper.from_array(arr.copy(order="C"), name))  # keeps 0-D
    return proto.SerializeToString(), report


def _uses(proto) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in proto.graph.node:
        for i in n.input:
            out[i] = out.get(i, 0) + 1
    return out


def _scale_of(model, codes_init: str, arrays: dict) -> np.ndarray:
    q = model.quantized[model.param_of[codes_init]]
    return arrays[q.scale].astype(np.float32)


def _bias_links(model) -> dict[str, tuple[str, str]]:
    """int32 bias codes -> (input scale initializer, weight codes initializer) of its node."""
    dq = {n.outputs[0]: n for n in model.nodes if n.op == "DequantizeLinear"}
    out = {}
    for n in model.nodes:
        if n.op not in ("Conv", "Gemm") or len(n.inputs) < 3:
            continue
        x, w, b = (dq.get(i) for i in n.inputs[:3])
        if x is None or w is None or b is None:
            continue
        out[b.inputs[0]] = (x.inputs[1], w.inputs[0])
    return out


def _symmetric_scale(w: np.ndarray, axis: int | None, old: np.ndarray) -> np.ndarray:
    """max|w| / 127 per tensor, or per channel along ``axis``; shaped like the old scale."""
    if axis is None or old.size == 1:
        m = np.abs(w).max() if w.size else 0.0
    else:
        m = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
    s = np.asarray(m / 127.0, dtype=np.float32)
    s = np.where(s > 0, s, np.float32(1.0)).astype(np.float32)  # an all-zero tensor: any scale
    return s.reshape(old.shape)


def _codes(w, s, zp, axis, elem_type: int, *, symmetric: bool) -> tuple[np.ndarray, int]:
    """Codes round(w / s) + zero point, saturated to the type's range; (codes, saturated)."""
    lo, hi = INT_RANGES[elem_type]
    if symmetric:
        lo = -hi  # symmetric int8: -128 is left unused, as onnxruntime's quantizer does
    s = np.asarray(s, dtype=np.float64)
    z = np.asarray(zp, dtype=np.float64)
    if axis is not None and s.size > 1:
        shape = [1] * w.ndim
        shape[axis] = -1
        s, z = s.reshape(shape), (z.reshape(shape) if z.size > 1 else z.reshape(()))
    q = np.rint(w / s) + z
    sat = int(np.count_nonzero((q < lo) | (q > hi)))
    return np.clip(q, lo, hi).astype(_NP_TYPES[elem_type]), sat
