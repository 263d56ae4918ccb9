"""inject: Monte Carlo fault injection on one model."""

from __future__ import annotations

import argparse

from sar_core.cli.faultargs import add_fault_arguments

KEYS = (
    "clean_accuracy",
    "deployed_accuracy",
    "mean_accuracy",
    "std",
    "ci95",
    "trials",
    "mean_flips",
    "n_sites",
    "quantiles",
    "fault_model",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the inject command."""
    p.add_argument("--model", required=True)
    add_fault_arguments(p, ber_help="bit error rate in (0, 1]")


def run(a: argparse.Namespace) -> dict:
    """Run the campaign with a progress bar; its summary."""
    from sar_core.analysis.campaign import run_campaign
    from sar_core.cli.common import Progress
    from sar_core.cli.faultargs import campaign_setup, engine_options, summary_keys

    cks, data, fm, trials, seed = campaign_setup(a, [a.model])
    options = engine_options(fm, data)
    bar = Progress(trials, "inject", a.quiet, min_interval_s=0.1)
    res = run_campaign(
        cks[0].model, data.X_test, data.y_test, fm, trials=trials, seed=seed, progress=bar,
        **options,
    )  # fmt: skip
    return summary_keys(res.summary(), KEYS)
