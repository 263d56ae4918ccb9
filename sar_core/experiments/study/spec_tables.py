"""The small top-level tables of a study spec: [campaign], [sharpness], [report], [execution].

Each parser takes the TOML table and returns the validated settings (``ValueError`` naming the
key, the value and where); ``where_keys`` and ``wrap`` are the checks every table of a spec uses
(``sar_core.experiments.study.spec`` parses the rest). The reference of every key is
docs/studies.md.
"""

from __future__ import annotations

from typing import Any

from sar_core import limits
from sar_core.validate import check_choice, check_float, check_int

SHARPNESS_MEASURES = ("sam", "asam", "avg", "lambda_max", "trace", "none")
REPORT_KEYS = (
    "mitigations",
    "base",
    "attack_target",
    "attack_budget",
    "attack_batch",
    "attack_candidates",
)


def where_keys(table: Any, allowed, where: str) -> dict:
    """``table`` if it is a table whose keys are all ``allowed``; else a ValueError naming it."""
    if not isinstance(table, dict):
        raise ValueError(f"Invalid {where}: expected a table, got {table!r}")
    for k in table:
        if k not in allowed:
            raise ValueError(
                f"Invalid key {k!r} in {where}: allowed keys are {', '.join(sorted(allowed))}"
            )
    return table


def wrap(where: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, with a ValueError / TypeError re-raised prefixed by ``where``."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: {' '.join(str(e).split())}") from None


def sharpness_table(t: Any) -> dict:
    t = where_keys(t, ("measure", "rho", "samples"), "sharpness")
    return {
        "measure": wrap(
            "sharpness", check_choice, "measure", t.get("measure", "sam"), SHARPNESS_MEASURES
        ),
        "rho": wrap("sharpness", check_float, "rho", t.get("rho", 0.05), low=0.0, low_open=True),
        "samples": wrap("sharpness", check_int, "samples", t.get("samples", 512), low=2),
    }


def report_table(t: Any, methods: tuple[str, ...]) -> dict:
    """[report]: settings of sar_core.experiments.report (trials and seed come from [campaign])."""
    from sar_core.analysis.attack import check_attack_settings
    from sar_core.experiments.report import MITIGATIONS

    t = where_keys(t, REPORT_KEYS, "report")
    mits = t.get("mitigations", [])
    if not isinstance(mits, list):
        raise ValueError(f'Invalid report.mitigations={mits!r}: give a list, e.g. ["range"]')
    for m in mits:
        wrap("report", check_choice, "mitigations", m, MITIGATIONS)
    base = t.get("base")
    if base is not None:
        base = wrap("report", check_choice, "base", base, methods)
    attack = {
        "target_accuracy": t.get("attack_target"),
        "max_flips": t.get("attack_budget", 1000),
        "batch_size": t.get("attack_batch", 128),
        "candidates": t.get("attack_candidates", 1),
    }
    wrap("report", lambda: check_attack_settings(**attack))
    return {"mitigations": list(dict.fromkeys(mits)), "base": base, "attack": attack}


def campaign_table(t: Any, methods: tuple[str, ...]) -> dict:
    camp = where_keys(t, ("trials", "seed", "add_run_seed", "reference"), "campaign")
    add_run_seed = camp.get("add_run_seed", False)
    if not isinstance(add_run_seed, bool):
        raise ValueError(f"Invalid campaign.add_run_seed={add_run_seed!r}: must be true or false")
    trials = camp.get("trials", 100)
    return {
        "trials": wrap("campaign", check_int, "trials", trials, low=1, high=limits.MAX_TRIALS),
        "campaign_seed": wrap(
            "campaign", check_int, "seed", camp.get("seed", 0), low=0, high=2**63 - 1
        ),
        "add_run_seed": add_run_seed,
        "reference": wrap(
            "campaign", check_choice, "reference", camp.get("reference", methods[0]), methods
        ),
    }


def execution_table(t: Any) -> dict:
    exe = where_keys(t, ("cpus_per_task", "max_retries"), "execution")
    return {
        "cpus_per_task": wrap(
            "execution", check_float, "cpus_per_task", exe.get("cpus_per_task", 1), low=0.01
        ),
        "max_retries": wrap(
            "execution", check_int, "max_retries", exe.get("max_retries", 2), low=0, high=10
        ),
    }
