"""compare: paired comparison of models under identical fault patterns."""

from __future__ import annotations

import argparse

from sar_core.cli.faultargs import add_fault_arguments

KEYS = (
    "clean_accuracy",
    "deployed_accuracy",
    "mean_accuracy",
    "std",
    "ci95",
    "mean_flips",
    "n_sites",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the compare command."""
    p.add_argument("--models", nargs="+", required=True)
    add_fault_arguments(p, ber_help="bit error rate in (0, 1]")


def run(a: argparse.Namespace) -> dict:
    """Every model under the same patterns; per-model summaries and paired differences."""
    from sar_core.analysis.campaign import compare
    from sar_core.cli.common import Progress
    from sar_core.cli.faultargs import campaign_setup, engine_options, summary_keys

    cks, data, fm, trials, seed = campaign_setup(a, a.models)
    # The bar is drawn only after the first trial: input errors surface before any output, so
    # bad input leaves exactly one line on stderr.
    options = engine_options(fm, data)
    bar = Progress(trials, "compare", a.quiet, min_interval_s=0.1)
    out = compare(
        [c.model for c in cks], data.X_test, data.y_test, fm, trials=trials, seed=seed,
        progress=bar, **options,
    )  # fmt: skip
    runs = out["results"]
    results = [
        {"path": path, "method": ck.method, "label": ck.label, **summary_keys(r.summary(), KEYS)}
        for path, ck, r in zip(a.models, cks, runs)
    ]
    return {
        "results": results,
        "paired_difference": out["paired_difference"],
        "trials": trials,
        "fault_model": fm.to_dict(),
    }
