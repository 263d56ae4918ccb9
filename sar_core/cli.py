"""Command line: python -m sar_core {train,inject,compare,sweep,flip,landscape,sharpness} [--json].

Progress goes to stderr; with --json exactly one JSON object goes to stdout. Bad input exits with
code 2 and one line on stderr naming the parameter, the value and what is allowed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from sar_core import limits
from sar_core.bits import FORMAT_NAMES, flip_value
from sar_core.campaign import check_trials, iter_compare, iter_sweep, paired_difference
from sar_core.data import DATASETS, Dataset, load_dataset
from sar_core.faults import FaultModel
from sar_core.io import (
    Checkpoint,
    check_same_data,
    dataset_of,
    dumps,
    load_checkpoint,
    save_checkpoint,
)
from sar_core.models import ARCHS
from sar_core.optim import GEOMETRIES
from sar_core.training import METHODS, TrainConfig, spec_for, train
from sar_core.validate import check_float, check_int


class UsageError(ValueError):
    """Bad command-line input (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _number(name: str, text: str, *, kind=float):
    try:
        return kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise UsageError(f"Invalid {name}={text!r}: must be {what}") from None


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, label: str, quiet: bool) -> None:
        self.total, self.label, self.quiet, self.t0 = (
            max(total, 1),
            label,
            quiet,
            time.perf_counter(),
        )

    def __call__(self, done: int) -> None:
        if self.quiet:
            return
        frac = min(done / self.total, 1.0)
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        sys.stderr.write(
            f"\r{self.label} [{bar}] {done}/{self.total} {time.perf_counter() - self.t0:5.1f}s"
        )
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _fault_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="float32", choices=FORMAT_NAMES)
    p.add_argument(
        "--bits",
        default="all",
        help="0-7 | 30,31 | sign | exponent | mantissa | msb | lsb | all (bit 0 = LSB)",
    )
    rate = p.add_mutually_exclusive_group(required=True)
    rate.add_argument("--ber", help="bit error rate in (0, 1]")
    rate.add_argument("--count", help="exact number of flipped bits per trial")
    p.add_argument("--layers", default=None, help="comma-separated layer names (default: all)")
    p.add_argument("--include-bias", action="store_true")
    p.add_argument(
        "--granularity", default="tensor", choices=("tensor", "channel"), help="int8 scale"
    )
    p.add_argument("--trials", default="100", help=f"Monte Carlo trials, 1..{limits.MAX_TRIALS}")
    p.add_argument("--seed", default="0")
    p.add_argument("--csv", default=None, help="CSV data for models trained on an uploaded CSV")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> Parser:
    """The argument parser (subcommands)."""
    parser = Parser(
        prog="python -m sar_core", description="SAR Lab: sharpness-aware training vs bit flips"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train one model and save it as safetensors")
    t.add_argument("--dataset", default="digits", choices=DATASETS)
    t.add_argument("--arch", default="mlp", choices=ARCHS)
    t.add_argument("--method", default="sgd", choices=METHODS)
    t.add_argument("--rho", default=None)
    t.add_argument("--geometry", default=None, choices=GEOMETRIES)
    t.add_argument("--rho-mode", default="fixed", choices=("fixed", "calibrated"))
    t.add_argument("--rho-max", default="2.0", help="cap of the calibrated rho")
    t.add_argument("--epochs", default="30")
    t.add_argument("--lr", default=None)
    t.add_argument("--widths", default=None, help="comma-separated hidden widths / conv channels")
    t.add_argument("--seed", default="0")
    t.add_argument(
        "--target-format", default="int8", choices=FORMAT_NAMES, help="SAR/FAT fault model"
    )
    t.add_argument("--target-ber", default="0.01")
    t.add_argument("--target-bits", default="all")
    t.add_argument("--out", required=True)
    _common(t)

    for name, helptext in (
        ("inject", "Monte Carlo fault injection on one model"),
        ("compare", "paired comparison of models under identical faults"),
        ("sweep", "BER sweep of several models"),
    ):
        c = sub.add_parser(name, help=helptext)
        if name == "inject":
            c.add_argument("--model", required=True)
        else:
            c.add_argument("--models", nargs="+", required=True)
        _fault_args(c)
        _common(c)

    f = sub.add_parser("flip", help="flip one bit of one value")
    f.add_argument("--format", required=True, choices=FORMAT_NAMES)
    f.add_argument("--value", required=True)
    f.add_argument("--bit", required=True)
    f.add_argument("--scale", default=None, help="int8 scale (default |value|/127)")
    _common(f)

    from sar_core import cli_analysis

    cli_analysis.register(sub, _common)
    return parser


def _fault_model(a: argparse.Namespace) -> FaultModel:
    ber = _number("ber", a.ber) if a.ber is not None else None
    count = _number("count", a.count, kind=int) if a.count is not None else None
    layers = (
        tuple(s.strip() for s in a.layers.split(",") if s.strip()) if a.layers is not None else None
    )
    if layers == ():
        raise UsageError(f"Invalid layers={a.layers!r}: select at least one layer name")
    return FaultModel(
        format=a.format,
        bits=a.bits,
        ber=ber,
        count=count,
        layers=layers,
        include_bias=a.include_bias,
        granularity=a.granularity,
    )


def _load_models(paths: Sequence[str]) -> list[Checkpoint]:
    return [load_checkpoint(p) for p in paths]


def cmd_train(a: argparse.Namespace) -> dict:
    """train subcommand."""
    seed = _number("seed", a.seed, kind=int)
    data = load_dataset(a.dataset, seed=check_int("seed", seed, low=0, high=2**32 - 1))
    widths = None
    if a.widths:
        widths = tuple(_number("widths", w, kind=int) for w in a.widths.split(","))
    spec = spec_for(data, a.arch, widths)
    try:
        target = FaultModel(
            format=a.target_format, bits=a.target_bits, ber=_number("target-ber", a.target_ber)
        )
    except ValueError as e:  # name the CLI flag, not the library field
        raise UsageError(f"{e} (in --target-format/--target-bits/--target-ber)") from None
    cfg = TrainConfig(
        method=a.method,
        epochs=_number("epochs", a.epochs, kind=int),
        lr=_number("lr", a.lr) if a.lr is not None else None,
        rho=_number("rho", a.rho) if a.rho is not None else None,
        geometry=a.geometry,
        rho_mode=a.rho_mode,
        rho_max=_number("rho-max", a.rho_max),
        seed=seed,
        fault_model=target if a.method in ("sar", "fat") else None,
    )
    bar = Progress(cfg.epochs, f"train {a.method}", a.quiet)
    res = train(spec, data, cfg, on_epoch=lambda r: bar(r["epoch"]))
    meta = res.metadata(data)
    if not all(bool(p.isfinite().all()) for p in res.model.parameters()):
        raise UsageError(
            f"Invalid lr={cfg.effective_lr}: training diverged (weights became NaN/Inf) and "
            "nothing was saved; use a smaller --lr"
        )
    path = save_checkpoint(a.out, res.model, spec, meta)
    return {
        "clean_accuracy": res.clean_accuracy,
        "method": cfg.method,
        "epochs": len(res.history),
        "train_seconds": res.train_seconds,
        "path": str(path),
    }


def _campaign(
    a: argparse.Namespace, paths: Sequence[str]
) -> tuple[list[Checkpoint], Dataset, FaultModel, int, int]:
    fm = _fault_model(a)
    trials = check_trials(_number("trials", a.trials, kind=int))
    seed = check_int("seed", _number("seed", a.seed, kind=int), low=0, high=2**63 - 1)
    cks = _load_models(paths)
    check_same_data(paths, cks)
    data = dataset_of(cks[0], a.csv)
    return cks, data, fm, trials, seed


def cmd_inject(a: argparse.Namespace) -> dict:
    """inject subcommand."""
    cks, data, fm, trials, seed = _campaign(a, [a.model])
    bar = Progress(trials, "inject", a.quiet)
    res: list = []
    for i, res in enumerate(  # noqa: B007 — the last yield holds the full result
        iter_compare([cks[0].model], data.X_test, data.y_test, fm, trials=trials, seed=seed), 1
    ):
        bar(i)
    s = res[0].summary()
    return {
        k: s[k]
        for k in (
            "clean_accuracy",
            "deployed_accuracy",
            "mean_accuracy",
            "std",
            "ci95",
            "trials",
            "mean_flips",
            "n_sites",
            "quantiles",
            "fault_model",
        )
    }


def cmd_compare(a: argparse.Namespace) -> dict:
    """compare subcommand."""
    cks, data, fm, trials, seed = _campaign(a, a.models)
    # The bar is drawn only after the first trial: input errors surface before any output, so
    # bad input leaves exactly one line on stderr.
    bar = Progress(trials, "compare", a.quiet)
    runs: list = []
    for i, runs in enumerate(  # noqa: B007 — the last yield holds the full result
        iter_compare(
            [c.model for c in cks], data.X_test, data.y_test, fm, trials=trials, seed=seed
        ),
        1,
    ):
        bar(i)
    out = {"results": runs, "paired_difference": [paired_difference(runs[0], r) for r in runs]}
    results = []
    for path, ck, r in zip(a.models, cks, out["results"]):
        s = r.summary()
        results.append(
            {
                "path": path,
                "method": ck.method,
                **{
                    k: s[k]
                    for k in (
                        "clean_accuracy",
                        "deployed_accuracy",
                        "mean_accuracy",
                        "std",
                        "ci95",
                        "mean_flips",
                        "n_sites",
                    )
                },
            }
        )
    return {
        "results": results,
        "paired_difference": out["paired_difference"],
        "trials": trials,
        "fault_model": fm.to_dict(),
    }


def cmd_sweep(a: argparse.Namespace) -> dict:
    """sweep subcommand: --ber takes a comma-separated list."""
    if a.ber is None:
        raise UsageError("Invalid ber=None: sweep needs --ber P1,P2,... (values in (0, 1])")
    bers = [_number("ber", b) for b in a.ber.split(",")]
    a.ber = str(bers[0])
    cks, data, fm, trials, seed = _campaign(a, a.models)
    bar = Progress(len(bers), "sweep", a.quiet)
    per = [
        {"path": p, "method": c.method, "mean_accuracy": [], "ci95_low": [], "ci95_high": []}
        for p, c in zip(a.models, cks)
    ]
    for i, (_, summaries) in enumerate(
        iter_sweep(
            [c.model for c in cks],
            data.X_test,
            data.y_test,
            fm,
            bers=bers,
            trials=trials,
            seed=seed,
        ),
        1,
    ):
        for entry, s in zip(per, summaries):
            entry["mean_accuracy"].append(s["mean_accuracy"])
            entry["ci95_low"].append(s["ci95"][0])
            entry["ci95_high"].append(s["ci95"][1])
        bar(i)
    return {"ber": bers, "models": per, "trials": trials, "fault_model": fm.to_dict()}


def cmd_flip(a: argparse.Namespace) -> dict:
    """flip subcommand."""
    value = check_float("value", _number("value", a.value))
    bit = _number("bit", a.bit, kind=int)
    scale = _number("scale", a.scale) if a.scale is not None else None
    return flip_value(value, a.format, bit, scale).to_dict()


COMMANDS = {
    "train": cmd_train,
    "inject": cmd_inject,
    "compare": cmd_compare,
    "sweep": cmd_sweep,
    "flip": cmd_flip,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input, 1 internal error)."""
    try:
        args = build_parser().parse_args(argv)
        from sar_core import cli_analysis

        fn = COMMANDS.get(args.command) or cli_analysis.COMMANDS[args.command]
        out = fn(args)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (UsageError, ValueError) as e:
        sys.stderr.write(f"error: {' '.join(str(e).split())}\n")
        return 2
    except Exception as e:  # noqa: BLE001 — one line, never a traceback
        sys.stderr.write(f"error: internal {type(e).__name__}: {' '.join(str(e).split())}\n")
        return 1
    if args.json:
        sys.stdout.write(dumps(out) + "\n")
    else:
        for k, v in out.items():
            sys.stdout.write(f"{k}: {dumps(v)}\n")
    return 0
