"""Transient faults in layer outputs during inference (``FaultModel(target="activations")``).

A site is one stored bit of one output value of an eligible layer (a child module with
parameters, e.g. ``fc1``) for one input row: the shapes are (N, *output shape), so a pattern
depends only on the activation shapes, the batch and the seed, and two models of one
architecture see the same faults. Faults are fresh per evaluation (a new pattern per trial).

Only the hit values are stored in the format: float16 / bfloat16 round them, int8 quantizes
them with a per-layer scale s = max|output| / 127 calibrated on data passed in explicitly
(``calibration``, e.g. the training inputs); the hit bits change, the value is decoded and put
back. Every other value stays float32, so a pattern with no hit gives the clean logits exactly.
Applied functionally: the children of the ``nn.Sequential`` are called one by one on new
tensors; no module is mutated and no hook is registered. What is cached (parameters, clean
activations) is a copy no module can overwrite (``CachedChain``: in-place modules give the results
of full forward passes), and every returned tensor is new.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from sar_core.faults.chain import CachedChain
from sar_core.faults.model import FaultModel, FaultPattern, SiteSpace, apply_masks, burst_masks
from sar_core.formats import bits as B


class ActivationFaults:
    """Clean activations of one model on (X, y) and faulty logits for activation patterns."""

    def __init__(self, model: nn.Module, fm: FaultModel, X: torch.Tensor, calibration=None) -> None:
        if not isinstance(model, nn.Sequential):
            raise ValueError(
                f"Invalid model {type(model).__name__}: activation faults need an nn.Sequential "
                "(the layers are run one by one); use target='weights'"
            )
        self.model, self.fm = model, fm
        # copies: a later change to the model's parameters does not reach this cache
        params = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.chain = CachedChain(model, params, X)
        self.children, self.index = self.chain.children, self.chain.index
        self.acts = self.chain.acts  # acts[i]: the clean input of child i (internal: read only)
        owners = [n for n, m in self.children if any(True for _ in m.parameters(recurse=False))]
        shapes = {f"{n}.output": tuple(self.acts[self.index[n] + 1].shape) for n in owners}
        self.space = SiteSpace(shapes, fm)  # validates layers (unknown names: ValueError)
        self.scales = self._calibrate(calibration) if fm.format == "int8" else {}

    @property
    def clean_logits(self) -> torch.Tensor:
        """Clean logits (N, C) on X: a new tensor."""
        return self.acts[-1].clone()

    def _calibrate(self, calibration) -> dict[str, np.ndarray]:
        if calibration is None:
            raise ValueError(
                "Invalid calibration=None: int8 activation faults need calibration inputs "
                "(e.g. the training split's X) to set each layer's scale max|output| / 127"
            )
        device = self.acts[0].device
        h = torch.as_tensor(np.asarray(calibration, dtype=np.float32), device=device)
        outs = self.chain.outputs(h)  # h is not written (it may share the caller's array)
        return {
            name: B.int8_scale(outs[i].cpu().numpy(), "tensor")
            for i, (name, _) in enumerate(self.children)
            if f"{name}.output" in self.space.names
        }

    def logits(self, pattern: FaultPattern) -> tuple[torch.Tensor, int]:
        """(faulty logits (N, C), bits changed) for one pattern over this model's activations.

        The logits are a new tensor (the clean logits' copy when nothing is hit)."""
        sites = pattern.sites
        touched = sorted(self.index[k.rsplit(".", 1)[0]] for k in sites)
        if not touched:
            return self.clean_logits, 0
        changed = 0
        first = touched[0]
        h = self.acts[first + 1]  # the clean output of the first touched layer (read only)
        with torch.no_grad():
            for i in range(first, len(self.children)):
                if i > first:
                    h = self.chain.call(i, h, self.chain.own[i])  # h is new: _fault copies
                key = f"{self.children[i][0]}.output"
                if key in sites:
                    h, c = self._fault(h, key, pattern)
                    changed += c
        return h, changed

    def _fault(self, h: torch.Tensor, key: str, pattern: FaultPattern) -> tuple[torch.Tensor, int]:
        """h with the pattern's bits of ``key`` changed (a new tensor) and the bits changed."""
        idx, start = pattern.sites[key]
        elem, inv = np.unique(idx, return_inverse=True)
        m = np.zeros(elem.size, dtype=np.uint64)
        np.bitwise_or.at(m, inv, burst_masks(start, pattern.burst))
        flat = h.reshape(-1)
        vals = flat[torch.from_numpy(elem)].cpu().numpy()
        scale = self.scales.get(key.rsplit(".", 1)[0])
        old = B.encode(vals, self.fm.format, scale)
        new = apply_masks(old, m, self.fm.kind)
        with np.errstate(over="ignore", invalid="ignore"):
            faulty = B.decode(new, self.fm.format, scale)
        out = flat.clone()
        out[torch.from_numpy(elem)] = torch.from_numpy(faulty).to(out.device)
        return out.view(h.shape), int(np.bitwise_count(old ^ new).sum())
