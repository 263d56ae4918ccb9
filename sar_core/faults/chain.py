"""An ``nn.Sequential`` run child by child from cached clean activations no child can overwrite.

The Monte Carlo evaluators and activation faults restart a Sequential at the first layer a fault
touches, from the cached input of that layer. A child that writes into its input
(``ReLU(inplace=True)``, ``x += 1``, ``x.add_()``) or hands its input back (``Identity``,
``Dropout`` in eval mode, ``Flatten``) would otherwise overwrite the cached activation of the
layer before it, and every later trial would start from a wrong value. So:

- every cached activation is built from a copy: a child never receives a cached tensor itself;
- while building the cache, each child is checked once: it is *guarded* when it bumped the
  version counter of its input (an in-place write, also through a view) or returned a tensor
  sharing the input's storage; a restart at a guarded child passes it a copy of the cache.

Results equal full forward passes (``torch.func.functional_call`` on the whole model) bit for bit:
the same kernels run on the same values.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call


def sequence(model: nn.Sequential) -> list[tuple[str, nn.Module]]:
    """(name, child) of a Sequential in call order. Unlike ``named_children()``, which yields a
    module once, a module registered twice (a shared activation) appears at each position."""
    return [(n, m) for n, m in model._modules.items() if m is not None]


def owner(name: str) -> str:
    """The child of a Sequential that owns parameter ``name`` ("2.0.weight" -> "2")."""
    return name.split(".", 1)[0]


def _shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    try:
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # no storage to compare (e.g. a subclass)
        return True


def touches_input(fn, x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(fn(x), whether fn wrote into x or returned a tensor sharing x's storage)."""
    try:
        before = x._version
    except RuntimeError:  # inference tensors track no version: assume the worst
        return fn(x), True
    out = fn(x)
    written = x._version != before
    aliased = not isinstance(out, torch.Tensor) or _shares_storage(out, x)
    return out, written or aliased


class CachedChain:
    """Children of a Sequential, their parameters and the clean activations on X (copies)."""

    def __init__(self, model: nn.Sequential, params: Mapping[str, torch.Tensor], X) -> None:
        self.children = sequence(model)
        names = [n for n, _ in self.children]
        self.index = {n: i for i, n in enumerate(names)}
        self.own = [
            {k.split(".", 1)[1]: v for k, v in params.items() if owner(k) == n} for n in names
        ]
        self.guarded: list[bool] = []  # child i writes into or returns its input
        with torch.no_grad():
            acts = [X.clone()]
            for i in range(len(self.children)):
                out, touched = touches_input(
                    lambda h, i=i: self.call(i, h, self.own[i]), acts[i].clone()
                )
                self.guarded.append(touched)
                acts.append(out)
        self.acts = acts  # acts[i] is the input of child i; acts[-1] the clean output

    def call(self, i: int, h: torch.Tensor, own: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Child i on h with its parameters ``own`` (names relative to the child)."""
        mod = self.children[i][1]
        return functional_call(mod, dict(own), (h,)) if own else mod(h)

    def cached_input(self, i: int) -> torch.Tensor:
        """The clean input of child i, safe to pass to child i (a copy where it is guarded)."""
        return self.acts[i].clone() if self.guarded[i] else self.acts[i]

    def forward_from(
        self, start: int, params: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Output of the model restarted at child ``start`` from its cached input.

        ``params`` (full names) replace the cached parameters of the children they own.
        """
        own = self.own
        if params:
            own = [dict(o) for o in self.own]
            for k, v in params.items():
                own[self.index[owner(k)]][k.split(".", 1)[1]] = v
        with torch.no_grad():
            h = self.cached_input(start)
            for i in range(start, len(self.children)):
                h = self.call(i, h, own[i])
        return h

    def outputs(self, X: torch.Tensor) -> list[torch.Tensor]:
        """Every child's output on fresh inputs X (X itself is not written)."""
        out, h = [], X.clone()
        with torch.no_grad():
            for i in range(len(self.children)):
                h = self.call(i, h, self.own[i])
                out.append(h.clone())  # the next child may write into h
        return out
