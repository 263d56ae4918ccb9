"""benchmarks/run.py --quick as a smoke test: it runs end to end and prints its table (no timing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_quick_mode_runs_and_prints_every_section():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "| section | case | median s | note |" in text and "load average" in text
    for section in ("campaign MLP", "campaign SmallCNN", "landscape", "sharpness"):
        assert section in text
    for peer, row in (
        ("pytorchfi", "pytorchfi (weights only)"),
        ("loss_landscapes", "loss-landscapes random_plane"),
        ("pyhessian", "PyHessian eigenvalues"),
    ):
        # each peer either has its rows or a printed note that it was skipped
        assert row in text or f"note: {peer}" in text


def _notes(name: str) -> dict[tuple[str, str], str]:
    """(section, case) -> note of a results table written by benchmarks/run.py."""
    rows = {}
    for line in (ROOT / "benchmarks" / "results" / name).read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[2] not in ("median s", "---"):
            rows[(cells[0], cells[1])] = cells[3]
    return rows


def test_readme_performance_numbers_come_from_the_v3_result_files():
    """Every ratio of the README's Engine v3 table is the one in run_v3_0 / run_v3_1."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    a, b = _notes("run_v3_0.md"), _notes("run_v3_1_two_busy_loops.md")
    mlp, cnn = "campaign MLP 64-128-128-10", "campaign SmallCNN"
    x = lambda note: re.search(r"[\d.]+x", note).group(0)  # noqa: E731
    pct = lambda note: re.search(r"\(-?([\d.]+)%\)", note).group(1) + "%"  # noqa: E731
    pairs = [
        (mlp, "ours / forward passes needed", x),
        (mlp, "pytorchfi", x),
        (mlp, "naive", x),
        (cnn, "ours / forward passes needed", x),
        (cnn, "naive", x),
        (cnn, "pytorchfi", x),
        ("landscape SmallCNN", "loss-landscapes", lambda n: n.split()[1]),
        ("landscape SmallCNN", "1681 forward", lambda n: n.split()[1]),
        ("landscape MLP", "loss-landscapes", lambda n: n.split()[1]),
        ("landscape MLP", "1681 forward", lambda n: n.split()[1]),
        ("sharpness MLP", "PyHessian", lambda n: n.split()[1]),
        ("sharpness SmallCNN", "PyHessian", lambda n: n.split()[1]),
        ("sharpness MLP", "sar_core lambda_max", pct),
        ("sharpness SmallCNN", "sar_core lambda_max", pct),
    ]
    c = _notes("run_v3_2_campaign_sharpness.md")  # campaigns and lambda_max only
    for section, case, fmt in pairs:
        # the first campaign section of each model is BER 1e-4
        vals = [fmt(_pick_first(r, section, case)) for r in (a, b, c) if _has(r, section, case)]
        assert " / ".join(vals) in readme, (section, case, vals)


def _pick_first(rows: dict, section: str, case: str) -> str:
    return [n for (s, c), n in rows.items() if s.startswith(section) and c.startswith(case)][0]


def _has(rows: dict, section: str, case: str) -> bool:
    return any(s.startswith(section) and c.startswith(case) for s, c in rows)
