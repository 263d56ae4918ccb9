"""Stage 2 of the task suite as a study: the held-out stage written as a study spec (TOML).

``heldout_spec`` is the text ``run_suite`` hands to ``sar_core.experiments.study`` (and
``studies/make_suite.py`` writes to ``studies/suite.toml``); ``entry_config`` gives a held-out
entry's TrainConfig fields on a prepared task.
"""

from __future__ import annotations

import json

from sar_core.experiments.suite_config import (
    TARGETED,
    TARGETS,
    TUNED,
    WIDTHS,
    SuiteConfig,
    target_model,
)


def entry_config(name: str, prepared: dict) -> dict:
    """TrainConfig fields (beyond the shared ones) of a held-out entry on a prepared task."""
    base, _, aim = name.partition("@")
    if base in TUNED:
        return {"method": TUNED[base][0], **prepared["selected"][base]}
    d: dict = {"method": base}
    if base in TARGETED:
        t = aim or "int8"
        d["fault_model"] = target_model(t, prepared["targets"][t]["ber"]).to_dict()
    return d


def _toml(v) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items() if x is not None) + " }"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def heldout_spec(cfg: SuiteConfig, prepared: list[dict], *, created: str = "") -> str:
    """TOML text of the held-out stage as a study (sar_core.experiments.study)."""
    from sar_core.faults.model import FaultModel

    lines = [
        "# The SAR task suite's held-out stage, written by sar_core.experiments.suite from the",
        f"# tuning stage {created}: targets by rule and tuned values on the tuning seeds.",
        'name = "suite"',
        'description = "SAR task suite, held-out seeds: methods at their defaults (and tuned '
        "ASAM), paired against SGD at each task's target fault settings.\"",
        f"seeds = {list(cfg.heldout_seeds)}",
        "",
        "[train]",
        f"epochs = {cfg.epochs}",
        f"lr = {cfg.lr!r}",
        "",
    ]
    for name in cfg.entries:
        base = name.partition("@")[0]
        method = TUNED[base][0] if base in TUNED else base
        lines += ["[[methods]]", f"name = {json.dumps(name)}", f"method = {json.dumps(method)}", ""]
    for p in prepared:
        lines += ["[[tasks]]", f"name = {json.dumps(p['task'])}"]
        lines += [f"dataset = {json.dumps(p['dataset'])}", f"arch = {json.dumps(p['arch'])}"]
        lines.append(f"widths = {list(WIDTHS[p['arch']])}")
        for name in cfg.entries:
            extra = {k: v for k, v in entry_config(name, p).items() if k != "method"}
            if "fault_model" in extra:  # only the fields that differ from FaultModel's defaults
                full, dflt = extra["fault_model"], FaultModel(ber=0.01).to_dict()
                keep = ("format", "ber", "granularity")
                extra["fault_model"] = {
                    k: full[k]
                    for k in keep
                    if full[k] != dflt.get(k, None) or k in ("format", "ber")
                }
            if extra:
                lines.append(f"methods.{json.dumps(name)} = {_toml(extra)}")
        for t in cfg.targets:
            fmt, gran = TARGETS[t]
            lines += ["[[tasks.faults]]", f"name = {json.dumps(t)}", f"format = {json.dumps(fmt)}"]
            if gran != "tensor":
                lines.append(f"granularity = {json.dumps(gran)}")
            lines.append(f"ber = {p['targets'][t]['ber']!r}")
        lines.append("")
    lines += [
        "[campaign]",
        f"trials = {cfg.trials_eval}",
        "seed = 1000          # the campaign seed of run seed s is 1000 + s: paired across methods",
        "add_run_seed = true",
        "",
        "[sharpness]",
        'measure = "none"',
        "",
    ]
    return "\n".join(lines)
