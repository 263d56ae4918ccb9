"""Markdown tables of the task suite's results (README headline and appendix)."""

from __future__ import annotations

import math

from sar_core.experiments.suite import result_rows


def _fmt_ci(r: dict) -> str:
    if r["method"] == "sgd":
        return ""
    lo, hi = r["ci95_low"], r["ci95_high"]
    ci = f"[{lo:+.1f}, {hi:+.1f}]" if math.isfinite(lo) else "[n/a]"
    return f"{r['delta']:+.1f} {ci}"


def markdown_table(results: dict, setting: str = "int8") -> str:
    """README table: per task and method, clean / robust accuracy and paired delta vs SGD."""
    lines = [
        f"| task (test n) | {setting} BER (SGD loss) | method | clean % | clean Δ | robust % "
        "| Δ vs SGD [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result_rows(results, setting):
        lines.append(
            f"| {r['task']} ({r['n_test']}) | {r['ber']:.3g} ({r['sgd_loss_pt']:.1f} pt) "
            f"| {r['method']} | {r['clean']:.1f} | {r['clean_delta']:+.1f} | {r['robust']:.1f} "
            f"| {_fmt_ci(r)} |"
        )
    lines += ["", "| method | mean Δ (pt) | wins / ties / losses | mean clean Δ | worst clean Δ |"]
    lines.append("|---|---|---|---|---|")
    for m, s in results["summary"][setting].items():
        lines.append(
            f"| {m} | {s['mean_delta']:+.2f} | {s['wins']} / {s['ties']} / {s['losses']} "
            f"| {s['mean_clean_delta']:+.2f} | {s['min_clean_delta']:+.2f} |"
        )
    return "\n".join(lines)


def markdown_details(results: dict) -> str:
    """Targets, selected hyperparameters and per-seed deltas of every task (results appendix)."""
    lines = [
        "| task | n train / test (pt per sample) | int8 BER (SGD loss) | float16 BER (SGD loss) "
        "| selected on tuning seeds |",
        "|---|---|---|---|---|",
    ]
    for t in results["tasks"]:
        tg = t["targets"]
        sel = "; ".join(
            f"{m} " + ", ".join(f"{k}={v:g}" for k, v in p.items())
            for m, p in t["selected"].items()
            if p
        )
        band = {s: "" if tg[s]["in_band"] else " out of 5-30 band" for s in tg}
        lines.append(
            f"| {t['task']} | {t['n_train']} / {t['n_test']} ({t['pt_per_sample']:.2f}) "
            f"| {tg['int8']['ber']:.3g} ({tg['int8']['sgd_loss_pt']:.1f} pt{band['int8']}) "
            f"| {tg['float16']['ber']:.3g} ({tg['float16']['sgd_loss_pt']:.1f} pt"
            f"{band['float16']}) | {sel} |"
        )
    lines += [
        "",
        "| task | method | int8 Δ per held-out seed | float16 Δ per held-out seed |",
        "|---|---|---|---|",
    ]
    for t in results["tasks"]:
        for m, r in t["methods"].items():
            if m == "sgd":
                continue
            per = {
                s: ", ".join(f"{d:+.1f}" for d in r[s]["delta_per_seed"])
                for s in ("int8", "float16")
            }
            lines.append(f"| {t['task']} | {m} | {per['int8']} | {per['float16']} |")
    return "\n".join(lines)
