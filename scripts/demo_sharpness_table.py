"""The README's "Loss landscapes and sharpness" table, from its result files.

    python -m sar_core sharpness --model assets/digits_mlp_sgd.safetensors \
        --model assets/digits_mlp_sar.safetensors --seed 0 --format int8 --ber 0.03 \
        --trials 100 --json [--split train]   > benchmarks/results/demo_sharpness/{test,train}_split.json
    python -m sar_core compare --models assets/digits_mlp_sgd.safetensors \
        assets/digits_mlp_sar.safetensors --format int8 --ber 0.03 --trials 100 --seed 0 --json
        > benchmarks/results/demo_sharpness/compare_int8_ber0.03.json
    python scripts/demo_sharpness_table.py          # prints the table (tests compare it to README)
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "demo_sharpness"


def _ci(t: dict, digits: int) -> str:
    return f"{t['mean']:.{digits}f} ({t['ci95'][0]:.{digits}f}, {t['ci95'][1]:.{digits}f})"


def table(results: Path = RESULTS) -> str:
    """Markdown table: SGD vs SAR demo MLP, test and training split."""
    te = json.loads((results / "test_split.json").read_text())
    tr = json.loads((results / "train_split.json").read_text())
    cmp = json.loads((results / "compare_int8_ber0.03.json").read_text())
    diff = cmp["paired_difference"][1]
    acc = [r["mean_accuracy"] for r in cmp["results"]]
    lm, lt = te["lambda_max"], tr["lambda_max"]
    rows = [
        ("λ_max", f"{lm[0]:.2f} vs {lm[1]:.2f}", f"{lt[0]:.3f} vs {lt[1]:.3f}"),
        (
            "Hessian trace (95% CI)",
            f"{_ci(te['trace'][0], 1)} vs {_ci(te['trace'][1], 1)}",
            f"{tr['trace'][0]['mean']:.2f} vs {tr['trace'][1]['mean']:.2f}",
        ),
        (
            f"SAM sharpness, ρ = {te['rho']}",
            f"{te['sam_sharpness'][0]:.4f} vs {te['sam_sharpness'][1]:.4f}",
            f"{tr['sam_sharpness'][0]:.5f} vs {tr['sam_sharpness'][1]:.5f}",
        ),
        (
            "fault sharpness, int8 BER 3% (95% CI)",
            f"{_ci(te['fault_sharpness'][0], 3)} vs {_ci(te['fault_sharpness'][1], 3)}",
            "",
        ),
        (
            f"accuracy under int8 BER 3% ({cmp['trials']} paired trials)",
            f"{100 * acc[0]:.1f}% vs {100 * acc[1]:.1f}% ({100 * diff['mean']:+.1f}, CI "
            f"[{100 * diff['ci95'][0]:+.1f}, {100 * diff['ci95'][1]:+.1f}])",
            "",
        ),
    ]
    head = "| SGD vs SAR | test split | training split |\n|---|---|---|\n"
    return head + "".join(f"| {a} | {b} | {c} |\n" for a, b, c in rows)


if __name__ == "__main__":
    print(table(), end="")
