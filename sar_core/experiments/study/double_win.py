"""The double-win report as a study: its tables.

A spec with a ``[report]`` table gets one ``report`` task per task, seed and fault point
(``worker.report_task``): the report of ``sar_core.experiments.report.double_win_report`` over
every method's model of that seed (the reference method first, the others in spec order), with
the spec's campaign trials and the seed's campaign seed for the fault patterns and the attack
batch. Its columns are defined once, in ``sar_core.analysis.robustness`` (clean / deployed /
faulty accuracy, paired Δ, extra bits and ops, latency, training cost) and
``sar_core.experiments.report`` (attack flips, mitigation rows); this module only tabulates what
the reports returned.

Tables: ``report_rows`` (one row per task x seed x fault point x model or mitigation) and
``summary_rows`` (one row per task x fault point x model or mitigation: means over seeds and the
Δ vs the reference with a seed-level 95% interval, ``sar_core.stats.seed_level_interval``, and
its verdict, and the double win judged over seeds); ``caption``, ``readme_table`` and
``claims`` write them for the README (``readme_blocks``). Latency and training cost are measured
(wall clock), so they are kept out of the study's Parquet tables (``MEASURED``), which stay
identical across executors and reruns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from sar_core.experiments.study.cache import Store, numbers
from sar_core.experiments.study.plan import Plan, ReportRef
from sar_core.names import TARGETED  # methods trained against a target fault model

MEASURED = ("latency_ms", "latency_ratio", "train_cost_ratio")


# ---------------------------------------------------------------- tables ----------------------


def _name(row: dict) -> str:
    """The study's method name of a row; a mitigation row: '<base>+<mitigation>'."""
    if "mitigation" not in row:
        return row["path"]
    return f"{row['path']}+{row['method'].split('+', 1)[1]}"


def _row(ref: ReportRef, row: dict, reference: str) -> dict:
    d = row["paired_difference"]
    attack = row.get("attack") or {}
    rand = attack.get("random_same_flips") or {}
    return {
        "task": ref.task,
        "seed": ref.seed,
        "fault": ref.point.setting,
        "level": ref.point.level,
        "level_label": ref.point.label,
        "name": _name(row),
        "optimizer": row["method"].split("+", 1)[0],
        "mitigation": row.get("mitigation"),
        "reference": reference if "mitigation" not in row else row["path"],
        "clean_accuracy": row["clean_accuracy"],
        "deployed_accuracy": row["deployed_accuracy"],
        "fault_accuracy": row["fault_accuracy"],
        "fault_ci95_low": row["fault_ci95"][0],
        "fault_ci95_high": row["fault_ci95"][1],
        "delta": d["mean"],
        "delta_ci95_low": d["ci95"][0],
        "delta_ci95_high": d["ci95"][1],
        "attack_flips": row["attack_flips"],
        "attack_stop": attack.get("stop_reason"),
        "random_same_flips_accuracy": rand.get("mean_accuracy"),
        "extra_bits": row["extra_bits"],
        "extra_params": row["extra_params"],
        "extra_ops": row["extra_ops"],
        "base_macs": row["base_macs"],
        **{k: row.get(k) for k in MEASURED},
    }


def report_rows(plan: Plan, store: Store, *, measured: bool = True) -> list[dict]:
    """One row per task x seed x fault point x model (then mitigation) of every finished report
    task; ``measured=False`` leaves out the wall-clock columns (``MEASURED``)."""
    out = []
    for ref in plan.reports:
        task = plan.tasks[ref.key]
        if not store.has(task):
            continue
        rep = numbers(store.load(task))  # NaN bounds (one trial) come back as floats
        for row in rep["rows"] + rep["mitigations"]:
            r = _row(ref, row, plan.spec.reference)
            out.append(r if measured else {k: v for k, v in r.items() if k not in MEASURED})
    return out


