"""Train the bundled demo checkpoints in assets/ (digits; MLP and CNN; SGD, SAM and SAR).

Run:  python scripts/make_demo_assets.py      (about a minute on 2 CPU cores)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sar_core.cli import main  # noqa: E402

EPOCHS = 40
SEED = 0

if __name__ == "__main__":
    for arch in ("mlp", "cnn"):
        for method in ("sgd", "sam", "sar"):
            out = ROOT / "assets" / f"digits_{arch}_{method}.safetensors"
            rc = main(
                [
                    "train",
                    "--dataset",
                    "digits",
                    "--arch",
                    arch,
                    "--method",
                    method,
                    "--epochs",
                    str(EPOCHS),
                    "--seed",
                    str(SEED),
                    "--out",
                    str(out),
                    "--json",
                    "--quiet",
                ]
            )
            if rc:
                sys.exit(rc)
