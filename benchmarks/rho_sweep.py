"""SAR rho x geometry sweep on digits (MLP and CNN), paired against SGD (tuning seeds 0, 1).

The SAR v1 preset came from this sweep; the current preset is chosen by the task suite
(benchmarks/suite.py). Geometry "fault" is SAR v2 aimed at int8 BER 3% (rho = its multiplier).

For each architecture, seed, geometry and rho: train SAR (same split, seed and initial weights
as the SGD baseline), then measure clean accuracy and accuracy under int8 BER 3% and float32
BER 1e-5 over the same fault patterns as SGD (paired, common random numbers).

Run:  python benchmarks/rho_sweep.py [--seeds 0,1] [--trials 100] [--out benchmarks/results/rho_sweep.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sar_core.analysis.campaign import compare  # noqa: E402
from sar_core.data.datasets import load_dataset  # noqa: E402
from sar_core.faults.model import FaultModel  # noqa: E402
from sar_core.training.loop import TrainConfig, spec_for, train  # noqa: E402

GRID = {
    "plain": (0.02, 0.05, 0.1, 0.2, 0.5),
    "elementwise": (0.1, 0.2, 0.5, 1.0, 2.0),
    "layer": (0.1, 0.2, 0.5, 1.0, 2.0),
    "fault": (0.005, 0.015, 0.05),
}
FAULTS = {
    "int8_ber3%": FaultModel(format="int8", ber=0.03),
    "fp32_ber1e-5": FaultModel(format="float32", ber=1e-5),
}
EPOCHS = 40


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--archs", default="mlp,cnn")
    ap.add_argument("--out", default="benchmarks/results/rho_sweep.json")
    a = ap.parse_args()
    rows = []
    t0 = time.time()
    for arch in a.archs.split(","):
        for seed in [int(s) for s in a.seeds.split(",")]:
            data = load_dataset("digits", seed=seed)
            spec = spec_for(data, arch)
            base = train(spec, data, TrainConfig(method="sgd", epochs=EPOCHS, seed=seed))
            for geometry, rhos in GRID.items():
                for rho in rhos:
                    target = FAULTS["int8_ber3%"] if geometry == "fault" else None
                    cfg = TrainConfig(
                        method="sar",
                        epochs=EPOCHS,
                        seed=seed,
                        rho=rho,
                        geometry=geometry,
                        fault_model=target,
                    )
                    sar = train(spec, data, cfg)
                    row = {
                        "arch": arch,
                        "seed": seed,
                        "geometry": geometry,
                        "rho": rho,
                        "clean_sgd": base.clean_accuracy,
                        "clean_sar": sar.clean_accuracy,
                    }
                    for name, fm in FAULTS.items():
                        res = compare(
                            [base.model, sar.model],
                            data.X_test,
                            data.y_test,
                            fm,
                            trials=a.trials,
                            seed=1234,
                        )
                        row[f"{name}_sgd"] = res["results"][0].summary()["mean_accuracy"]
                        row[f"{name}_sar"] = res["results"][1].summary()["mean_accuracy"]
                        row[f"{name}_diff"] = res["paired_difference"][1]["mean"]
                        row[f"{name}_diff_ci95"] = res["paired_difference"][1]["ci95"]
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(rows, indent=1))
    # aggregate over seeds: mean paired difference (percentage points)
    print(
        "| arch | geometry | rho | clean SAR - SGD (pt) | int8 BER 3% SAR - SGD (pt) | fp32 BER 1e-5 SAR - SGD (pt) |"
    )
    print("|---|---|---|---|---|---|")
    keys = sorted(
        {(r["arch"], r["geometry"], r["rho"]) for r in rows},
        key=lambda k: (k[0], list(GRID).index(k[1]), k[2]),
    )
    for arch, geom, rho in keys:
        sel = [r for r in rows if (r["arch"], r["geometry"], r["rho"]) == (arch, geom, rho)]
        c = 100 * np.mean([r["clean_sar"] - r["clean_sgd"] for r in sel])
        i8 = 100 * np.mean([r["int8_ber3%_diff"] for r in sel])
        f32 = 100 * np.mean([r["fp32_ber1e-5_diff"] for r in sel])
        print(f"| {arch} | {geom} | {rho} | {c:+.1f} | {i8:+.1f} | {f32:+.1f} |")
    print(f"\n{len(rows)} SAR runs, {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
