"""Train the bundled demo checkpoints and precompute the lesson's numbers.

Run:  python scripts/make_demo_assets.py              (about two minutes on 2 CPU cores)
      python scripts/make_demo_assets.py --lesson     (only the lesson's defenses + its bundle)
      python scripts/make_demo_assets.py --bundle     (only the lesson's precomputed bundle)

assets/digits_{mlp,cnn}_{sgd,sam,sar}.safetensors: the demo models every page offers.
assets/lesson/digits_mlp_{clip,randbet,asam}.safetensors: the defenses the held-out suite compares
SAR with at int8 (the range bounded by hand; sharpness alone), shown next to SGD and SAR on the
lesson only (each method at its DEFAULT
settings, the same data, seed and epochs as the demo SGD / SAR: no tuning on this task).
assets/lesson/quick.json: the lesson's quick numbers for every fault choice and offered rate at
seed 0 (sar_core.analysis.lesson.build_bundle), so the page answers without computing; it names
the digests of the checkpoints it was computed from and is ignored when they change.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sar_core.cli import main  # noqa: E402

EPOCHS = 40
SEED = 0
ASSETS = ROOT / "assets"
LESSON = ASSETS / "lesson"
LESSON_METHODS = ("clip", "randbet", "asam")


def train(arch: str, method: str, out: Path) -> None:
    """One demo checkpoint at the method's default settings (exits on failure)."""
    args = ["train", "--dataset", "digits", "--arch", arch, "--method", method]
    args += ["--epochs", str(EPOCHS), "--seed", str(SEED), "--out", str(out), "--json", "--quiet"]
    rc = main(args)
    if rc:
        sys.exit(rc)


def bundle() -> None:
    """Precompute the lesson's quick numbers (sar_core.analysis.lesson) into assets/lesson."""
    from sar_core.analysis.lesson import build_bundle
    from sar_core.analysis.lesson_summary import lesson_paths
    from sar_core.experiments.suite_results import load_results
    from ui.lesson import SUITE, SUITE_TARGET, file_digest, headline_view

    data = build_bundle(lesson_paths(ASSETS))
    res = load_results(SUITE)  # the held-out headline, keyed by the results file's digest
    targets = {}
    for t in SUITE_TARGET.values():
        with contextlib.suppress(ValueError):  # this results file has no such target
            targets[t] = headline_view(res, t)
    data["suite"] = {"digest": file_digest(SUITE), "targets": targets}
    (LESSON / "quick.json").write_text(json.dumps(data, separators=(",", ":")))


if __name__ == "__main__":
    LESSON.mkdir(exist_ok=True)
    only = sys.argv[1] if len(sys.argv) > 1 else ""
    if only not in ("", "--lesson", "--bundle"):
        print(f"usage: {sys.argv[0]} [--lesson | --bundle]", file=sys.stderr)
        sys.exit(2)
    if only == "":
        for arch in ("mlp", "cnn"):
            for method in ("sgd", "sam", "sar"):
                train(arch, method, ASSETS / f"digits_{arch}_{method}.safetensors")
    if only in ("", "--lesson"):
        for method in LESSON_METHODS:
            train("mlp", method, LESSON / f"digits_mlp_{method}.safetensors")
    bundle()
