"""sharpness: Hessian, SAM, average-case and fault-model sharpness of one or more models.

python -m sar_core sharpness --model F [--model F2 ...] [--seed S] [--format int8 --ber 0.01]

Per-model keys hold one value for one --model and a list in --model order for several.
"""

from __future__ import annotations

import argparse

from sar_core import limits
from sar_core.cli.common import model_args
from sar_core.names import GRANULARITIES


def add_arguments(sp: argparse.ArgumentParser) -> None:
    """Options of the sharpness command."""
    model_args(sp)
    sp.add_argument("--rho", default="0.05", help="radius of the SAM / average ball, > 0")
    sp.add_argument("--format", default=None, help="fault model format (with --ber or --count)")
    sp.add_argument("--bits", default="all", help="fault model bits (bit 0 = LSB)")
    rate = sp.add_mutually_exclusive_group()
    rate.add_argument("--ber", default=None, help="bit error rate in (0, 1]")
    rate.add_argument("--count", default=None, help="exact flips per trial")
    sp.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    sp.add_argument("--granularity", default="tensor", choices=GRANULARITIES)
    sp.add_argument("--fault-bias", action="store_true", help="biases can flip too")
    sp.add_argument("--trials", default="50", help=f"fault trials, 1..{limits.MAX_TRIALS}")


def _fault_model_or_none(a: argparse.Namespace):
    from sar_core.cli.common import UsageError
    from sar_core.cli.faultargs import fault_model

    if a.ber is None and a.count is None:
        if a.format is not None:
            raise UsageError(
                f"Invalid format={a.format!r} without a rate: add --ber P or --count K"
            )
        return None
    a.format = a.format or "float32"
    a.include_bias = a.fault_bias
    return fault_model(a)


def run(a: argparse.Namespace) -> dict:
    """One sharpness report per model."""
    from sar_core.analysis.sharpness import sharpness_report
    from sar_core.cli.common import Progress, load_models, number, per_model
    from sar_core.engine.evaluate import as_tensors
    from sar_core.validate import check_float, check_int

    rho = check_float("rho", number("rho", a.rho), low=0.0, low_open=True)
    trials = check_int(
        "trials", number("trials", a.trials, kind=int), low=1, high=limits.MAX_TRIALS
    )
    fm = _fault_model_or_none(a)
    cks, X, y, seed = load_models(a)
    if fm is not None:
        from sar_core.data.onnx_fault_check import check_fault_model

        for ck in cks:  # a quantized model: the fault sharpness must hit its stored codes
            check_fault_model(ck.model, fm)
    X, y = as_tensors(X, y)
    bar = Progress(len(cks), "sharpness", a.quiet)
    reports = []
    for i, ck in enumerate(cks):
        reports.append(
            sharpness_report(ck.model, X, y, seed=seed, fault_model=fm, rho=rho, trials=trials)
        )
        bar(i + 1)
    n = len(cks)
    keys = [k for k in reports[0] if k not in ("rho", "seed")]
    out = {k: per_model([r[k] for r in reports], n) for k in keys}
    out.update(
        rho=rho,
        seed=seed,
        split=a.split,
        n_samples=len(y),
        models=[{"path": p, "method": ck.method} for p, ck in zip(a.model, cks)],
        fault_model=fm.to_dict() if fm else None,
    )
    return out
