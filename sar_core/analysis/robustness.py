"""The robustness report's analyses, one definition each (the CLI report and the dashboard page).

The *double win*: per model, clean accuracy kept, accuracy under the fault model gained, and no
cost at inference. Its columns are defined here once:
- fault columns: clean / deployed accuracy, mean accuracy under faults with its 95% CI, and the
  paired difference from the reference model (the first of its architecture: identical fault
  patterns) with its verdict (``sar_core.stats.verdicts``);
- inference cost against a *plain twin* (a model of the checkpoint's architecture built from its
  spec, holding its weights): extra parameters and operations, the measured latency (ms, median)
  and latency ratio (interleaved rounds against the twin);
- training cost: training seconds / those of an SGD checkpoint of the same dataset (name and
  split seed), architecture and epochs, from checkpoint metadata; None without one.
These are one seed's columns. Over held-out seeds, the double-win *judgement* (a robustness win,
clean accuracy not measurably lost, zero extra bits and operations, with seed-level intervals) is
``sar_core.experiments.study.double_win``, which the double-win study spec uses.
Also the bit x layer sensitivity grid and the sharpness-vs-robustness points.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from sar_core.analysis.campaign import CampaignResult, compare, paired_difference
from sar_core.analysis.mitigations import inference_ops, timed_against
from sar_core.data.io import Checkpoint
from sar_core.data.models import build_model, n_parameters
from sar_core.faults.model import FaultModel, parameter_shapes
from sar_core.stats.verdicts import verdict

SHARPNESS_MEASURES = {
    "fault_sharpness": "expected loss increase under the fault model",
    "lambda_max": "top Hessian eigenvalue λ_max",
    "trace": "Hessian trace (Hutchinson)",
    "sam_sharpness": "SAM sharpness (ρ = 0.05)",
    "asam_sharpness": "ASAM sharpness (elementwise, ρ = 0.05)",
    "avg_sharpness": "average-case sharpness (random, ρ = 0.05)",
}  # keys of sar_core.analysis.sharpness.sharpness_report


# ---------------------------------------------------------------- fault columns ---------------


def fault_columns(result: CampaignResult, reference: CampaignResult) -> dict:
    """Clean / deployed / under-faults accuracy of one result and its paired difference from
    ``reference`` (same patterns) with the verdict of that difference's 95% CI."""
    s = result.summary()
    d = paired_difference(reference, result)
    return {
        "clean_accuracy": s["clean_accuracy"],
        "deployed_accuracy": s["deployed_accuracy"],
        "fault_accuracy": s["mean_accuracy"],
        "fault_ci95": s["ci95"],
        "paired_difference": {**d, "verdict": None if result is reference else verdict(*d["ci95"])},
    }


def architecture_groups(models: Sequence[nn.Module]) -> list[list[int]]:
    """Indices of models with identical parameter shapes (one paired campaign each), in order."""
    groups: dict[str, list[int]] = {}
    for i, m in enumerate(models):
        groups.setdefault(repr(parameter_shapes(m)), []).append(i)
    return list(groups.values())


def paired_results(
    models: Sequence[nn.Module], X, y, fm: FaultModel, *, trials: int, seed: int
) -> list[tuple[CampaignResult, CampaignResult]]:
    """Per model (in order): its campaign and its reference's (the first of its architecture)."""
    out: list = [None] * len(models)
    for group in architecture_groups(models):
        res = compare([models[i] for i in group], X, y, fm, trials=trials, seed=seed)["results"]
        for i, r in zip(group, res):
            out[i] = (r, res[0])
    return out


# ---------------------------------------------------------------- costs -----------------------


def plain_twin(ck: Checkpoint) -> nn.Module | None:
    """A plain model of the checkpoint's architecture with its weights; None when it has none."""
    try:
        twin = build_model(ck.spec, 0)
        twin.load_state_dict(ck.model.state_dict())
    except (
        AttributeError,
        KeyError,
        TypeError,
        ValueError,
        RuntimeError,
    ):  # no spec / other layers
        return None
    return twin.eval()


def _ops_or_none(model: nn.Module, n_features: int) -> dict | None:
    """inference_ops of a layer chain; None for any other graph (an imported ONNX model)."""
    return inference_ops(model, n_features) if isinstance(model, nn.Sequential) else None


def inference_cost(
    model: nn.Module,
    reference: nn.Module | None,
    X: torch.Tensor,
    *,
    rounds: int = 15,
    inner: int = 5,
) -> dict:
    """Parameters, extra parameters / operations against ``reference`` (the plain twin), and the
    measured latency over X: ``latency_ms`` (median) and ``latency_ratio`` (vs the reference).

    Without a reference the comparisons are None and the latency is timed against itself; an
    imported graph that is not a layer chain (nn.Sequential) has no counted MACs (None).
    """
    n_features = int(np.prod(X.shape[1:]))
    ref = reference if reference is not None else model
    ops, ref_ops = _ops_or_none(model, n_features), _ops_or_none(ref, n_features)
    with torch.no_grad():
        t = timed_against(lambda: model(X), lambda: ref(X), rounds=rounds, inner=inner)
    known = reference is not None
    return {
        "parameters": n_parameters(model),
        "extra_params": n_parameters(model) - n_parameters(ref) if known else None,
        "extra_ops": ops["macs"] + ops["clamp_ops"] - ref_ops["macs"] - ref_ops["clamp_ops"]
        if known and ops and ref_ops
        else None,
        "base_macs": ref_ops["macs"] if ref_ops else None,
        "latency_ms": t["ms"],
        "latency_ratio": t["ratio"] if known else None,
        "test_samples": int(X.shape[0]),
    }


