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


def test_readme_performance_numbers_come_from_the_result_files():
    """Every ratio of the README's Engine v5 table is the one in its result files, in order."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    full = [_notes("run_v5_0.md"), _notes("run_v5_1_two_busy_loops.md")]
    camp = full + [_notes(f"run_v5_campaign_{n}.md") for n in ("0", "1_two_busy_loops", "2")]
    land = full
    sharp = full + [_notes(f"run_v5_sharpness_{n}.md") for n in ("0", "1_two_busy_loops")]
    mlp, cnn = "campaign MLP 64-128-128-10", "campaign SmallCNN"
    x = lambda note: re.search(r"[\d.]+x", note).group(0)  # noqa: E731
    word = lambda note: note.split()[1]  # noqa: E731
    cpu = lambda note: re.search(r"CPU time: ours ([\d.]+x)", note).group(1)  # noqa: E731
    tol3 = "PyHessian eigenvalues (power iteration, tol 1e-3)"
    tol4 = "PyHessian eigenvalues (power iteration, tol 1e-4)"
    pairs = [
        (camp, mlp, "ours / forward passes needed", x),
        (camp, mlp, "pytorchfi", x),
        (camp, mlp, "naive", x),
        (camp, cnn, "ours / forward passes needed", x),
        (camp, cnn, "pytorchfi", x),
        (land, "landscape SmallCNN", "loss-landscapes", word),
        (land, "landscape SmallCNN", "1681 forward", word),
        (land, "landscape MLP", "loss-landscapes", word),
        (land, "landscape MLP", "1681 forward", word),
        (sharp, "sharpness MLP", tol3, word),
        (sharp, "sharpness MLP", tol3, cpu),
        (sharp, "sharpness MLP", tol4, word),
        (sharp, "sharpness SmallCNN", tol3, word),
        (sharp, "sharpness SmallCNN", tol4, word),
    ]
    for runs, section, case, fmt in pairs:
        # the first campaign section of each model is BER 1e-4
        vals = [fmt(_pick_first(r, section, case)) for r in runs]
        assert " / ".join(vals) in readme, (section, case, vals)
    # the accuracy sentence: PyHessian within 1e-3 in k of 15 seeds, ours in 15 of 15
    a = sharp[0]
    within = lambda n: re.search(r"in (\d+)/(\d+)", n).groups()  # noqa: E731
    k_mlp = within(_pick_first(a, "sharpness MLP", tol3))
    k_cnn = within(_pick_first(a, "sharpness SmallCNN", tol3))
    ours = within(_pick_first(a, "sharpness MLP", "sar_core lambda_max"))
    assert f"within 1e-3 of the reference in {k_mlp[0]} of {k_mlp[1]} seeds on the MLP" in readme
    assert f"and {k_cnn[0]} of {k_cnn[1]} on the CNN" in readme
    assert f"ours at tol 1e-3 was within it in {ours[0]} of {ours[1]}" in readme
    # the CLI row and the draws range
    clis = [_notes(f) for f in ("run_v5_cli.md", "run_v5_cli_1.md", "run_v5_cli_2.md")]
    wall = " / ".join(x(_pick_first(c, "CLI inject", "marginal wall time")) for c in clis)
    cpu_x = " / ".join(x(_pick_first(c, "CLI inject", "marginal CPU time")) for c in clis)
    assert f"naive {cpu_x} slower in CPU time, {wall} in wall time" in readme
    text = (ROOT / "benchmarks" / "results" / "draws_bench.md").read_text()
    ratios = [float(v) for v in re.findall(r"\| ([\d.]+)x \|", text)]
    assert len(ratios) >= 5 and f"{min(ratios):.2f}x–{max(ratios):.2f}x" in readme


def test_readme_sar_step_ratios_come_from_the_v5_file():
    """The SAR step row: the default SAR's wall (CPU) ratios of every run, quiet then busy."""
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    text = (ROOT / "benchmarks" / "results" / "sam_step_bench_v5.md").read_text()
    runs = []  # (busy, arch, wall, cpu) in file order
    for part in text.split("\n## ")[1:]:
        busy = "--busy 2" in part.splitlines()[0]
        for arch, wall, cpu in re.findall(
            r"\| (mlp|cnn) \| sar \(default: v3 int8\) \| [\d.]+ \| ([\d.]+) \| ([\d.]+) \|", part
        ):
            runs.append((busy, arch, wall, cpu))
    mlp_q = " / ".join(f"{w} ({c})" for b, a, w, c in runs if a == "mlp" and not b)
    mlp_b = " / ".join(f"{w} ({c})" for b, a, w, c in runs if a == "mlp" and b)
    cnn_q = " / ".join(w for b, a, w, c in runs if a == "cnn" and not b)
    cnn_b = " / ".join(w for b, a, w, c in runs if a == "cnn" and b)
    assert len(runs) == 12
    assert f"MLP quiet {mlp_q}, busy {mlp_b}; CNN quiet {cnn_q}, busy {cnn_b}" in readme


