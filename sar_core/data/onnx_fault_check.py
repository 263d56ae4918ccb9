"""Whether a fault campaign on a quantized ONNX model flips exactly its stored int8 codes.

``check_fault_model`` raises ``ValueError`` unless SAR Lab's int8 deployment of every targeted
parameter is the model's own codes (int8, zero point 0, largest |code| 127 per tensor or
channel): then ``FaultModel(format="int8")`` flips the stored bits and the model applies its real
scales (``sar_core.data.onnx_import``).
"""

from __future__ import annotations

import numpy as np
from torch import nn

from sar_core.data.onnx_graph import QuantizedWeight


def check_fault_model(model: nn.Module, fm) -> None:
    """For a quantized ONNX model: ValueError unless ``fm`` flips exactly its stored int8 codes."""
    quantized = getattr(model, "quantized", None)
    if not quantized or fm.target != "weights":
        return
    from sar_core.faults.model import eligible_parameters, parameter_shapes

    if fm.format != "int8":
        raise ValueError(
            f"Invalid format={fm.format!r} for a quantized model: its weights are stored as int8 "
            "codes; use format='int8' (the faults then hit the stored codes)"
        )
    if model.holds_float_weights:
        raise ValueError("Invalid model: float_weights() copies are for training, not campaigns")
    params, tensors = dict(model.named_parameters()), model._tensors()
    for name in eligible_parameters(parameter_shapes(model), fm):
        q = quantized.get(name)
        zp = tensors[q.zero_point].cpu().numpy() if q and q.zero_point else None
        why = _inexact(params[name].detach().cpu().numpy(), q, zp, fm.granularity)
        if why:
            raise ValueError(
                f"Invalid fault model for parameter {name!r}: {why}; select other layers "
                "(layers=...) or leave biases out"
            )


def _inexact(
    p: np.ndarray, q: QuantizedWeight | None, zp: np.ndarray | None, granularity: str
) -> str | None:
    """Why SAR Lab's int8 deployment of p would not be the stored codes (None: it is)."""
    if q is None:
        return "it is a float tensor in a quantized model (int8 faults would simulate its codes)"
    if q.elem_type != 3:
        return f"its codes are ONNX type {q.elem_type}, not int8"
    if zp is not None and np.any(zp != 0):
        return "its zero point is not 0"
    top = np.abs(p).max() if granularity == "tensor" else np.abs(p.reshape(len(p), -1)).max(1)
    if np.any(top != 127) or np.any(p < -127):
        return (
            f"its largest |code| is not 127 in every {granularity} (SAR Lab's symmetric int8 "
            "scale would differ from the stored one)"
        )
    return None
