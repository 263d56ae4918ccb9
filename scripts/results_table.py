"""README results table: clean and faulty accuracy (95% CI) of the demo checkpoints, via the CLI.

Runs, for each architecture and fault setting, exactly:
    python -m sar_core compare --models assets/digits_<arch>_{sgd,sam,sar}.safetensors \
        --format <fmt> --ber <p> --trials 200 --seed 0 --json --quiet
and prints a markdown table. Run:  python scripts/results_table.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [("int8", "0.01"), ("int8", "0.03"), ("float32", "1e-5"), ("float32", "1e-4")]
METHODS = ("sgd", "sam", "sar")
TRIALS = "200"


def run(arch: str, fmt: str, ber: str) -> dict:
    models = [f"assets/digits_{arch}_{m}.safetensors" for m in METHODS]
    cmd = [
        sys.executable,
        "-m",
        "sar_core",
        "compare",
        "--models",
        *models,
        "--format",
        fmt,
        "--ber",
        ber,
        "--trials",
        TRIALS,
        "--seed",
        "0",
        "--json",
        "--quiet",
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


if __name__ == "__main__":
    cols = " | ".join(f"{fmt} BER {ber}" for fmt, ber in SETTINGS)
    print(f"| model | clean | {cols} |")
    print("|---|---|" + "---|" * len(SETTINGS))
    for arch in ("mlp", "cnn"):
        res = [run(arch, fmt, ber) for fmt, ber in SETTINGS]
        for i, m in enumerate(METHODS):
            cells = []
            for r in res:
                e, d = r["results"][i], r["paired_difference"][i]
                cell = f"{pct(e['mean_accuracy'])} [{pct(e['ci95'][0])}, {pct(e['ci95'][1])}]"
                if i:
                    cell += f" (Δ {100 * d['mean']:+.1f} [{100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}])"
                cells.append(cell)
            clean = pct(res[0]["results"][i]["clean_accuracy"])
            print(f"| {arch.upper()} {m.upper()} | {clean} | " + " | ".join(cells) + " |")
