"""README numbers, regenerated from the result files they describe.

    python scripts/results_table.py            # rewrite the README's generated blocks
    python scripts/results_table.py --check    # exit 1 when a block no longer matches its file
    python scripts/results_table.py demo       # the seed-0 demo checkpoint table, via the CLI

Generated blocks sit between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` in
README.md: the suite's protocol paragraph, per-target tables and verdict counts, the issue's
targets stated as met / MISSED with their numbers (all from benchmarks/results/suite.json via
``sar_core.experiments.suite_report.readme_blocks``), and the Double-win caption, table and
who-wins sentences (from benchmarks/results/double_win.json via
``sar_core.experiments.study.double_win.readme_blocks``). ``tests/test_readme_claims.py`` runs the check.

``demo`` runs, for each architecture and fault setting, exactly:
    python -m sar_core compare --models assets/digits_<arch>_{sgd,sam,sar}.safetensors \
        --format <fmt> --ber <p> --trials 200 --seed 0 --json --quiet
and prints a markdown table.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
README = ROOT / "README.md"
BLOCK = re.compile(
    r"<!-- generated:(?P<name>[\w-]+) -->\n(?P<body>.*?)\n<!-- /generated:(?P=name) -->", re.S
)
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


def blocks() -> dict[str, str]:
    """Every generated block, computed from the bundled result files."""
    from sar_core.experiments.study.double_win import readme_blocks as double_win_blocks
    from sar_core.experiments.suite_report import readme_blocks
    from sar_core.experiments.suite_results import load_results

    out = readme_blocks(load_results())
    dw = json.loads((ROOT / "benchmarks" / "results" / "double_win.json").read_text())
    out.update(double_win_blocks(dw))  # the protocol caption, the table, who wins where
    if DEMO_JSON.is_file():
        out["demo-table"] = demo_table(json.loads(DEMO_JSON.read_text()))
    return out


def readme_diff(text: str, fresh: dict[str, str]) -> list[str]:
    """Names of README blocks whose text differs from ``fresh`` (or that are unknown)."""
    return [m["name"] for m in BLOCK.finditer(text) if fresh.get(m["name"]) != m["body"]]


def rewrite(text: str, fresh: dict[str, str]) -> str:
    """README text with every generated block replaced by its fresh version."""
    return BLOCK.sub(
        lambda m: (
            f"<!-- generated:{m['name']} -->\n{fresh[m['name']]}\n<!-- /generated:{m['name']} -->"
        ),
        text,
    )


DEMO_JSON = ROOT / "benchmarks" / "results" / "suite_demo_compare.json"


def demo_table(runs: dict) -> str:
    """README table of the demo checkpoints from the saved ``compare`` outputs."""
    cols = " | ".join(f"{fmt} BER {ber}" for fmt, ber in SETTINGS)
    lines = [f"| model | clean | {cols} |", "|---|---|" + "---|" * len(SETTINGS)]
    for arch in ("mlp", "cnn"):
        res = [runs[f"{arch} {fmt} {ber}"] for fmt, ber in SETTINGS]
        for i, m in enumerate(METHODS):
            cells = []
            for r in res:
                e, d = r["results"][i], r["paired_difference"][i]
                cell = f"{pct(e['mean_accuracy'])} [{pct(e['ci95'][0])}, {pct(e['ci95'][1])}]"
                if i:
                    lo, hi = 100 * d["ci95"][0], 100 * d["ci95"][1]
                    cell += f" (Δ {100 * d['mean']:+.1f} [{lo:+.1f}, {hi:+.1f}])"
                cells.append(cell)
            clean = pct(res[0]["results"][i]["clean_accuracy"])
            lines.append(f"| {arch.upper()} {m.upper()} | {clean} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def demo() -> None:
    """Run the CLI on the demo checkpoints, save its JSON outputs, print the table."""
    runs = {f"{a} {f} {b}": run(a, f, b) for a in ("mlp", "cnn") for f, b in SETTINGS}
    DEMO_JSON.write_text(json.dumps(runs, indent=1))
    print(demo_table(runs))


def main(argv: list[str]) -> int:
    if argv[:1] == ["demo"]:
        demo()
        return 0
    fresh = blocks()
    text = README.read_text()
    if "--check" in argv:
        stale = readme_diff(text, fresh)
        if stale:
            print(f"README blocks out of date: {', '.join(stale)}; run scripts/results_table.py")
            return 1
        return 0
    README.write_text(rewrite(text, fresh))
    print(f"rewrote {len(BLOCK.findall(text))} generated blocks in README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