def _mean(values) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def summary_rows(rows: Sequence[dict]) -> list[dict]:
    """Per task x fault point x model or mitigation: means over seeds, attack flips per seed, and
    the paired Δ vs the reference with its seed-level 95% interval and verdict."""
    from sar_core.stats.intervals import seed_level_interval
    from sar_core.stats.verdicts import verdict

    cells: dict[tuple, list[dict]] = {}
    clean = {}  # (task, seed, fault, level, name) -> clean accuracy: the references' per seed
    for r in rows:
        cells.setdefault((r["task"], r["fault"], r["level"], r["name"]), []).append(r)
        clean[(r["task"], r["seed"], r["fault"], r["level"], r["name"])] = r["clean_accuracy"]
    out = []
    for (task, fault, level, name), rs in cells.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        first = rs[0]
        is_ref = first["mitigation"] is None and name == first["reference"]
        delta = None if is_ref else seed_level_interval([r["delta"] for r in rs])
        cd = None
        if not is_ref:  # clean accuracy vs the reference's, same seed (not paired by faults)
            ref = [clean[(task, r["seed"], fault, level, r["reference"])] for r in rs]
            cd = seed_level_interval([r["clean_accuracy"] - c for r, c in zip(rs, ref)])
        out.append(
            {
                "task": task,
                "fault": fault,
                "level": level,
                "level_label": first["level_label"],
                "name": name,
                "optimizer": first["optimizer"],
                "mitigation": first["mitigation"],
                "reference": first["reference"],
                "seeds": [r["seed"] for r in rs],
                **{
                    k: _mean(r[k] for r in rs)
                    for k in ("clean_accuracy", "deployed_accuracy", "fault_accuracy")
                },
                "delta": None if delta is None else delta.to_dict(),
                "delta_per_seed": [r["delta"] for r in rs],
                "verdict": None if delta is None else verdict(delta.lo, delta.hi),
                "clean_delta": None if cd is None else cd.to_dict(),
                "clean_verdict": None if cd is None else verdict(cd.lo, cd.hi),
                "attack_flips_per_seed": [r["attack_flips"] for r in rs],
                "attack_stop_per_seed": [r["attack_stop"] for r in rs],
                "random_same_flips_accuracy": _mean(r["random_same_flips_accuracy"] for r in rs),
                **{k: _mean(r[k] for r in rs) for k in ("extra_bits", "extra_params", "extra_ops")},
                **{k: _mean(r.get(k) for r in rs) for k in MEASURED},
            }
        )
    for row in out:
        row["double_win"] = double_win(row)
    return out


def double_win(row: dict) -> bool | None:
    """The double win of sar_core.analysis.robustness judged over seeds: accuracy under faults
    gained (Δ's seed-level interval above zero), clean accuracy kept (its interval vs the
    reference not below zero) and no inference cost (zero extra bits and operations); None for
    the reference itself."""
    if row["verdict"] is None:
        return None
    free = row["extra_bits"] == 0 and row["extra_ops"] == 0
    return row["verdict"] == "win" and row["clean_verdict"] != "loss" and free


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def _flips(flips: int | None, stop: str | None, budget: int) -> str:
    if flips is not None:
        return str(flips)
    return "n/a" if stop is None else f">{budget}"  # no int8 attack / the budget ran out


def _delta_cell(r: dict) -> str:
    """'+1.2 [+1.1, +1.4] win' (points, seed-level interval, verdict), or '—' for the reference."""
    d = r["delta"]
    if d is None:
        return "—"
    return f"{100 * d['mean']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] {r['verdict']}"


def _flips_cell(r: dict, budget: int) -> str:
    """The attack's flips per seed, '>budget' where the budget ran out."""
    pairs = zip(r["attack_flips_per_seed"], r["attack_stop_per_seed"])
    return ", ".join(_flips(f, s, budget) for f, s in pairs)


def _num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _columns(attack_budget: int) -> dict:
    """Header -> cell of one summary row, for every column either table shows."""
    return {
        "task": lambda r: r["task"],
        "model": lambda r: r["name"],
        "task model": lambda r: f"{r['task']} {r['name']}",
        "clean": lambda r: _pct(r["clean_accuracy"]),
        "deployed": lambda r: _pct(r["deployed_accuracy"]),
        "under faults": lambda r: _pct(r["fault_accuracy"]),
        "delta": _delta_cell,
        "attack flips per seed": lambda r: _flips_cell(r, attack_budget),
        "random flips, same count": lambda r: _pct(r["random_same_flips_accuracy"]),
        "extra bits": lambda r: _num(r["extra_bits"], "{:.0f}"),
        "extra ops": lambda r: _num(r["extra_ops"], "{:.0f}"),
        "latency": lambda r: _num(r["latency_ratio"]),
        "train time": lambda r: _num(r["train_cost_ratio"]),
    }


