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
tensors; no module is mutated and no hook is registered.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

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
        self.children = list(model.named_children())
        self.params = {n: p.detach() for n, p in model.named_parameters()}
        owners = [n for n, m in self.children if any(True for _ in m.parameters(recurse=False))]
        self.index = {n: i for i, (n, _) in enumerate(self.children)}
        with torch.no_grad():
            acts = [X]
            for i in range(len(self.children)):
                acts.append(self._child(i, acts[-1]))
        self.acts = acts  # acts[i] is the input of child i; acts[-1] the clean logits
        shapes = {f"{n}.output": tuple(acts[self.index[n] + 1].shape) for n in owners}
        self.space = SiteSpace(shapes, fm)  # validates layers (unknown names: ValueError)
        self.scales = self._calibrate(calibration) if fm.format == "int8" else {}

    def _child(self, i: int, h: torch.Tensor) -> torch.Tensor:
        name, mod = self.children[i]
        own = {k.split(".", 1)[1]: v for k, v in self.params.items() if k.split(".", 1)[0] == name}
        return functional_call(mod, own, (h,)) if own else mod(h)

    def _calibrate(self, calibration) -> dict[str, np.ndarray]:
        if calibration is None:
            raise ValueError(
                "Invalid calibration=None: int8 activation faults need calibration inputs "
                "(e.g. the training split's X) to set each layer's scale max|output| / 127"
            )
        h = torch.as_tensor(np.asarray(calibration, dtype=np.float32), device=self.acts[0].device)
        out = {}
        with torch.no_grad():
            for i, (name, _) in enumerate(self.children):
                h = self._child(i, h)
                if f"{name}.output" in self.space.names:
                    out[name] = B.int8_scale(h.cpu().numpy(), "tensor")
        return out

    def logits(self, pattern: FaultPattern) -> tuple[torch.Tensor, int]:
        """(faulty logits (N, C), bits changed) for one pattern over this model's activations."""
        sites = pattern.sites
        touched = sorted(self.index[k.rsplit(".", 1)[0]] for k in sites)
        if not touched:
            return self.acts[-1], 0
        changed = 0
        h = self.acts[touched[0] + 1]  # the clean output of the first touched layer
        with torch.no_grad():
            for i in range(touched[0], len(self.children)):
                if i > touched[0]:
                    h = self._child(i, h)
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
