"""CLI subcommands for loss landscapes and sharpness.

python -m sar_core landscape --model F [--model F2 ...] --dims 1|2 --steps N --seed S --span X
python -m sar_core sharpness --model F [--model F2 ...] [--seed S] [--format int8 --ber 0.01]

With ONE --model every per-model key (loss, accuracy, center_loss, lambda_max, ...) holds that
model's value; with several, each per-model key holds a list in --model order and ``models``
names them. Data: the first checkpoint's dataset, test split unless --split train. Every model
gets its own filter-normalized direction drawn from the same seed (Li et al.: identical raw
Gaussian for one architecture). The output holds no timings: the same seed gives the same JSON.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from sar_core import limits

COMMANDS: dict[str, Callable[[argparse.Namespace], dict]] = {}


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the analysis subcommands to the CLI parser."""
    lp = sub.add_parser("landscape", help="1D / 2D loss slices along random directions")
    _model_args(lp)
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
    common(lp)
    COMMANDS["landscape"] = cmd_landscape

    sp = sub.add_parser("sharpness", help="Hessian / SAM / average / fault-model sharpness")
    _model_args(sp)
    sp.add_argument("--rho", default="0.05", help="radius of the SAM / average ball, > 0")
    sp.add_argument("--format", default=None, help="fault model format (with --ber or --count)")
    sp.add_argument("--bits", default="all", help="fault model bits (bit 0 = LSB)")
    rate = sp.add_mutually_exclusive_group()
    rate.add_argument("--ber", default=None, help="bit error rate in (0, 1]")
    rate.add_argument("--count", default=None, help="exact flips per trial")
    sp.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    sp.add_argument("--granularity", default="tensor", choices=("tensor", "channel"))
    sp.add_argument("--fault-bias", action="store_true", help="biases can flip too")
    sp.add_argument("--trials", default="50", help=f"fault trials, 1..{limits.MAX_TRIALS}")
    common(sp)
    COMMANDS["sharpness"] = cmd_sharpness


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", action="append", required=True, help="checkpoint; repeat for more models"
    )
    p.add_argument("--seed", default="0")
    p.add_argument("--split", default="test", choices=("test", "train"))
    p.add_argument("--csv", default=None, help="CSV data for models trained on an uploaded CSV")


def _setup(a: argparse.Namespace):
    """(checkpoints, X, y, seed) on the first checkpoint's dataset split."""
    from sar_core.cli import _number
    from sar_core.io import check_same_data, dataset_of, load_checkpoint
    from sar_core.validate import check_int

    seed = check_int("seed", _number("seed", a.seed, kind=int), low=0, high=2**31 - 1)
    cks = [load_checkpoint(p) for p in a.model]
    check_same_data(a.model, cks)
    data = dataset_of(cks[0], a.csv)
    X, y = (data.X_test, data.y_test) if a.split == "test" else (data.X_train, data.y_train)
    return cks, X, y, seed


def _per_model(values: list, n: int):
    return values[0] if n == 1 else values


def cmd_landscape(a: argparse.Namespace) -> dict:
    """landscape subcommand."""
    from sar_core import landscape as L
    from sar_core.cli import Progress, _number

    dims = int(a.dims)
    steps = L.check_steps(
        _number("steps", a.steps, kind=int) if a.steps else 51 if dims == 1 else 41
    )
    span = L.check_span(_number("span", a.span))
    cks, X, y, seed = _setup(a)
    bar = Progress(len(cks), f"landscape {dims}D", a.quiet)
    results = []
    for i, ck in enumerate(cks):
        d1, d2 = L.direction_pair(ck.model, seed, include_bias=a.include_bias)
        if dims == 1:
            r = L.slice_1d(ck.model, X, y, d1, steps=steps, span=span)
            r["center_loss"] = _center(ck.model, X, y)  # equals loss[steps // 2] for odd steps
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
        "loss": _per_model([r["loss"] for r in results], n),
        "accuracy": _per_model([r["accuracy"] for r in results], n),
        "center_loss": _per_model([r["center_loss"] for r in results], n),
        "direction": "filter-normalized Gaussian (Li et al. 2018); seeds 2*seed, 2*seed+1",
    }
    if dims == 2:
        out["betas"] = results[0]["betas"]
    if a.plot:
        _plot(a, dims, cks, results)
    return out


def _center(model, X, y) -> float:
    from sar_core.evaluate import evaluate

    return evaluate(model, X, y).loss


def _plot(a: argparse.Namespace, dims: int, cks, results: list[dict]) -> None:
    from sar_core.plots import landscape as P

    entries = [
        {"label": os.path.basename(p), "method": ck.method, **r}
        for p, ck, r in zip(a.model, cks, results)
    ]
    if dims == 1:
        fig = P.slice_1d_figure(entries, log_y=a.log_scale)
    else:
        fig = P.contours_side_by_side(entries, log_z=a.log_scale)
    write_figure(fig, a.plot, width=520 * (len(entries) if dims == 2 else 1) + 200)


def write_figure(fig, path: str, *, width: int = 900, height: int = 520) -> None:
    """Write a plotly figure as .png (kaleido; needs a Chrome/Chromium) or .html."""
    from sar_core.cli import UsageError

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


def _fault_model_or_none(a: argparse.Namespace):
    from sar_core.cli import UsageError, _fault_model

    if a.ber is None and a.count is None:
        if a.format is not None:
            raise UsageError(
                f"Invalid format={a.format!r} without a rate: add --ber P or --count K"
            )
        return None
    a.format = a.format or "float32"
    a.include_bias = a.fault_bias
    return _fault_model(a)


def cmd_sharpness(a: argparse.Namespace) -> dict:
    """sharpness subcommand."""
    from sar_core.cli import Progress, _number
    from sar_core.evaluate import as_tensors
    from sar_core.sharpness import sharpness_report
    from sar_core.validate import check_float, check_int

    rho = check_float("rho", _number("rho", a.rho), low=0.0, low_open=True)
    trials = check_int(
        "trials", _number("trials", a.trials, kind=int), low=1, high=limits.MAX_TRIALS
    )
    fm = _fault_model_or_none(a)
    cks, X, y, seed = _setup(a)
    X, y = as_tensors(X, y)
    bar = Progress(len(cks), "sharpness", a.quiet)
    reports = []
    for i, ck in enumerate(cks):
        reports.append(
            sharpness_report(ck.model, X, y, seed=seed, fault_model=fm, rho=rho, trials=trials)
        )
        bar(i + 1)
    n = len(cks)
    keys = [k for k in reports[0] if k not in ("rho", "seed")]
    out = {k: _per_model([r[k] for r in reports], n) for k in keys}
    out.update(
        rho=rho,
        seed=seed,
        split=a.split,
        n_samples=len(y),
        models=[{"path": p, "method": ck.method} for p, ck in zip(a.model, cks)],
        fault_model=fm.to_dict() if fm else None,
    )
    return out