def _table(summary: Sequence[dict], attack_budget: int, keys: Sequence[str], heads) -> str:
    """Markdown table of ``keys`` columns (cells from ``_columns``) under the headers ``heads``."""
    cells = _columns(attack_budget)
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines += ["| " + " | ".join(cells[k](r) for k in keys) + " |" for r in summary]
    return "\n".join(lines)


def markdown_table(summary: Sequence[dict], *, attack_budget: int) -> str:
    """The double-win table (one line per model or mitigation) as Markdown."""
    keys = ("task", "model", "clean", "deployed", "under faults", "delta",
            "attack flips per seed", "random flips, same count", "extra bits", "extra ops",
            "latency", "train time")  # fmt: skip
    heads = [("Δ vs reference [95% CI over seeds]" if k == "delta" else k) for k in keys]
    return _table(summary, attack_budget, keys, heads)


# ---------------------------------------------------------------- README ----------------------


def non_defaults(configs: dict) -> dict[str, dict]:
    """Per '<task>/<method>' config (TrainConfig.to_dict), the fields that differ from the
    library's defaults for that method (epochs, seed and the training target aside: the caption
    states the targets of the methods that read one)."""
    from sar_core.training.loop import TrainConfig

    out = {}
    skip = ("epochs", "seed", "fault_model")
    for name, cfg in configs.items():
        default = TrainConfig(method=cfg["method"], seed=cfg["seed"]).to_dict()
        diff = {k: v for k, v in cfg.items() if k not in skip and default[k] != v}
        if diff:
            out[name] = diff
    return out


def _fault_text(fault: dict, label: str) -> str:
    """'int8 BER 0.01, all bits, weights only' from a FaultModel dict."""
    from sar_core.formats.bits import get_format

    rate = f"BER {label}" if fault.get("ber") is not None else f"{fault.get('count')} flips"
    bits = fault["bits"]
    which = "all bits" if len(bits) == get_format(fault["format"]).width else f"bits {bits}"
    where = fault.get("target", "weights")
    where += " and biases" if fault.get("include_bias") else (" only" if where == "weights" else "")
    return f"{fault['format']} {rate}, {which}, {where}"


def _faults_and_targets(meta: dict) -> tuple[str, str]:
    """The fault settings (per task when they differ) and what the targeted methods aim at."""
    from sar_core.experiments.study.spec import parse_spec

    spec = parse_spec(meta["spec_text"])
    per_task = {
        t.name: "; ".join(_fault_text(p.fault, p.label) for p in t.faults) for t in spec.tasks
    }
    texts = list(dict.fromkeys(per_task.values()))
    faults = texts[0] if len(texts) == 1 else "; ".join(f"{k}: {v}" for k, v in per_task.items())
    aimed, other = [], {}
    points = {t.name: [p.fault for p in t.faults] for t in spec.tasks}
    for name, cfg in meta["configs"].items():
        task, method = name.split("/", 1)
        fm = cfg.get("fault_model")
        if cfg["method"] not in TARGETED or not fm:
            continue
        if fm in points.get(task, []):
            aimed.append(method)
        else:
            other.setdefault(_fault_text(fm, f"{fm['ber']:g}"), []).append(method)
    parts = []
    if aimed:
        parts.append(f"{', '.join(dict.fromkeys(aimed))} trained against the evaluated fault model")
    parts += [f"{', '.join(dict.fromkeys(v))} trained against {k}" for k, v in other.items()]
    return faults, "; ".join(parts)


def caption(meta: dict) -> str:
    """What the table shows, from the results' own metadata (and the spec it stores)."""
    epochs = ", ".join(str(e) for e in meta["epochs"])
    seeds = meta["seeds"]
    changed = non_defaults(meta["configs"])
    settings = (
        "every method at its library defaults (no per-method tuning)"
        if not changed
        else "settings other than the library defaults: "
        + "; ".join(f"{k} {v}" for k, v in changed.items())
    )
    faults, targets = _faults_and_targets(meta)
    if targets:
        settings += f"; {targets}"
    ref = meta["reference"]
    return (
        f"{', '.join(t['name'] for t in meta['tasks'])}; held-out seeds "
        f"{', '.join(map(str, seeds))} ({len(seeds)} seeds), {epochs} epochs, {settings}. "
        f"Faults: {faults}; {meta['trials']} trials per seed, paired across the models of a "
        f"seed. Means over seeds; Δ = paired gain vs {ref} in points with a seed-level 95% "
        f"interval (Student t over the {len(seeds)} per-seed means) and its verdict; attack "
        "flips = progressive bit search flips to reach chance + 10 points on the int8 weights "
        f"(per seed; '>{meta['report']['attack']['max_flips']}' = the budget ran out); latency "
        f"(measured, vs a plain model of the same architecture) and train time relative to {ref}: "
        f"means over seeds. Mitigation rows apply range restriction / TMR to the {ref} model."
    )


