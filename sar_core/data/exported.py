"""``torch.export`` programs (``.pt2``) as SAR Lab models: trusted files only.

``torch.export.load`` can unpickle, so ``sar_core.data.io.load_model`` calls this only with an
explicit trust flag (the CLI's ``--trust-pt2``), and the dashboard never does.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import torch
from torch import nn

from sar_core import limits


class FlatInput(nn.Module):
    """Wraps a module taking (N, *input_shape) so it takes flattened rows (N, D).

    ``batch``: a program exported with a static batch size runs in chunks of that size (the
    last chunk padded with zero rows, whose outputs are dropped); None: any batch.
    """

    def __init__(self, net: nn.Module, input_shape: tuple[int, ...], batch: int | None) -> None:
        super().__init__()
        self.net, self.input_shape, self.batch = net, tuple(input_shape), batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (N, C)
        """Reshape the rows to the program's input shape and run it."""
        x = x.reshape(x.shape[0], *self.input_shape)
        if self.batch is None:
            return self.net(x)
        outs = []
        for i in range(0, x.shape[0], self.batch):
            chunk = x[i : i + self.batch]
            pad = self.batch - chunk.shape[0]
            if pad:
                chunk = torch.cat([chunk, chunk.new_zeros((pad, *chunk.shape[1:]))])
            outs.append(self.net(chunk)[: self.batch - pad])
        return torch.cat(outs)

    def train(self, mode: bool = True) -> FlatInput:
        """Only this wrapper's flag: an exported program keeps the mode it was exported in."""
        self.training = mode
        return self


def load_exported(source: str | Path | bytes, *, max_bytes: int | None = None):
    """The program's module, wrapped to take flattened rows; n_classes from a probe batch."""
    from sar_core.data.onnx_read import read_model_bytes

    data = read_model_bytes(source, max_bytes)
    try:
        ep = torch.export.load(io.BytesIO(data))
        args = ep.example_inputs[0]
        net = ep.module()
    except Exception as e:  # noqa: BLE001 — torch.export raises many types for a bad file
        raise ValueError(f"Invalid model: torch.export.load failed ({type(e).__name__})") from None
    if len(args) != 1 or not isinstance(args[0], torch.Tensor) or args[0].dim() < 2:
        raise ValueError("Invalid model: the program must take one (batch, ...) tensor")
    shape = tuple(int(s) for s in args[0].shape[1:])
    n = int(args[0].shape[0])
    try:  # a batch size other than the example's: is the batch dimension dynamic?
        with torch.no_grad():
            net(torch.zeros(n + 1, *shape))
        batch = None
    except Exception:  # noqa: BLE001 — a guard on the exported batch size fails
        batch = n
    model = FlatInput(net, shape, batch)
    with torch.no_grad():
        out = model(torch.zeros(n + 1, math.prod(shape)))
    if out.dim() != 2 or not 2 <= out.shape[1] <= limits.MAX_CLASSES:
        raise ValueError(
            f"Invalid model output: shape {tuple(out.shape)}; expected (batch, classes)"
        )
    model.n_classes = int(out.shape[1])
    return model
