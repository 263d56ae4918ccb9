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
