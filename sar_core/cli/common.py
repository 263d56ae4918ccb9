"""Helpers shared by the CLI command modules: usage errors, number parsing, progress, options.

Everything here is light (standard library only): building any command's parser must not
import torch, numpy, scipy or sklearn.
"""

from __future__ import annotations

import argparse
import sys
import time


class UsageError(ValueError):
    """Bad command-line input (exit code 2)."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def number(name: str, text: str, *, kind=float):
    """``text`` as a float (or ``kind``), else a UsageError naming the flag."""
    try:
        return kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise UsageError(f"Invalid {name}={text!r}: must be {what}") from None


def optional(name: str, text: str | None, *, kind=float):
    """``number`` for an optional flag: None stays None."""
    return None if text is None else number(name, text, kind=kind)


class Progress:
    """A one-line progress bar on stderr."""

    def __init__(self, total: int, label: str, quiet: bool, min_interval_s: float = 0.0) -> None:
        """``min_interval_s``: skip redraws closer than that (the first and the last are always
        drawn), for callers that report thousands of sub-millisecond steps (campaign trials)."""
        self.total, self.label, self.quiet = max(total, 1), label, quiet
        self.min_interval_s = min_interval_s
        self.t0 = self._drawn = time.perf_counter()

    def __call__(self, done: int) -> None:
        if self.quiet:
            return
        now = time.perf_counter()
        if 1 < done < self.total and now - self._drawn < self.min_interval_s:
            return
        self._drawn = now
        frac = min(done / self.total, 1.0)
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{self.total} {now - self.t0:5.1f}s")
        if done >= self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def per_model(values: list, n: int):
    """One model: its value; several: the list in --model order."""
    return values[0] if n == 1 else values


def model_args(p: argparse.ArgumentParser) -> None:
    """--model (repeatable), --seed, --split, --csv of the analysis commands."""
    p.add_argument(
        "--model", action="append", required=True, help="checkpoint; repeat for more models"
    )
    p.add_argument("--seed", default="0")
    p.add_argument("--split", default="test", choices=("test", "train"))
    p.add_argument("--csv", default=None, help="CSV data for models trained on an uploaded CSV")
    data_args(p)


def data_args(p: argparse.ArgumentParser) -> None:
    """--data and --trust-pt2: the user's own data, and the opt-in for torch.export files."""
    p.add_argument(
        "--data",
        default=None,
        help="evaluation data: .npz with X (N x ...) and y (N), or a CSV (label last); "
        "required for .onnx / .pt2 models",
    )
    p.add_argument(
        "--trust-pt2",
        action="store_true",
        help="allow .pt2 models (torch.export.load can run code: only files you trust)",
    )


def load_with_data(a: argparse.Namespace, paths: list[str]):
    """(loaded models, dataset): checkpoints, .onnx or trusted .pt2 files, with --data or --csv.

    With --data every row of the file is the evaluation set (train and test splits both hold
    it); without it, SAR Lab checkpoints use the dataset they were trained on.
    """
    from sar_core.data.io import (
        ImportedModel,
        check_same_data,
        dataset_of,
        load_model,
        model_io,
    )

    loaded = [load_model(p, trust_pt2=getattr(a, "trust_pt2", False)) for p in paths]
    data_path = getattr(a, "data", None)
    if data_path is None:
        if any(isinstance(m, ImportedModel) for m in loaded):
            raise UsageError(
                "Invalid data=None: an imported model (.onnx / .pt2) needs --data FILE (.npz with "
                "X and y, or a CSV with the label last)"
            )
        check_same_data(paths, loaded)
        return loaded, dataset_of(loaded[0], getattr(a, "csv", None))
    from sar_core.data.userdata import load_user_data

    shape, k = model_io(loaded[0])
    for path, m in zip(paths[1:], loaded[1:]):
        if model_io(m) != (shape, k):
            raise ValueError(
                f"Invalid models: {path!r} takes {model_io(m)[0]} and has {model_io(m)[1]} "
                f"classes, {paths[0]!r} takes {shape} with {k}; one --data file serves one shape"
            )
    return loaded, load_user_data(data_path, input_shape=shape, n_classes=k)


def load_models(a: argparse.Namespace):
    """(loaded models, X, y, seed) of --model on --data, or on the first checkpoint's split."""
    from sar_core.validate import check_int

    seed = check_int("seed", number("seed", a.seed, kind=int), low=0, high=2**31 - 1)
    cks, data = load_with_data(a, a.model)
    X, y = (data.X_test, data.y_test) if a.split == "test" else (data.X_train, data.y_train)
    return cks, X, y, seed