def _pick_first(rows: dict, section: str, case: str) -> str:
    return [n for (s, c), n in rows.items() if s.startswith(section) and c.startswith(case)][0]


def _has(rows: dict, section: str, case: str) -> bool:
    return any(s.startswith(section) and c.startswith(case) for s, c in rows)


def test_readme_float_geometry_numbers_come_from_its_result_file():
    """The README's paragraph on uncovered float flips quotes benchmarks/results/float_geometry.md:
    per seed clean accuracy of the MNIST-1D CNN for every flip counted, the rule, and SGD."""
    import re

    clean = {}
    for line in (ROOT / "benchmarks" / "results" / "float_geometry.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0] == "mnist1d_cnn1d":
            clean[cells[2]] = re.findall(r"([\d.]+) / [\d.]+ \(", cells[3])
    readme = " ".join((ROOT / "README.md").read_text().split())
    for case in ("sar (every flip)", "sar (rule)", "sgd"):
        assert len(clean[case]) == 2, clean
        assert f"{clean[case][0]} % / {clean[case][1]} %" in readme, case


def test_readme_fault_mean_numbers_come_from_their_result_files():
    """The README's fault-mean paragraphs quote fault_mean_mechanism.md (mean-only and noise-only
    accuracy per variant) and the held-out variants run (fault_mean_heldout.json, tabulated by
    scripts/variants_table.py)."""
    import json
    import re
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from variants_table import table

    readme = " ".join((ROOT / "README.md").read_text().split())
    mech = {}
    for line in (
        (ROOT / "benchmarks" / "results" / "fault_mean_mechanism.md").read_text().splitlines()
    ):
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and re.match(r"0\.\d{3}", cells[1]):
            mech[cells[0]] = (float(cells[2].split()[0]), float(cells[3]))
    order = ("sgd", "sar v3 without the fault mean", "sar (default: fault mean 0.5 alt)")
    assert f"the mean alone left SGD {100 * mech[order[0]][0]:.1f} %" in readme
    assert f"SAR v3 without this term {100 * mech[order[1]][0]:.1f} %" in readme
    assert f"with it {100 * mech[order[2]][0]:.1f} %" in readme
    noise = " / ".join(f"{100 * mech[k][1]:.1f}" for k in order)
    assert f"the zero-mean rest {noise} %" in readme
    rows = json.loads((ROOT / "benchmarks" / "results" / "fault_mean_heldout.json").read_text())
    lines = table(rows)
    means = re.findall(
        r"\*\*([+-][\d.]+)\*\* \(▲/·/▼ (\d+/\d+/\d+)\) / clean ([+-][\d.]+), "
        r"worst ([+-][\d.]+)",
        lines[-1],
    )
    (old, new) = means  # columns: sar (the previous default), sar_mean
    for mean, counts, clean, worst in (new, old):
        assert mean in readme and counts in readme, (mean, counts)
        assert clean.replace("-", "−") in readme and worst.replace("-", "−") in readme
    circles = next(line for line in lines if line.startswith("| circles_mlp"))
    cis = re.findall(r"([+-][\d.]+ \[[+-][\d.]+, [+-][\d.]+\])", circles)
    assert len(cis) == 2
    for ci in cis:
        assert ci.replace("-", "−") in readme, ci
