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

    def __init__(self, total: int, label: str, quiet: bool) -> None:
        self.total, self.label, self.quiet = max(total, 1), label, quiet
        self.t0 = time.perf_counter()

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


def load_models(a: argparse.Namespace):
    """(checkpoints, X, y, seed) of --model on the first checkpoint's dataset split."""
    from sar_core.data.io import check_same_data, dataset_of, load_checkpoint
    from sar_core.validate import check_int

    seed = check_int("seed", number("seed", a.seed, kind=int), low=0, high=2**31 - 1)
    cks = [load_checkpoint(p) for p in a.model]
    check_same_data(a.model, cks)
    data = dataset_of(cks[0], a.csv)
    X, y = (data.X_test, data.y_test) if a.split == "test" else (data.X_train, data.y_train)
    return cks, X, y, seed
