"""A suite ``--variants`` run as a table: per task, Δ vs sgd with a seed-level 95% interval.

Run:  python scripts/variants_table.py benchmarks/results/fault_mean_heldout.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sar_core.stats.intervals import seed_level_interval  # noqa: E402
from sar_core.stats.verdicts import verdict  # noqa: E402

MARK = {"win": "▲", "loss": "▼", "tie": "·"}


def table(rows: list[dict]) -> list[str]:
    """Markdown lines: one row per task, one column per variant, and the means."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    variants = [v for v in dict.fromkeys(r["variant"] for r in rows) if v != "sgd"]
    by = {(r["task"], r["variant"]): r for r in rows}
    cols = " | ".join(f"{v}: Δ robust [95% CI over seeds] / Δ clean" for v in variants)
    out = [f"| task | SGD clean / robust % | {cols} |", "|---" * (2 + len(variants)) + "|"]
    deltas = {v: [] for v in variants}
    cleans = {v: [] for v in variants}
    counts = {v: {"win": 0, "tie": 0, "loss": 0} for v in variants}
    for task in tasks:
        sgd = by[(task, "sgd")]
        cells = []
        for v in variants:
            r = by[(task, v)]
            d = np.array(r["robust_per_seed"]) - np.array(sgd["robust_per_seed"])
            ci = seed_level_interval(list(d))
            vd = verdict(ci.lo, ci.hi)
            counts[v][vd] += 1
            clean = r["clean"] - sgd["clean"]
            deltas[v].append(d.mean())
            cleans[v].append(clean)
            cells.append(f"{d.mean():+.1f} [{ci.lo:+.1f}, {ci.hi:+.1f}] {MARK[vd]} / {clean:+.1f}")
        out.append(f"| {task} | {sgd['clean']:.1f} / {sgd['robust']:.1f} | {' | '.join(cells)} |")
    means = " | ".join(
        f"**{np.mean(deltas[v]):+.2f}** (▲/·/▼ {counts[v]['win']}/{counts[v]['tie']}/"
        f"{counts[v]['loss']}) / clean {np.mean(cleans[v]):+.2f}, worst {min(cleans[v]):+.2f}"
        for v in variants
    )
    out.append(f"| **mean** | | {means} |")
    return out


if __name__ == "__main__":
    print("\n".join(table(json.loads(Path(sys.argv[1]).read_text()))))
