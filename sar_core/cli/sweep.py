"""sweep: accuracy of several models over a list of bit error rates (paired at every rate)."""

from __future__ import annotations

import argparse

from sar_core.cli.faultargs import add_fault_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the sweep command."""
    p.add_argument("--models", nargs="+", required=True)
    add_fault_arguments(p, ber_help="comma-separated bit error rates, each in (0, 1]")


def run(a: argparse.Namespace) -> dict:
    """One campaign per rate; per model the mean accuracy and its CI at every rate."""
    from sar_core.analysis.sweeps import iter_sweep, sweep_curves
    from sar_core.cli.common import Progress, UsageError, number
    from sar_core.cli.faultargs import campaign_setup, engine_options

    if a.ber is None:
        raise UsageError("Invalid ber=None: sweep needs --ber P1,P2,... (values in (0, 1])")
    bers = [number("ber", b) for b in a.ber.split(",")]
    a.ber = str(bers[0])
    cks, data, fm, trials, seed = campaign_setup(a, a.models)
    bar = Progress(len(bers), "sweep", a.quiet)
    models = [c.model for c in cks]
    levels = iter_sweep(
        models, data.X_test, data.y_test, fm, bers=bers, trials=trials, seed=seed,
        **engine_options(fm, data),
    )  # fmt: skip
    curves = sweep_curves(_progress(levels, bar))
    keys = ("mean_accuracy", "ci95_low", "ci95_high")
    per = [
        {"path": p, "method": c.method, **{k: m[k] for k in keys}}
        for p, c, m in zip(a.models, cks, curves["models"])
    ]
    # the rates are "ber" above: the fault model without one (its first rate would mislead)
    shared = {k: v for k, v in fm.to_dict().items() if k != "ber"}
    return {"ber": bers, "models": per, "trials": trials, "fault_model": shared}


def _progress(levels, bar):
    """Pass the sweep's points through, advancing the bar after each."""
    for i, point in enumerate(levels, 1):
        yield point
        bar(i)