def readme_table(summary: Sequence[dict], *, attack_budget: int) -> str:
    """The README's compact double-win table."""
    ref = summary[0]["reference"] if summary else "the reference"
    keys = ("task model", "clean", "under faults", "delta", "attack flips per seed",
            "extra bits", "extra ops", "latency", "train time")  # fmt: skip
    heads = {"task model": "model", "delta": f"Δ vs {ref} [95% CI over seeds]"}
    return _table(summary, attack_budget, keys, [heads.get(k, k) for k in keys])


def _names(rows: Sequence[dict]) -> str:
    return ", ".join(f"{r['name']} ({100 * r['delta']['mean']:+.1f})" for r in rows) or "none"


def _sar_sentence(sar: dict, best: dict, models: Sequence[dict], ref: str) -> str:
    """SAR's rank by mean accuracy under faults and, against the best model, the per-seed
    difference with its seed-level interval (same patterns per seed: Δ_sar - Δ_best)."""
    from sar_core.stats.intervals import seed_level_interval
    from sar_core.stats.verdicts import verdict

    rank = 1 + sum(r["fault_accuracy"] > sar["fault_accuracy"] for r in models)
    ahead = [r["name"] for r in models if r["fault_accuracy"] > sar["fault_accuracy"]]
    text = f"SAR ranks {rank} of {len(models)} trained models by mean accuracy under faults"
    if ahead:
        text += f" (behind {', '.join(ahead)})"
    if best is not sar and best["seeds"] == sar["seeds"]:
        d = seed_level_interval(
            [a - b for a, b in zip(sar["delta_per_seed"], best["delta_per_seed"])]
        )
        text += (
            f"; SAR - {best['name']}: {100 * d.mean:+.1f} [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] "
            f"points ({verdict(d.lo, d.hi)}, seed-level)"
        )
    return text + f"; SAR trains in {_num(sar['train_cost_ratio'])}x {ref}'s time."


def claims(summary: Sequence[dict]) -> str:
    """Who wins where, as sentences computed from the summary (one paragraph per task)."""
    out = []
    for task in dict.fromkeys(r["task"] for r in summary):
        mine = [r for r in summary if r["task"] == task]
        models = [r for r in mine if r["mitigation"] is None]
        ref = next(r for r in models if r["delta"] is None)
        others = sorted(
            (r for r in mine if r["delta"] is not None), key=lambda r: -r["delta"]["mean"]
        )
        wins = [r for r in others if r["verdict"] == "win"]
        ties = [r for r in others if r["verdict"] == "tie"]
        losses = [r for r in others if r["verdict"] == "loss"]
        best = max(models, key=lambda r: r["fault_accuracy"])
        dw = [r["name"] for r in others if r["double_win"]]
        lost = [r["name"] for r in others if r["clean_verdict"] == "loss"]
        text = (
            f"**{task}**: beat {ref['name']} under faults (seed-level interval above zero), "
            f"largest gain first (Δ in points): {_names(wins)}; no measurable difference: "
            f"{_names(ties)}"
            + (f"; worse: {_names(losses)}" if losses else "")
            + f". Highest mean accuracy under faults among the trained models: {best['name']} "
            f"({_pct(best['fault_accuracy'])} % vs {_pct(ref['fault_accuracy'])} %). "
            f"Double win (gain, clean accuracy kept, no extra bits or operations): "
            f"{', '.join(dw) or 'none'}"
            + (f"; clean accuracy measurably lost: {', '.join(lost)}." if lost else ".")
        )
        sar = next((r for r in others if r["name"] == "sar"), None)
        if sar is not None:
            text += " " + _sar_sentence(sar, best, models, ref["name"])
        out.append(text)
    return "\n\n".join(out)


def readme_blocks(results: dict) -> dict[str, str]:
    """The README's generated double-win blocks from a benchmarks/double_win.py results dict."""
    meta, summary = results["meta"], results["summary"]
    budget = meta["report"]["attack"]["max_flips"]
    return {
        "double-win-protocol": caption(meta),
        "double-win": readme_table(summary, attack_budget=budget),
        "double-win-claims": claims(summary),
    }
