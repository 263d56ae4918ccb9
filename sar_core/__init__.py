"""SAR Lab core library: sharpness-aware training vs bit-flip errors.

Never imports streamlit. Main entry points:
    load_dataset, ModelSpec, build_model, TrainConfig, train, FaultModel, Injector,
    run_campaign, compare, sweep, flip_value, save_checkpoint, load_checkpoint.

The names below are loaded on first use (PEP 562), so ``import sar_core`` and the CLI's
``--help`` / ``flip`` stay instant: torch, scipy and sklearn load only when something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> the submodule that defines it
_EXPORTS = {
    "flip_value": "formats.bits",
    "parse_bits": "formats.bits",
    "compare": "analysis.campaign",
    "iter_compare": "analysis.campaign",
    "iter_sweep": "analysis.sweeps",
    "run_campaign": "analysis.campaign",
    "sweep": "analysis.sweeps",
    "DATASETS": "data.datasets",
    "Dataset": "data.datasets",
    "load_csv": "data.datasets",
    "load_dataset": "data.datasets",
    "evaluate": "engine.evaluate",
    "FaultModel": "faults.model",
    "Injector": "faults.injector",
    "sample_pattern": "faults.model",
    "load_checkpoint": "data.io",
    "save_checkpoint": "data.io",
    "ModelSpec": "data.models",
    "build_model": "data.models",
    "ASAM": "training.optim",
    "SAM": "training.optim",
    "SAR": "training.optim",
    "TrainConfig": "training.config",
    "spec_for": "training.loop",
    "train": "training.loop",
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


if TYPE_CHECKING:  # static analysers and IDEs see the real imports
    from sar_core.analysis.campaign import compare, iter_compare, run_campaign
    from sar_core.analysis.sweeps import iter_sweep, sweep
    from sar_core.data.datasets import DATASETS, Dataset, load_csv, load_dataset
    from sar_core.data.io import load_checkpoint, save_checkpoint
    from sar_core.data.models import ModelSpec, build_model
    from sar_core.engine.evaluate import evaluate
    from sar_core.faults.injector import Injector
    from sar_core.faults.model import FaultModel, sample_pattern
    from sar_core.formats.bits import flip_value, parse_bits
    from sar_core.training.config import TrainConfig
    from sar_core.training.loop import spec_for, train
    from sar_core.training.optim import ASAM, SAM, SAR
