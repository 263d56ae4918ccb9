"""landscape: 1D / 2D loss slices along filter-normalized random directions.

python -m sar_core landscape --model F [--model F2 ...] --dims 1|2 --steps N --seed S --span X

With ONE --model every per-model key (loss, accuracy, center_loss) holds that model's value; with
several, each per-model key holds a list in --model order and ``models`` names them. Data: the
first checkpoint's dataset, test split unless --split train. Every model gets its own
filter-normalized direction drawn from the same seed (Li et al.: identical raw Gaussian for one
architecture). The output holds no timings: the same seed gives the same JSON.
"""

from __future__ import annotations

import argparse
import os

from sar_core import limits
from sar_core.cli.common import model_args


def add_arguments(lp: argparse.ArgumentParser) -> None:
    """Options of the landscape command."""
    model_args(lp)
    lp.add_argument("--dims", default="1", choices=("1", "2"))
    lp.add_argument(
        "--steps",
        default=None,
        help=f"points per axis, 2..{limits.MAX_GRID_STEPS} (default 51 in 1D, 41 in 2D; odd "
        "counts put alpha = 0 on the grid)",
    )
    lp.add_argument("--span", default="1.0", help="grid covers [-span, span] per axis, span > 0")
    lp.add_argument("--include-bias", action="store_true", help="perturb biases too")
    lp.add_argument("--plot", default=None, help="also write the figure: .png (kaleido) or .html")
    lp.add_argument("--log-scale", action="store_true", help="log-scale loss in the --plot figure")


def run(a: argparse.Namespace) -> dict:
    """One slice per model; the grid, losses and accuracies."""
    from sar_core.analysis import landscape as L
    from sar_core.cli.common import Progress, load_models, number, per_model
    from sar_core.engine.evaluate import evaluate

    dims = int(a.dims)
    steps = L.check_steps(
        number("steps", a.steps, kind=int) if a.steps else 51 if dims == 1 else 41
    )
    span = L.check_span(number("span", a.span))
    cks, X, y, seed = load_models(a)
    bar = Progress(len(cks), f"landscape {dims}D", a.quiet)
    results = []
    for i, ck in enumerate(cks):
        d1, d2 = L.direction_pair(ck.model, seed, include_bias=a.include_bias)
        if dims == 1:
            r = L.slice_1d(ck.model, X, y, d1, steps=steps, span=span)
            r["center_loss"] = evaluate(ck.model, X, y).loss  # = loss[steps // 2] for odd steps
        else:
            r = L.slice_2d(ck.model, X, y, d1, d2, steps=steps, span=span)
        results.append(r)
        bar(i + 1)
    n = len(cks)
    out = {
        "dims": dims,
        "steps": steps,
        "span": span,
        "seed": seed,
        "split": a.split,
        "n_samples": len(y),
        "models": [{"path": p, "method": ck.method} for p, ck in zip(a.model, cks)],
        "alphas": results[0]["alphas"],
        "loss": per_model([r["loss"] for r in results], n),
        "accuracy": per_model([r["accuracy"] for r in results], n),
        "center_loss": per_model([r["center_loss"] for r in results], n),
        "direction": "filter-normalized Gaussian (Li et al. 2018); seeds 2*seed, 2*seed+1",
    }
    if dims == 2:
        out["betas"] = results[0]["betas"]
    if a.plot:
        _plot(a, dims, cks, results)
    return out


def _plot(a: argparse.Namespace, dims: int, cks, results: list[dict]) -> None:
    from sar_core.plots.landscape import slice_1d_figure
    from sar_core.plots.landscape_2d import contours_side_by_side

    entries = [
        {"label": os.path.basename(p), "method": ck.method, **r}
        for p, ck, r in zip(a.model, cks, results)
    ]
    if dims == 1:
        fig = slice_1d_figure(entries, log_y=a.log_scale)
    else:
        fig = contours_side_by_side(entries, log_z=a.log_scale)
    write_figure(fig, a.plot, width=520 * (len(entries) if dims == 2 else 1) + 200)


def write_figure(fig, path: str, *, width: int = 900, height: int = 520) -> None:
    """Write a plotly figure as .png (kaleido; needs a Chrome/Chromium) or .html."""
    from sar_core.cli.common import UsageError

    ext = os.path.splitext(path)[1].lower()
    if ext == ".html":
        fig.write_html(path, include_plotlyjs="cdn")
        return
    if ext != ".png":
        raise UsageError(f"Invalid plot={path!r}: the file must end in .png or .html")
    try:
        fig.write_image(path, width=width, height=height, scale=2)
    except Exception as e:  # kaleido raises its own types when no browser is found
        raise UsageError(
            f"Invalid plot={path!r}: PNG export failed ({type(e).__name__}: {e}); kaleido needs "
            "Chrome/Chromium: set BROWSER_PATH=/usr/bin/chromium, or write .html"
        ) from None
