"""Markdown tables of the task suite's results (README headline and appendix).

Every interval shown is the seed-level 95% CI of the method - SGD difference (Student t over the
held-out seeds' mean differences) and every ▲/▼/· its verdict (``sar_core.stats.verdicts``); the
fault-pattern-only interval is shown beside it, labelled, in the appendix.
"""

from __future__ import annotations

import math

from sar_core.experiments.suite import headline, method_label, result_rows
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
