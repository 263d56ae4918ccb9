"""A plain imported Linear / activation chain as an ``nn.Sequential`` (``as_sequential``)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from sar_core.data.onnx_graph import _module_path
from sar_core.data.onnx_import import OnnxModel

_CHAIN_ACTS = {"Relu": nn.ReLU, "Tanh": nn.Tanh, "Sigmoid": nn.Sigmoid}


def as_sequential(model: OnnxModel) -> nn.Sequential | None:
    """The same network as an ``nn.Sequential`` of ``nn.Linear`` and activations, when the graph
    is such a plain chain on flat rows (float Gemm layers, elementwise activations); else None.

    Parameter names and values are the imported ones, so fault patterns are the same; SAR Lab's
    Sequential-only paths (the batched evaluator, activation faults) then apply.
    """
    if len(model.input_shape) != 1 or model.quantized:
        return None
    params = dict(model.named_parameters())
    layers: list[tuple[str, nn.Module]] = []
    prev = model.input_name
    for n in model.nodes:
        if (
            not n.inputs
            or n.inputs[0] != prev
            or any(i not in model.param_of for i in n.inputs[1:])
        ):
            return None
        if n.op == "Gemm":
            a = n.attrs
            if a.get("transA", 0) or not a.get("transB", 0) or a.get("alpha", 1.0) != 1.0:
                return None
            names = [model.param_of[i] for i in n.inputs[1:]]
            w = params.get(names[0])
            b = params.get(names[1]) if len(names) > 1 else None
            path = names[0].rpartition(".")[0]
            if w is None or w.dim() != 2 or not names[0].endswith(".weight") or "." in path:
                return None
            if len(names) > 1 and (b is None or names[1] != f"{path}.bias" or a.get("beta", 1.0) != 1.0):  # fmt: skip
                return None
            lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
            with torch.no_grad():
                lin.weight.copy_(w)
                if b is not None:
                    lin.bias.copy_(b)
            layers.append((path, lin))
        elif n.op in _CHAIN_ACTS or n.op == "Gelu":
            act = (
                nn.GELU(n.attrs.get("approximate", "none"))
                if n.op == "Gelu"
                else _CHAIN_ACTS[n.op]()
            )
            layers.append((_module_path(n.name).replace(".", "_") or "act", act))
        elif n.op not in ("Identity", "Dropout"):
            return None
        prev = n.outputs[0]
    names = [k for k, _ in layers]
    if prev != model.output_name or len(set(names)) != len(names) or "graph" in names:
        return None
    return nn.Sequential(OrderedDict(layers)).eval()
