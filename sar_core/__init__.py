"""SAR Lab core library: sharpness-aware training vs bit-flip errors.

Never imports streamlit. Main entry points:
    load_dataset, ModelSpec, build_model, TrainConfig, train, FaultModel, Injector,
    run_campaign, compare, sweep, flip_value, save_checkpoint, load_checkpoint.

The names below are loaded on first use (PEP 562), so ``import sar_core`` and the CLI's
``--help`` / ``flip`` stay instant: torch, scipy and sklearn load only when something needs them.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

# public name -> the submodule that defines it
_EXPORTS = {
    "flip_value": "bits",
    "parse_bits": "bits",
    "compare": "campaign",
    "iter_compare": "campaign",
    "iter_sweep": "campaign",
    "run_campaign": "campaign",
    "sweep": "campaign",
    "DATASETS": "data",
    "Dataset": "data",
    "load_csv": "data",
    "load_dataset": "data",
    "evaluate": "evaluate",
    "FaultModel": "faults",
    "Injector": "faults",
    "sample_pattern": "faults",
    "load_checkpoint": "io",
    "save_checkpoint": "io",
    "ModelSpec": "models",
    "build_model": "models",
    "ASAM": "optim",
    "SAM": "optim",
    "SAR": "optim",
    "TrainConfig": "train_config",
    "spec_for": "training",
    "train": "training",
}

__all__ = [
    "ASAM",
    "DATASETS",
    "Dataset",
    "FaultModel",
    "Injector",
    "ModelSpec",
    "SAM",
    "SAR",
    "TrainConfig",
    "build_model",
    "compare",
    "evaluate",
    "flip_value",
    "iter_compare",
    "iter_sweep",
    "load_checkpoint",
    "load_csv",
    "load_dataset",
    "parse_bits",
    "run_campaign",
    "sample_pattern",
    "save_checkpoint",
    "spec_for",
    "sweep",
    "train",
]


def __getattr__(name: str) -> Any:
    """Import the defining submodule on first access to a public name."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sar_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sar_core.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """The package module: a public function keeps its name over its own submodule's."""

    def __setattr__(self, name: str, value: Any) -> None:
        # Loading sar_core.evaluate binds the submodule as sar_core.evaluate; the public name is
        # the function evaluate() it defines (as with the eager imports this file used to do).
        if (
            isinstance(value, types.ModuleType)
            and _EXPORTS.get(name) == name
            and value.__name__ == f"{__name__}.{name}"
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

if TYPE_CHECKING:  # static analysers and IDEs see the real imports
    from sar_core.bits import flip_value, parse_bits
    from sar_core.campaign import compare, iter_compare, iter_sweep, run_campaign, sweep
    from sar_core.data import DATASETS, Dataset, load_csv, load_dataset
    from sar_core.evaluate import evaluate
    from sar_core.faults import FaultModel, Injector, sample_pattern
    from sar_core.io import load_checkpoint, save_checkpoint
    from sar_core.models import ModelSpec, build_model
    from sar_core.optim import ASAM, SAM, SAR
    from sar_core.train_config import TrainConfig
    from sar_core.training import spec_for, train
