"""SAR Lab core library: sharpness-aware training vs bit-flip errors.

Never imports streamlit. Main entry points:
    load_dataset, ModelSpec, build_model, TrainConfig, train, FaultModel, Injector,
    run_campaign, compare, sweep, flip_value, save_checkpoint, load_checkpoint.
"""

from sar_core.bits import flip_value, parse_bits
from sar_core.campaign import compare, iter_compare, iter_sweep, run_campaign, sweep
from sar_core.data import DATASETS, Dataset, load_csv, load_dataset
from sar_core.evaluate import evaluate
from sar_core.faults import FaultModel, Injector, sample_pattern
from sar_core.io import load_checkpoint, save_checkpoint
from sar_core.models import ModelSpec, build_model
from sar_core.optim import ASAM, SAM, SAR
from sar_core.training import TrainConfig, spec_for, train

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