def train_seconds(ck: Checkpoint) -> float | None:
    """Recorded training time of a checkpoint (seconds), or None."""
    v = (ck.meta.get("metrics") or {}).get("train_seconds")
    return float(v) if isinstance(v, (int, float)) and v > 0 else None


def _training_setup(ck: Checkpoint) -> tuple:
    d = ck.meta.get("dataset") or {}
    spec = ck.spec.to_dict() if hasattr(ck.spec, "to_dict") else None
    return d.get("name"), d.get("seed"), repr(spec), (ck.meta.get("config") or {}).get("epochs")


def train_cost_ratios(checkpoints: Sequence[Checkpoint]) -> list[float | None]:
    """Training seconds / those of an SGD checkpoint (among ``checkpoints``) with the same
    dataset, split seed, architecture and epochs; None where there is none or no time."""
    out = []
    for ck in checkpoints:
        sgd = [
            train_seconds(c)
            for c in checkpoints
            if c.method == "sgd" and _training_setup(c) == _training_setup(ck) and train_seconds(c)
        ]
        mine = train_seconds(ck)
        out.append(mine / sgd[0] if sgd and mine is not None else None)
    return out


# ---------------------------------------------------------------- the table -------------------


def double_win_rows(
    checkpoints: Sequence[Checkpoint],
    X,
    y,
    fm: FaultModel,
    *,
    trials: int,
    seed: int,
    rounds: int = 15,
    inner: int = 5,
    on_model: Callable[[int, int], None] | None = None,
) -> list[dict]:
    """One row per checkpoint (in order): ``fault_columns``, ``inference_cost`` against the plain
    twin, ``extra_bits`` (extra parameters x the format's width) and ``train_cost_ratio``.

    Models of one architecture are paired (identical patterns); the reference of a row is the
    first model of its architecture. ``on_model(done, total)`` reports progress.
    """
    from sar_core.formats.bits import get_format

    models = [ck.model for ck in checkpoints]
    pairs = paired_results(models, X, y, fm, trials=trials, seed=seed)
    costs = train_cost_ratios(checkpoints)
    Xt = X if isinstance(X, torch.Tensor) else torch.as_tensor(np.asarray(X, dtype=np.float32))
    width = get_format(fm.format).width
    rows = []
    for i, (ck, (res, ref)) in enumerate(zip(checkpoints, pairs)):
        cost = inference_cost(ck.model, plain_twin(ck), Xt, rounds=rounds, inner=inner)
        extra = cost["extra_params"]
        rows.append(
            {
                "method": ck.method,
                **fault_columns(res, ref),
                **cost,
                "extra_bits": None if extra is None else extra * width,
                "train_cost_ratio": costs[i],
            }
        )
        if on_model is not None:
            on_model(i + 1, len(checkpoints))
    return rows


# ---------------------------------------------------------------- sensitivity & sharpness -----


def layer_bit_accuracy(model: nn.Module, X, y, fm: FaultModel, *, trials: int, seed: int) -> float:
    """Mean accuracy over ``trials`` campaigns of ``fm`` (one cell of the sensitivity grid)."""
    res = compare([model], X, y, fm, trials=trials, seed=seed)["results"][0]
    return float(np.mean(res.accuracy))


def bit_layer_grid(
    fm: FaultModel,
    layers: Sequence[str],
    cell: Callable[[FaultModel], float],
    *,
    progress: Callable[[float], None] | None = None,
) -> dict:
    """Mean accuracy when faults hit one (layer, bit) pair only, for every pair of ``layers`` x
    ``fm.bits``; ``cell(fm_of_the_pair)`` measures one (e.g. ``layer_bit_accuracy``, cached)."""
    bits = list(fm.bits)  # type: ignore[arg-type]
    acc, done = [], 0
    for lay in layers:
        row = []
        for b in bits:
            row.append(cell(replace(fm, layers=(lay,), bits=(b,))))
            done += 1
            if progress is not None:
                progress(done / (len(layers) * len(bits)))
        acc.append(row)
    return {"bits": bits, "layers": list(layers), "accuracy": acc}


def sharpness_value(report: Mapping, measure: str) -> float | None:
    """One measure of a ``sharpness_report`` (its mean where it is an estimate with a CI)."""
    if measure not in SHARPNESS_MEASURES:
        raise ValueError(
            f"Invalid measure={measure!r}: must be one of {', '.join(SHARPNESS_MEASURES)}"
        )
    v = report.get(measure)
    return v.get("mean") if isinstance(v, Mapping) else v


def sharpness_points(
    labels: Sequence[str],
    methods: Sequence[str],
    rows: Sequence[Mapping],
    reports: Sequence[Mapping],
    measure: str,
) -> list[dict]:
    """Sharpness (x) against accuracy under faults (y, with its CI; an undefined bound, one
    trial, is None) per model, for a scatter."""

    def bound(v: float) -> float | None:
        return float(v) if np.isfinite(v) else None

    return [
        {
            "label": label,
            "method": method,
            "x": sharpness_value(sh, measure),
            "y": r["fault_accuracy"],
            "lo": bound(r["fault_ci95"][0]),
            "hi": bound(r["fault_ci95"][1]),
        }
        for label, method, r, sh in zip(labels, methods, rows, reports)
    ]
