"""Write studies/suite.toml: the held-out stage of the SAR task suite as a study.

The spec is ``sar_core.experiments.suite_spec.heldout_spec`` — the very text
``benchmarks/suite.py`` runs through the study runner — built from a suite results file (its targets, tuned values and
configuration), so `python -m sar_core study run studies/suite.toml` reproduces the suite's
held-out models and campaigns (the target search and tuning stage are not part of it).

Without a results file the spec is written as PROVISIONAL (fixed targets int8 BER 0.01, int8 per
channel 0.03, float16 1e-4; asam_tuned at rho 1.0), said so in the file.

Run:  python studies/make_suite.py [--results benchmarks/results/suite.json]
      [--out studies/suite.toml] [--tasks wine_mlp,moons_mlp]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sar_core.experiments.suite_config import (  # noqa: E402
    TASKS,
    TUNED,
    SuiteConfig,
    with_overrides,
)
from sar_core.experiments.suite_results import RESULTS_PATH, SCHEMA, load_results  # noqa: E402
from sar_core.experiments.suite_spec import heldout_spec  # noqa: E402

PROVISIONAL = {"int8": 0.01, "int8_channel": 0.03, "float16": 1e-4}


def _config(results: dict | None) -> SuiteConfig:
    if results is None or results.get("schema") != SCHEMA:
        return SuiteConfig()
    c = dict(results["config"])
    tuples = ("tasks", "methods", "tuned", "aimed", "targets", "tuning_seeds", "heldout_seeds")
    for k in (*tuples, "int8_grid", "f16_grid"):
        c[k] = tuple(c[k])
    c["grids"] = {k: tuple(v) for k, v in c["grids"].items()}
    return SuiteConfig(**c)


def _prepared(results: dict | None, cfg: SuiteConfig) -> tuple[list[dict], bool]:
    if results is not None and results.get("schema") == SCHEMA:
        return [t for t in results["tasks"] if t["task"] in cfg.tasks], False
    out = []
    for task in cfg.tasks:
        dataset, arch = TASKS[task]
        targets = {t: {"ber": PROVISIONAL[t]} for t in cfg.targets}
        selected = {k: {TUNED[k][1]: 1.0} for k in cfg.tuned}
        out.append(
            {
                "task": task,
                "dataset": dataset,
                "arch": arch,
                "targets": targets,
                "selected": selected,
            }
        )
    return out, True


def build(results: dict | None, tasks: tuple[str, ...] | None = None) -> str:
    """The TOML text of the suite study (``tasks``: a subset of the suite's tasks)."""
    cfg = _config(results)
    if tasks:
        cfg = with_overrides(cfg, tasks=tuple(tasks))
    prepared, provisional = _prepared(results, cfg)
    created = f"(results created {results.get('created', '?')})" if results else ""
    text = heldout_spec(cfg, prepared, created=created)
    if provisional:
        text = (
            "# PROVISIONAL: no suite results file (schema 2) yet: fixed targets and asam_tuned at\n"
            "# rho 1.0. Regenerate after `python benchmarks/suite.py`.\n" + text
        )
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(RESULTS_PATH))
    ap.add_argument("--out", default=str(ROOT / "studies" / "suite.toml"))
    ap.add_argument("--tasks", default=None, help=f"comma list from {','.join(TASKS)}")
    a = ap.parse_args(argv)
    p = Path(a.results)
    results = load_results(p) if p.is_file() else None
    try:
        text = build(results, tuple(a.tasks.split(",")) if a.tasks else None)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from sar_core.experiments.study.spec import parse_spec

    parse_spec(text)  # the written spec must validate
    Path(a.out).write_text(text)
    print(f"wrote {a.out} ({'from ' + str(p) if results else 'PROVISIONAL: no results file'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
