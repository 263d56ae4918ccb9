"""Markdown tables of the task suite's results (README headline and appendix).

Every interval shown is the seed-level 95% CI of the method - SGD difference (Student t over the
held-out seeds' mean differences) and every ▲/▼/· its verdict (``sar_core.stats.verdicts``); the
fault-pattern-only interval is shown beside it, labelled, in the appendix.
"""

from __future__ import annotations

import math

from sar_core.experiments.suite_results import headline, method_label, result_rows
from sar_core.stats.verdicts import symbol


def _ci(lo: float, hi: float) -> str:
    return f"[{lo:+.1f}, {hi:+.1f}]" if math.isfinite(lo) and math.isfinite(hi) else "[n/a]"


def _fmt_ci(r: dict) -> str:
    if r["method"] == "sgd":
        return ""
    return f"{r['delta']:+.1f} {_ci(r['ci95_low'], r['ci95_high'])}"


def compact_table(results: dict, setting: str = "int8") -> str:
    """Headline: per task, SGD's clean / robust accuracy and every method's delta and verdict."""
    rows = result_rows(results, setting)
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "sgd"]
    head = f"| task (test n) | {setting} BER (SGD loss) | SGD clean / robust % | "
    lines = [head + " | ".join(methods) + " |", "|---" * (3 + len(methods)) + "|"]
    for t in results["tasks"]:
        tg, r = t["targets"][setting], t["methods"]
        cells = [
            f"{r[m][setting]['delta']:+.1f} {symbol(r[m][setting]['verdict'])}" for m in methods
        ]
        lines.append(
            f"| {t['task']} ({t['n_test']}) | {tg['ber']:.3g} ({tg['sgd_loss_pt']:.1f} pt) "
            f"| {r['sgd']['clean']:.1f} / {r['sgd'][setting]['robust']:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def summary_table(results: dict, setting: str = "int8") -> str:
    """Per method, over tasks: mean delta, seed-level wins / ties / losses, clean deltas."""
    lines = [
        "| method | what it is | mean Δ (pt) | ▲ / · / ▼ (seed-level) | mean clean Δ | worst clean Δ |",
        "|---|---|---|---|---|---|",
    ]
    worst = {}
    for m in {r["method"] for r in result_rows(results, setting)}:
        worst[m] = min(t["methods"][m]["clean_delta"] for t in results["tasks"])
    for h in headline(results, setting):
        lines.append(
            f"| {h['method']} | {h['label']} | {h['mean_delta']:+.2f} "
            f"| {h['wins']} / {h['ties']} / {h['losses']} | {h['mean_clean_delta']:+.2f} "
            f"| {worst[h['method']]:+.2f} |"
        )
    return "\n".join(lines)


def markdown_table(results: dict, setting: str = "int8") -> str:
    """Per task and method: clean / robust accuracy and the delta vs SGD with its seed-level CI."""
    lines = [
        f"| task (test n) | {setting} BER (SGD loss) | method | clean % | clean Δ | robust % "
        "| Δ vs SGD [95% CI over seeds] | fault-only CI |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result_rows(results, setting):
        fault = "" if r["method"] == "sgd" else _ci(r["fault_ci95_low"], r["fault_ci95_high"])
        lines.append(
            f"| {r['task']} ({r['n_test']}) | {r['ber']:.3g} ({r['sgd_loss_pt']:.1f} pt) "
            f"| {r['method']} | {r['clean']:.1f} | {r['clean_delta']:+.1f} | {r['robust']:.1f} "
            f"| {_fmt_ci(r)} | {fault} |"
        )
    return "\n".join(lines) + "\n\n" + summary_table(results, setting)


def markdown_details(results: dict) -> str:
    """Targets, tuned values and per-seed deltas of every task (results appendix)."""
    targets = list(results["tasks"][0]["targets"])
    head = " | ".join(f"{s} BER (SGD loss)" for s in targets)
    lines = [
        f"| task | n train / test (pt per sample) | {head} | tuned on tuning seeds |",
        "|---|---|" + "---|" * len(targets) + "---|",
    ]
    for t in results["tasks"]:
        tg = t["targets"]
        sel = "; ".join(
            f"{m} " + ", ".join(f"{k}={v:g}" for k, v in p.items())
            for m, p in t["selected"].items()
            if p
        )
        cells = " | ".join(
            f"{tg[s]['ber']:.3g} ({tg[s]['sgd_loss_pt']:.1f} pt"
            f"{'' if tg[s]['in_band'] else ' out of 5-30 band'})"
            for s in targets
        )
        lines.append(
            f"| {t['task']} | {t['n_train']} / {t['n_test']} ({t['pt_per_sample']:.2f}) "
            f"| {cells} | {sel} |"
        )
    lines += [
        "",
        "| task | method | " + " | ".join(f"{s} Δ per held-out seed" for s in targets) + " |",
        "|---|---|" + "---|" * len(targets),
    ]
    for t in results["tasks"]:
        for m, r in t["methods"].items():
            if m == "sgd":
                continue
            per = [", ".join(f"{d:+.1f}" for d in r[s]["delta_per_seed"]) for s in targets]
            lines.append(
                f"| {t['task']} | {m} ({method_label(results, m)}) | " + " | ".join(per) + " |"
            )
    return "\n".join(lines)


def _worst_clean(results: dict, m: str) -> tuple[float, str]:
    rows = [(t["methods"][m]["clean_delta"], t["task"]) for t in results["tasks"]]
    return min(rows)


def suite_command(results: dict) -> str:
    """The command that reruns the suite of ``results``: its settings that differ from
    ``SuiteConfig``'s defaults, as benchmarks/suite.py options."""
    from sar_core.experiments.suite_config import SuiteConfig

    c, d = results["config"], SuiteConfig()
    opts = [f"--workers {results.get('workers', 1)}"]
    if tuple(c["tasks"]) != tuple(d.tasks):
        opts.append(f"--tasks {','.join(c['tasks'])}")
    if tuple(c["heldout_seeds"]) != tuple(d.heldout_seeds):
        opts.append(f"--seeds {','.join(map(str, c['heldout_seeds']))}")
    if c["epochs"] != d.epochs:
        opts.append(f"--epochs {c['epochs']}")
    if c["trials_eval"] != d.trials_eval:
        opts.append(f"--trials {c['trials_eval']}")
    return "python benchmarks/suite.py " + " ".join(opts)


def protocol_text(results: dict) -> str:
    """What was run, from the results file itself (README paragraph)."""
    c = results["config"]
    la = results.get("load_average", {})
    minutes = results.get("run_seconds", float("nan")) / 60
    targets = ", ".join(results["tasks"][0]["targets"])
    tuned = ", ".join(f"{k} {v}" for k, v in c.get("grids", {}).items())
    return (
        f"Run: `{suite_command(results)}` "
        f"({minutes:.0f} min on the shared 2-core machine, load average "
        f"{la.get('start', float('nan')):.1f} -> {la.get('end', float('nan')):.1f}; created "
        f"{results.get('created', '?')}). {len(c['tasks'])} tasks; targets {targets}, each fixed "
        f"on tuning seeds {c['tuning_seeds']}; every method at its library defaults, plus tuned "
        f"entries ({tuned}) chosen on the tuning seeds; {c['epochs']} epochs, lr {c['lr']}; "
        f"held-out seeds {c['heldout_seeds']} ({len(c['heldout_seeds'])} models per method and "
        f"task), {c['trials_eval']} fault patterns per seed and target, shared by all methods of "
        "that seed. Δ = method − SGD (points); [CI] = 95% Student-t interval over the per-seed "
        "mean differences (training-seed spread included); ▲ CI above 0, ▼ below, · spans 0."
    )


def claims(results: dict) -> list[str]:
    """The issue's targets, each stated with its numbers and met / MISSED (README bullets)."""
    out = []
    for target in results["tasks"][0]["targets"]:
        heads = {h["method"]: h for h in headline(results, target)}
        sar_name = "sar" if target == "int8" else f"sar@{target}"
        sar = heads.get(sar_name) or heads.get("sar")
        if sar is None:
            continue
        best = max(heads.values(), key=lambda h: h["mean_delta"])
        tuned = heads.get("asam_tuned")
        worst, wtask = _worst_clean(results, sar["method"])
        ok1 = sar["mean_delta"] >= best["mean_delta"] - 1
        out.append(
            f"{target}: default SAR ({sar['method']}) mean Δ {sar['mean_delta']:+.2f}; best "
            f"{best['method']} {best['mean_delta']:+.2f} — {'met' if ok1 else 'MISSED'} "
            "(within 1 point of the best method)."
        )
        if tuned is not None:
            ok = sar["mean_delta"] >= tuned["mean_delta"]
            out.append(
                f"{target}: default SAR {sar['mean_delta']:+.2f} vs tuned ASAM "
                f"{tuned['mean_delta']:+.2f} — {'met' if ok else 'MISSED'} (≥ tuned ASAM)."
            )
        ok2 = sar["losses"] == 0
        out.append(
            f"{target}: default SAR ▲/·/▼ {sar['wins']}/{sar['ties']}/{sar['losses']} — "
            f"{'met' if ok2 else 'MISSED'} (no task significantly worse than SGD)."
        )
        ok3 = sar["mean_clean_delta"] >= -0.3 and worst >= -1
        out.append(
            f"{target}: default SAR clean Δ mean {sar['mean_clean_delta']:+.2f}, worst "
            f"{worst:+.2f} ({wtask}) — {'met' if ok3 else 'MISSED'} (mean ≥ −0.3, none below −1)."
        )
    target = "int8"
    bad_clean, bad_loss = [], []
    for t in results["tasks"]:
        for m, r in t["methods"].items():
            if m == "sgd" or "@" in m or m in results["config"].get("tuned", ()):
                continue
            if r["clean_delta"] < -1:
                bad_clean.append(f"{m} on {t['task']} {r['clean_delta']:+.1f}")
            if r[target]["verdict"] == "loss":
                bad_loss.append(f"{m} on {t['task']} {r[target]['delta']:+.1f}")
    out.append(
        "Every method at its defaults keeps clean Δ ≥ −1 on every task — "
        + ("met." if not bad_clean else f"MISSED: {'; '.join(bad_clean)}.")
    )
    out.append(
        "No method at its defaults significantly worse than SGD at the int8 target — "
        + ("met." if not bad_loss else f"MISSED: {'; '.join(bad_loss)}.")
    )
    return out


def readme_blocks(results: dict) -> dict[str, str]:
    """The README's generated blocks (name -> Markdown), all computed from the results file."""
    blocks = {"suite-protocol": protocol_text(results)}
    for target in results["tasks"][0]["targets"]:
        blocks[f"suite-{target}"] = (
            compact_table(results, target) + "\n\n" + summary_table(results, target)
        )
    blocks["suite-claims"] = "\n".join(f"- {c}" for c in claims(results))
    return blocks
