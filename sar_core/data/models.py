"""Small models built from a frozen spec: an MLP, a CNN for small images and a 1-D CNN for signals."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass

import torch
from torch import nn

from sar_core import limits
from sar_core.names import ARCHS
from sar_core.validate import check_choice, check_int

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a model; with the seed it fixes the initial weights."""

    arch: str = "mlp"  # "mlp", "cnn" (images) or "cnn1d" (signals)
    n_features: int = 64  # flattened input size D
    n_classes: int = 10
    widths: tuple[int, ...] = (128, 64)  # MLP hidden widths, or CNN conv channels
    activation: str = "relu"
    image_shape: tuple[int, ...] | None = None  # (C, H, W) for "cnn", (C, L) for "cnn1d"

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, ARCHS)
        check_choice("activation", self.activation, tuple(ACTIVATIONS))
        check_int("n_features", self.n_features, low=1, high=100_000)
        check_int("n_classes", self.n_classes, low=2, high=limits.MAX_CLASSES)
        if not isinstance(self.widths, (list, tuple)):
            raise ValueError(f"Invalid widths={self.widths!r}: expected a list of layer widths")
        widths = tuple(self.widths)
        if not widths or len(widths) > limits.MAX_DEPTH:
            raise ValueError(
                f"Invalid widths={list(widths)}: need 1 to {limits.MAX_DEPTH} hidden layers"
            )
        for w in widths:
            check_int("widths[i]", w, low=1, high=limits.MAX_WIDTH)
        object.__setattr__(self, "widths", widths)
        if self.image_shape is not None:
            shape = self.image_shape
            if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
                raise ValueError(f"Invalid image_shape={shape!r}: expected (C, H, W) integers")
            shape = tuple(check_int("image_shape[i]", s, low=1, high=100_000) for s in shape)
            object.__setattr__(self, "image_shape", shape)
        if self.arch == "cnn":
            if self.image_shape is None or len(self.image_shape) != 3:
                raise ValueError(
                    f"Invalid image_shape={self.image_shape}: arch 'cnn' needs (C, H, W); "
                    "use a dataset with images (digits) or arch 'mlp'"
                )
            c, h, w = self.image_shape
            if c * h * w != self.n_features:
                raise ValueError(
                    f"Invalid image_shape={self.image_shape}: C*H*W must equal n_features="
                    f"{self.n_features}"
                )
            if len(widths) > 3 or min(h, w) < 2 ** len(widths):
                raise ValueError(
                    f"Invalid widths={list(widths)}: a CNN on {h}x{w} images takes at most "
                    f"{min(3, (min(h, w)).bit_length() - 1)} conv layers"
                )
        if self.arch == "cnn1d":
            self._check_cnn1d(widths)

    def _check_cnn1d(self, widths: tuple[int, ...]) -> None:
        if self.image_shape is None or len(self.image_shape) != 2:
            raise ValueError(
                f"Invalid image_shape={self.image_shape}: arch 'cnn1d' needs (C, L); "
                "use a dataset of signals (mnist1d) or arch 'mlp'"
            )
        c, length = self.image_shape
        if c * length != self.n_features:
            raise ValueError(
                f"Invalid image_shape={self.image_shape}: C*L must equal n_features="
                f"{self.n_features}"
            )
        if len(widths) > 4 or length < 2 ** len(widths):
            raise ValueError(
                f"Invalid widths={list(widths)}: a 1-D CNN on length-{length} signals takes at "
                f"most {min(4, length.bit_length() - 1)} conv layers"
            )

    def to_dict(self) -> dict:
        """JSON-friendly dict (tuples as lists)."""
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["image_shape"] = list(self.image_shape) if self.image_shape else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        """Inverse of ``to_dict``; unknown keys are rejected."""
        if not isinstance(d, dict):
            raise ValueError(f"Invalid spec={d!r}: expected a JSON object")
        allowed = set(cls.__dataclass_fields__)
        extra = set(d) - allowed
        if extra:
            raise ValueError(
                f"Invalid spec keys {sorted(extra)}: allowed keys are {sorted(allowed)}"
            )
        d = dict(d)
        if "widths" in d:
            if not isinstance(d["widths"], (list, tuple)):
                raise ValueError(f"Invalid spec widths={d['widths']!r}: expected a list of ints")
            d["widths"] = tuple(d["widths"])
        if d.get("image_shape") is not None:
            d["image_shape"] = tuple(d["image_shape"])
        return cls(**d)


def build_model(spec: ModelSpec, seed: int = 0) -> nn.Module:
    """Model for ``spec`` with initial weights fixed by ``seed`` (global RNG state untouched)."""
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        make = {"mlp": _mlp_layers, "cnn": _cnn_layers, "cnn1d": _cnn1d_layers}[spec.arch]
        layers = make(spec)
        model = nn.Sequential(OrderedDict(layers))
    return model.eval()


def _mlp_layers(spec: ModelSpec) -> list[tuple[str, nn.Module]]:
    act = ACTIVATIONS[spec.activation]
    layers: list[tuple[str, nn.Module]] = []
    d = spec.n_features
    for i, w in enumerate(spec.widths, start=1):
        layers += [(f"fc{i}", nn.Linear(d, w)), (f"act{i}", act())]
        d = w
    layers.append(("out", nn.Linear(d, spec.n_classes)))
    return layers


def _cnn_layers(spec: ModelSpec) -> list[tuple[str, nn.Module]]:
    act = ACTIVATIONS[spec.activation]
    c, h, w = spec.image_shape  # type: ignore[misc]
    layers: list[tuple[str, nn.Module]] = [
        ("unflatten", nn.Unflatten(1, (c, h, w)))
    ]  # (B,D)->(B,C,H,W)
    for i, ch in enumerate(spec.widths, start=1):
        layers += [
            (f"conv{i}", nn.Conv2d(c, ch, kernel_size=3, padding=1)),
            (f"act{i}", act()),
            (f"pool{i}", nn.MaxPool2d(2)),
        ]
        c, h, w = ch, h // 2, w // 2
    layers += [("flatten", nn.Flatten()), ("out", nn.Linear(c * h * w, spec.n_classes))]
    return layers


def _cnn1d_layers(spec: ModelSpec) -> list[tuple[str, nn.Module]]:
    """Conv1d(k=5, pad 2) -> act -> MaxPool1d(2) per width, then a linear read-out."""
    act = ACTIVATIONS[spec.activation]
    c, length = spec.image_shape  # type: ignore[misc]
    layers: list[tuple[str, nn.Module]] = [
        ("unflatten", nn.Unflatten(1, (c, length)))
    ]  # (B,D)->(B,C,L)
    for i, ch in enumerate(spec.widths, start=1):
        layers += [
            (f"conv{i}", nn.Conv1d(c, ch, kernel_size=5, padding=2)),
            (f"act{i}", act()),
            (f"pool{i}", nn.MaxPool1d(2)),
        ]
        c, length = ch, length // 2
    layers += [("flatten", nn.Flatten()), ("out", nn.Linear(c * length, spec.n_classes))]
    return layers


def layer_names(model: nn.Module) -> list[str]:
    """Names of modules that own parameters (the 'layers' a fault model can target)."""
    return [
        n for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))
    ]


def n_parameters(model: nn.Module) -> int:
    """Total number of parameters."""
    return sum(p.numel() for p in model.parameters())
