"""train: train one model and save it as a safetensors checkpoint."""

from __future__ import annotations

import argparse

from sar_core.names import ARCHS, DATASETS, FORMAT_NAMES, METHODS, SAR_GEOMETRIES, TARGETED


def add_arguments(t: argparse.ArgumentParser) -> None:
    """Options of the train command."""
    t.add_argument("--dataset", default="digits", choices=DATASETS)
    t.add_argument("--arch", default="mlp", choices=ARCHS)
    t.add_argument("--method", default="sgd", choices=METHODS)
    t.add_argument(
        "--rho",
        default=None,
        help="ascent radius; defaults are scale-free, none needs tuning: sam 0.05, asam 0.5 "
        "(in units of |w|), sar/sar_clip 0.015 x the fault radius sqrt(E[n]) of the target "
        "(geometry fault); a fault-free --geometry gets 1.0 (plain 0.05)",
    )
    t.add_argument(
        "--geometry",
        default=None,
        choices=SAR_GEOMETRIES,
        help="SAR's neighbourhood; default 'fault' = SAR v3: T from the target's flip intensity, "
        "radius from its occurrence, and for int8 targets the gradient flows into the range "
        "s = max|W|/127; plain/elementwise/layer: SAR v1 (hand-set rho)",
    )
    t.add_argument("--rho-mode", default="fixed", choices=("fixed", "calibrated"))
    t.add_argument("--rho-max", default="2.0", help="cap of the calibrated rho")
    t.add_argument(
        "--w-max",
        default=None,
        help="absolute weight clamp |w| <= w_max (clip, randbet, sar_clip); default: scale-free, "
        "each weight tensor clamped to 3x its own max|w| at initialisation",
    )
    t.add_argument("--epochs", default="30")
    t.add_argument("--lr", default=None)
    t.add_argument("--widths", default=None, help="comma-separated hidden widths / conv channels")
    t.add_argument("--seed", default="0")
    t.add_argument(
        "--target-format",
        default="int8",
        choices=FORMAT_NAMES,
        help=f"target fault model of {', '.join(TARGETED)}",
    )
    t.add_argument("--target-ber", default="0.01")
    t.add_argument("--target-bits", default="all")
    t.add_argument(
        "--target-granularity",
        default="tensor",
        choices=("tensor", "channel"),
        help="int8 target: one scale per tensor or per output channel",
    )
    t.add_argument(
        "--no-range-grad",
        action="store_true",
        help="SAR v3 off for int8 targets: no gradient into the range s(w) (= SAR v2)",
    )
    t.add_argument(
        "--fault-sample",
        action="store_true",
        help="SAR v3: also add a fault sampled from the target at the ascent point",
    )
    t.add_argument(
        "--fault-mean",
        default=None,
        metavar="KAPPA",
        help="SAR v3, int8 target: kappa in [0, 1] of the expected fault E[D|w] (the (1 - 2p) "
        "shrink of every code) at the ascent point, 2 kappa every other step (default 0.5; "
        "0 = off)",
    )
    t.add_argument("--out", required=True)


def _config(a: argparse.Namespace, seed: int):
    from sar_core.cli.common import UsageError, number, optional
    from sar_core.faults.model import FaultModel
    from sar_core.training.loop import TrainConfig

    try:
        target = FaultModel(
            format=a.target_format,
            bits=a.target_bits,
            ber=number("target-ber", a.target_ber),
            granularity=a.target_granularity,
        )
    except ValueError as e:  # name the CLI flag, not the library field
        raise UsageError(
            f"{e} (in --target-format/--target-bits/--target-ber/--target-granularity)"
        ) from None
    return TrainConfig(
        method=a.method,
        epochs=number("epochs", a.epochs, kind=int),
        lr=optional("lr", a.lr),
        rho=optional("rho", a.rho),
        **({"w_max": optional("w-max", a.w_max)} if a.w_max is not None else {}),
        geometry=a.geometry,
        rho_mode=a.rho_mode,
        rho_max=number("rho-max", a.rho_max),
        seed=seed,
        fault_model=target if a.method in TARGETED else None,
        range_grad=False if a.no_range_grad else None,
        fault_sample=True if a.fault_sample else None,
        fault_mean=optional("fault-mean", a.fault_mean),
    )


def run(a: argparse.Namespace) -> dict:
    """Train, refuse to save a diverged model, save; a summary dict."""
    from sar_core.cli.common import Progress, UsageError, number
    from sar_core.data.datasets import load_dataset
    from sar_core.data.io import save_checkpoint
    from sar_core.training.loop import divergence_message, spec_for, train
    from sar_core.validate import check_int

    seed = number("seed", a.seed, kind=int)
    data = load_dataset(a.dataset, seed=check_int("seed", seed, low=0, high=2**32 - 1))
    widths = None
    if a.widths:
        widths = tuple(number("widths", w, kind=int) for w in a.widths.split(","))
    spec = spec_for(data, a.arch, widths)
    cfg = _config(a, seed)
    bar = Progress(cfg.epochs, f"train {a.method}", a.quiet)
    res = train(spec, data, cfg, on_epoch=lambda r: bar(r["epoch"]))
    meta = res.metadata(data)
    why = divergence_message(res)
    if why is not None:
        raise UsageError(f"{why} (nothing was saved)")
    path = save_checkpoint(a.out, res.model, spec, meta)
    return {
        "clean_accuracy": res.clean_accuracy,
        "method": cfg.method,
        "epochs": len(res.history),
        "train_seconds": res.train_seconds,
        "path": str(path),
    }
