"""ONNX models as torch modules whose weights are ordinary named parameters.

``load_onnx(path_or_bytes)`` reads and checks the file (``sar_core.data.onnx_read``: protobuf,
so reading it runs no code; size and node caps, no external-data tensors, one float input with a
fixed per-row shape, every operator in ``sar_core.data.onnx_ops.OPS``), refuses NaN / Inf
weights, and returns an
``OnnxModel``: an ``nn.Module`` that runs the graph node by node with torch. Every analysis
(Injector, Monte Carlo, landscape, sharpness, attack, training) sees its float weights as
parameters, named after the ONNX initializers (``fc.weight``) or, for exporter-generated names
(``onnx::Conv_36``), after the node that reads them (``stem.weight``). Like SAR Lab's own models it
takes flattened rows (N, D) and reshapes them to the graph's input shape.

Quantized models (QDQ: an int8 initializer read through ``DequantizeLinear``): the parameter
holds the stored integer codes, q - zero_point, as float32, and the graph multiplies it by the
model's own scale (a buffer) where the DequantizeLinear stood. With symmetric int8 weights whose
largest |code| is 127 (what onnxruntime's quantizers write) SAR Lab's int8 deployment of such a
parameter has scale exactly 1, so ``FaultModel(format="int8")`` flips exactly the stored codes and
the model applies its real scales: ``check_fault_model`` (``sar_core.data.onnx_fault_check``)
verifies this before a campaign.
int32 biases (read through DequantizeLinear) become float parameters holding their dequantized
value. ``OnnxModel.float_weights()`` gives a copy whose quantized parameters hold dequantized
float weights (what fine-tuning trains; ``sar_core.data.onnx_export`` re-quantizes them).
onnxruntime's ``quantize_dynamic`` output is read the same way: int8 weights feeding
``MatMulInteger`` hold their codes, and the graph's own ``Mul`` applies the scales.
``as_sequential`` (``sar_core.data.onnx_sequential``) turns a plain Linear / activation chain
into an ``nn.Sequential``. Nodes and weight naming: ``sar_core.data.onnx_graph``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sar_core import limits
from sar_core.data.onnx_graph import (
    _DOTTED,
    _NOT_TRAINED,
    _WEIGHT_ROLES,
    Node,
    QuantizedWeight,
    _attrs,
    _module_path,
)
from sar_core.data.onnx_ops import OPS
from sar_core.data.onnx_read import graph_input, opset_of, parse_onnx


class OnnxModel(nn.Module):
    """An ONNX graph run with torch; float weights are named parameters (see the module doc)."""

    def __init__(self, proto) -> None:
        super().__init__()
        from onnx import numpy_helper

        g = proto.graph
        self.opset = opset_of(proto)
        inits = {t.name: t for t in g.initializer}
        self.input_name, self.input_shape = graph_input(g, inits)
        self.output_name = g.output[0].name
        self.nodes = [
            Node(n.op_type, tuple(n.input), tuple(n.output), _attrs(n, inits), n.name)
            for n in g.node
        ]
        arrays = {name: numpy_helper.to_array(t) for name, t in inits.items()}
        self.quantized: dict[str, QuantizedWeight] = {}  # parameter name -> its ONNX codes
        self.param_of: dict[str, str] = {}  # initializer name -> parameter / buffer name
        self._float = False
        self._bind: list[tuple[str, str, str]] = []  # (initializer, module path, attribute)
        self._register_all(g, inits, arrays)
        self._check_topology()

    # -- construction -----------------------------------------------------------------------
    def _register_all(self, g, inits: dict, arrays: dict) -> None:
        consumers: dict[str, list[tuple]] = {}
        for n in self.nodes:
            for i, name in enumerate(n.inputs):
                consumers.setdefault(name, []).append((n, i))
        dq_codes = self._quantized_inputs(inits, arrays)
        taken: set[str] = set()
        used = [i for n in self.nodes for i in n.inputs if i in arrays]
        for name in dict.fromkeys(used):  # graph order: the order the forward pass reads them
            arr = arrays[name]
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise ValueError(f"Invalid model: initializer {name!r} holds NaN or Inf values")
            node, idx = consumers[name][0]
            while node.op == "Identity" and consumers.get(node.outputs[0]):
                node, idx = consumers[node.outputs[0]][0]
            role = self._role(name, node, idx, dq_codes, consumers)
            dotted = self._unique(self._name_for(name, node, role), taken)
            if name in dq_codes:
                node_dq, q = dq_codes[name]
                codes = arr.astype(np.float64)
                zp = arrays.get(q.zero_point) if q.zero_point else None
                if zp is not None:
                    codes = codes - _broadcast(zp.astype(np.float64), q.axis, arr.ndim)
                if q.elem_type == 6:  # int32 bias: keep its dequantized value
                    s = _broadcast(arrays[q.scale].astype(np.float64), q.axis, arr.ndim)
                    codes = codes * s
                value, trainable = torch.tensor(codes, dtype=torch.float32), True
                self.quantized[dotted] = q
            elif arr.dtype.kind == "f":
                value = torch.tensor(np.asarray(arr, dtype=np.float32))
                is_qparam = node.op in ("QuantizeLinear", "DequantizeLinear") and idx > 0
                trainable = arr.size > 1 and role not in _NOT_TRAINED and not is_qparam
            else:
                value, trainable = torch.tensor(np.array(arr)), False
            self._set(dotted, value, trainable)
            self._bind.append((name, *dotted.rpartition(".")[::2]))
            self.param_of[name] = dotted

    def _quantized_inputs(
        self, inits: dict, arrays: dict
    ) -> dict[str, tuple[Node, QuantizedWeight]]:
        """Integer initializers read by a DequantizeLinear: the node and where its codes live."""
        out = {}
        for n in self.nodes:
            if n.op != "DequantizeLinear" or n.inputs[0] not in inits:
                continue
            t = inits[n.inputs[0]]
            if t.data_type not in (2, 3, 6):
                raise ValueError(
                    f"Invalid model: DequantizeLinear {n.name!r} reads {n.inputs[0]!r} of ONNX "
                    f"element type {t.data_type}; int8, uint8 and int32 codes are supported"
                )
            scale = arrays.get(n.inputs[1])
            if scale is None:
                raise ValueError(
                    f"Invalid model: DequantizeLinear {n.name!r} has a computed scale; SAR Lab "
                    "needs the scale as an initializer"
                )
            zp = n.inputs[2] if len(n.inputs) > 2 and n.inputs[2] else None
            axis = n.attrs.get("axis", 1) if scale.size > 1 else None
            if axis is not None and axis < 0:
                axis += len(t.dims)
            out[n.inputs[0]] = (n, QuantizedWeight(n.inputs[0], n.inputs[1], zp, t.data_type, axis))
        for n in self.nodes:  # onnxruntime's quantize_dynamic: int8 weights read by MatMulInteger
            if n.op != "MatMulInteger" or n.inputs[1] not in inits:
                continue
            t = inits[n.inputs[1]]
            if t.data_type not in (2, 3):
                raise ValueError(
                    f"Invalid model: MatMulInteger {n.name!r} reads {n.inputs[1]!r} of ONNX "
                    f"element type {t.data_type}; int8 and uint8 codes are supported"
                )
            zp = n.inputs[3] if len(n.inputs) > 3 and n.inputs[3] else None
            base = n.inputs[1].removesuffix("_quantized")
            scale = f"{base}_scale" if f"{base}_scale" in arrays else None  # ORT's naming
            axis = 1 if scale and arrays[scale].size > 1 else None
            out[n.inputs[1]] = (n, QuantizedWeight(n.inputs[1], scale, zp, t.data_type, axis))
        return out

    def _role(self, name: str, node: Node, idx: int, dq_codes: dict, consumers: dict) -> str:
        while node.op == "Identity" and consumers.get(node.outputs[0]):
            node, idx = consumers[node.outputs[0]][0]  # a shared weight copied by Identity
        if name in dq_codes:  # the role is that of the DequantizeLinear's output at its reader
            dq = dq_codes[name][0]
            if dq.op == "MatMulInteger":
                return "weight"
            reader = consumers.get(dq.outputs[0], [(dq, 0)])[0]
            return _WEIGHT_ROLES.get(reader[0].op, ("c0", "c1", "c2"))[min(reader[1], 2)]
        roles = _WEIGHT_ROLES.get(node.op, ())
        return roles[idx] if idx < len(roles) else f"c{idx}"

    def _name_for(self, init: str, node: Node, role: str) -> str:
        base = init[: -len("_quantized")] if init.endswith("_quantized") else init
        if _DOTTED.fullmatch(base):
            return base
        reader = node
        if node.op == "DequantizeLinear":
            reader = next((n for n in self.nodes if node.outputs[0] in n.inputs), node)
        path = _module_path(reader.name) if reader.name else "graph"
        return f"{path}.{role}"

    def _unique(self, dotted: str, taken: set[str]) -> str:
        base, k = dotted, 1
        prefixes = {t.rsplit(".", j)[0] for t in taken for j in range(1, t.count(".") + 1)}
        while (
            dotted in taken or dotted in prefixes or any(t.startswith(dotted + ".") for t in taken)
        ):
            dotted, k = f"{base}_{k}", k + 1
        taken.add(dotted)
        return dotted

    def _set(self, dotted: str, value: torch.Tensor, trainable: bool) -> None:
        path, _, attr = dotted.rpartition(".")
        mod: nn.Module = self
        for part in path.split(".") if path else []:
            if not hasattr(mod, part):
                mod.add_module(part, nn.Module())
            mod = getattr(mod, part)
            if not isinstance(mod, nn.Module):
                raise ValueError(f"Invalid model: initializer name {dotted!r} clashes with another")
        if trainable:
            mod.register_parameter(attr, nn.Parameter(value))
        else:
            mod.register_buffer(attr, value)

    def _check_topology(self) -> None:
        known = {self.input_name, ""} | {i for i, _, _ in self._bind}
        for n in self.nodes:
            missing = [i for i in n.inputs if i not in known]
            if missing:
                raise ValueError(
                    f"Invalid model: node {n.name!r} ({n.op}) reads {missing[0]!r}, which no "
                    "earlier node computes (graph not topologically sorted, or a second input)"
                )
            known |= set(n.outputs)
        if self.output_name not in known:
            raise ValueError(f"Invalid model: the output {self.output_name!r} is never computed")

    # -- running ----------------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        """Flattened input size D (the graph's per-row input shape, multiplied out)."""
        return math.prod(self.input_shape)

    def _tensors(self) -> dict[str, torch.Tensor]:
        """Initializer name -> the current tensor (the substitute under functional_call)."""
        out = {}
        for init, path, attr in self._bind:
            mod = self
            for part in path.split(".") if path else []:
                mod = getattr(mod, part)
            out[init] = getattr(mod, attr)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N, C)
        """Run the graph on flattened rows."""
        tensors = self._tensors()
        env: dict[str, torch.Tensor | None] = {"": None, **tensors}
        env[self.input_name] = x.reshape(x.shape[0], *self.input_shape)
        quantized = {self.quantized[p].initializer for p in self.quantized}
        for n in self.nodes:
            ins = [env[i] for i in n.inputs]
            try:
                if n.op == "DequantizeLinear" and n.inputs[0] in quantized:
                    outs = [self._weight(n, ins)]
                elif n.op == "MatMulInteger" and n.inputs[1] in quantized:
                    outs = [self._matmul_integer(n, ins)]
                else:
                    outs = OPS[n.op](ins, n.attrs, self.opset)
            except (RuntimeError, IndexError, TypeError, KeyError, ValueError) as e:
                raise ValueError(
                    f"Invalid input for node {n.name!r} ({n.op}): {' '.join(str(e).split())[:300]}"
                ) from None
            env.update(zip(n.outputs, outs))
        return env[self.output_name]

    def _weight(self, n: Node, ins: list) -> torch.Tensor:
        """A quantized weight: stored codes (q - zero point) times the model's own scale."""
        q = self.quantized[self.param_of[n.inputs[0]]]
        if self._float or q.elem_type == 6:
            return ins[0]
        return ins[0] * _along(ins[1], q.axis, ins[0].dim())

    def _matmul_integer(self, n: Node, ins: list) -> torch.Tensor:
        """MatMulInteger on a stored weight (codes already less their zero point)."""
        q = self.quantized[self.param_of[n.inputs[1]]]
        B = ins[1]
        if self._float:  # float weights back in code units: the graph's Mul applies the scale
            B = B / _along(self._tensors()[q.scale], q.axis, B.dim())
        A = ins[0] - ins[2] if len(ins) > 2 and ins[2] is not None else ins[0]
        return A @ B

    def float_weights(self) -> OnnxModel:
        """A copy whose quantized parameters hold dequantized float weights (for fine-tuning)."""
        new = copy.deepcopy(self)
        if new._float:
            return new
        tensors = new._tensors()
        with torch.no_grad():
            for pname, q in new.quantized.items():
                if q.elem_type == 6:
                    continue
                if q.scale is None:
                    raise ValueError(
                        f"Invalid model: the scale of {q.initializer!r} is not an initializer "
                        f"named '<weight>_scale'; fine-tune the float model and quantize it again"
                    )
                p = new.get_parameter(pname)
                p.mul_(_along(tensors[q.scale], q.axis, p.dim()))
        new._float = True
        return new

    @property
    def holds_float_weights(self) -> bool:
        """True after ``float_weights()``: quantized parameters hold dequantized values."""
        return self._float


def _along(scale: torch.Tensor, axis: int | None, ndim: int) -> torch.Tensor:
    """A per-tensor scale as is; a per-channel one shaped to broadcast along ``axis``."""
    if axis is None or scale.numel() == 1:
        return scale.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return scale.reshape(shape)


def _broadcast(a: np.ndarray, axis: int | None, ndim: int) -> np.ndarray:
    if axis is None or a.ndim == 0 or a.size == 1:
        return a.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return a.reshape(shape)


def load_onnx(source: str | Path | bytes, *, max_bytes: int | None = None) -> OnnxModel:
    """Parse, check and convert an ONNX model; its logits on a probe batch must be (N, C)."""
    model = OnnxModel(parse_onnx(source, max_bytes=max_bytes)).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, model.n_features))
    if out.dim() != 2 or out.shape[0] != 2 or not 2 <= out.shape[1] <= limits.MAX_CLASSES:
        raise ValueError(
            f"Invalid model output {model.output_name!r}: shape {tuple(out.shape)} for a batch "
            f"of 2; expected (batch, classes) with 2 to {limits.MAX_CLASSES} classes and a "
            "variable batch dimension"
        )
    model.n_classes = int(out.shape[1])
    return model
