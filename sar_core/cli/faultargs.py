"""Fault-model options shared by inject, compare and sweep, and the campaign set-up they share.

    --format F --bits B [--fault flip|stuck-at-0|stuck-at-1] [--burst L]
    [--target weights|activations] (--ber P | --ber-01 P --ber-10 Q | --count K)

A fault-kind option reaches ``FaultModel`` only when it differs from its default, so plain bit-flip
commands build exactly the fault model they always did.
"""

from __future__ import annotations

import argparse

from sar_core import limits
from sar_core.cli.common import UsageError, data_args, number, optional
from sar_core.names import FAULT_KINDS, FAULT_TARGETS, FORMAT_NAMES, GRANULARITIES

RATE_FLAGS = "--ber P, --count K, or --ber-01 P --ber-10 Q"


def add_fault_arguments(p: argparse.ArgumentParser, *, ber_help: str) -> None:
    """Fault-model, trial and data options of a campaign command."""
    p.add_argument("--format", default="float32", choices=FORMAT_NAMES)
    p.add_argument(
        "--bits",
        default="all",
        help="0-7 | 30,31 | sign | exponent | mantissa | msb | lsb | all (bit 0 = LSB)",
    )
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--ber", help=ber_help)
    rate.add_argument("--count", help="exact number of faulty sites (or bursts) per trial")
    p.add_argument("--ber-01", default=None, help="asymmetric rate of 0->1 flips (with --ber-10)")
    p.add_argument("--ber-10", default=None, help="asymmetric rate of 1->0 flips (with --ber-01)")
    p.add_argument(
        "--fault",
        default="flip",
        choices=FAULT_KINDS,
        help="what a hit site does: flip its bit, or force it to 0 / 1 (default flip)",
    )
    p.add_argument(
        "--burst", default="1", help="adjacent bits hit together inside one word, L >= 1"
    )
    p.add_argument(
        "--target",
        default="weights",
        choices=FAULT_TARGETS,
        help="stored weights, or layer outputs during inference (default weights)",
    )
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    p.add_argument("--include-bias", action="store_true")
    p.add_argument(
        "--granularity",
        default="tensor",
        choices=GRANULARITIES,
        help="int8 scale: per tensor, or per output row (a bias takes one scale)",
    )
    p.add_argument("--trials", default="100", help=f"Monte Carlo trials, 1..{limits.MAX_TRIALS}")
    p.add_argument("--seed", default="0")
    p.add_argument("--csv", default=None, help="CSV data for models trained on an uploaded CSV")
    data_args(p)


def _rates(a: argparse.Namespace) -> dict:
    prog = f"python -m sar_core {getattr(a, 'command', '')}".rstrip()
    ber_01 = optional("ber-01", getattr(a, "ber_01", None))
    ber_10 = optional("ber-10", getattr(a, "ber_10", None))
    asym = ber_01 is not None or ber_10 is not None
    for flag, value in (("--ber", a.ber), ("--count", a.count)):
        if asym and value is not None:
            raise UsageError(
                f"{prog}: argument --ber-01/--ber-10: not allowed with argument {flag}"
            )
    if a.ber is None and a.count is None and not asym:
        raise UsageError(
            f"{prog}: one of the arguments --ber --count is required (or --ber-01 P --ber-10 Q)"
        )
    if asym:
        return {k: v for k, v in (("ber_01", ber_01), ("ber_10", ber_10)) if v is not None}
    return {"ber": optional("ber", a.ber), "count": optional("count", a.count, kind=int)}


def _kind_fields(a: argparse.Namespace) -> dict:
    """fault kind / burst / target, only where they differ from a plain bit flip of weights."""
    out: dict = {}
    if getattr(a, "fault", "flip") != "flip":
        out["kind"] = a.fault
    burst = number("burst", getattr(a, "burst", "1"), kind=int)
    if burst != 1:
        out["burst"] = burst
    if getattr(a, "target", "weights") != "weights":
        out["target"] = a.target
    return out


def fault_model(a: argparse.Namespace):
    """The FaultModel the options describe; bad values raise ValueError naming the flag."""
    from sar_core.faults.model import FaultModel

    layers = (
        tuple(s.strip() for s in a.layers.split(",") if s.strip()) if a.layers is not None else None
    )
    if layers == ():
        raise UsageError(f"Invalid layers={a.layers!r}: select at least one layer name")
    fields = {**_rates(a), **_kind_fields(a)}
    return FaultModel(
        format=a.format,
        bits=a.bits,
        layers=layers,
        include_bias=a.include_bias,
        granularity=a.granularity,
        **fields,
    )


def campaign_setup(a: argparse.Namespace, paths: list[str]):
    """(models, dataset, fault model, trials, seed): options checked before any loading.

    A quantized ONNX model is checked to take exactly its stored int8 codes under ``fm``.
    """
    from sar_core.analysis.campaign import check_trials
    from sar_core.cli.common import load_with_data
    from sar_core.data.onnx_fault_check import check_fault_model
    from sar_core.validate import check_int

    fm = fault_model(a)
    trials = check_trials(number("trials", a.trials, kind=int))
    seed = check_int("seed", number("seed", a.seed, kind=int), low=0, high=2**63 - 1)
    cks, data = load_with_data(a, paths)
    for ck in cks:
        check_fault_model(ck.model, fm)
    return cks, data, fm, trials, seed


def engine_options(fm, data) -> dict:
    """Extra MonteCarlo options: activation faults get the training inputs to calibrate int8."""
    return {"calibration": data.X_train} if fm.target == "activations" else {}


def summary_keys(s: dict, keys: tuple[str, ...]) -> dict:
    """The listed keys of a campaign summary, plus mean_changed_bits."""
    return {k: s[k] for k in (*keys, "mean_changed_bits")}
