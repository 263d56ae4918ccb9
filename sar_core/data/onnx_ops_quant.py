"""ONNX quantization operators as torch functions: (De)QuantizeLinear, MatMulInteger.

Part of ``sar_core.data.onnx_ops`` (the ``OPS`` table; the calling convention is documented
there). ``QuantizeLinear`` gives the integer codes as a float tensor (round half to even,
saturate to the zero point's type); ``DequantizeLinear`` maps codes back, (q - zero_point) * scale.
While gradients are tracked, the rounding passes them straight through (straight-through
estimator), so a quantized model can be fine-tuned; the values computed are the same either way.
"""

from __future__ import annotations

import torch

from sar_core.data.onnx_ops_tensor import Tensor, _axis

# integer range of the codes a QuantizeLinear / DequantizeLinear of each ONNX element type holds
INT_RANGES = {
    2: (0, 255),
    3: (-128, 127),
    4: (0, 65535),
    5: (-32768, 32767),
    6: (-(2**31), 2**31 - 1),
}


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
