"""Command line: python -m sar_core <command> [options] [--json].

Commands: train, inject, compare, sweep, flip, landscape, sharpness, report, study, finetune. Progress goes to stderr; with
--json exactly one JSON object goes to stdout. Bad input exits with code 2 and one line on stderr
naming the parameter, the value and what is allowed; an internal error exits 1, also one line.

Every command is one line of ``COMMANDS``: its module and its help. A command module exposes

    add_arguments(parser: argparse.ArgumentParser) -> None   # its own options (sub-parsers too)
    run(args: argparse.Namespace) -> dict                    # the work; the dict is printed

and imports its heavy dependencies inside ``run``, so ``--help`` and ``flip`` never load torch.
Only the module of the command being run (or whose --help is shown) is imported. ``main`` adds
``--json`` and ``--quiet`` to every command, and ``--threads N`` to those that use torch, then
calls ``sar_core.runtime.configure_threads`` once before ``run``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

from sar_core.cli.common import Parser, UsageError


class Command(NamedTuple):
    """One CLI command: the module that implements it and its one-line help."""

    module: str  # exposes add_arguments(parser) and run(args) -> dict
    help: str
    uses_torch: bool = True  # False: no --threads option, torch's threads are left alone


COMMANDS: dict[str, Command] = {
    "train": Command("sar_core.cli.train", "train one model and save it as safetensors"),
    "inject": Command("sar_core.cli.inject", "Monte Carlo fault injection on one model"),
    "compare": Command(
        "sar_core.cli.compare", "paired comparison of models under identical faults"
    ),
    "sweep": Command("sar_core.cli.sweep", "BER sweep of several models"),
    "flip": Command("sar_core.cli.flip", "flip one bit of one value", uses_torch=False),
    "landscape": Command("sar_core.cli.landscape", "1D / 2D loss slices along random directions"),
    "sharpness": Command(
        "sar_core.cli.sharpness", "Hessian / SAM / average / fault-model sharpness"
    ),
    "report": Command("sar_core.cli.report", "double-win table: accuracy, attack flips, overheads"),
    "study": Command("sar_core.cli.study", "run a study spec (local or Ray) or write its report"),
    "finetune": Command(
        "sar_core.cli.finetune", "fine-tune your own model (.onnx) and write it back in its format"
    ),
}


def _add_option(p: argparse.ArgumentParser, *flags: str, **kwargs) -> None:
    with contextlib.suppress(argparse.ArgumentError):  # the command module defines it itself
        p.add_argument(*flags, **kwargs)


def _common(p: argparse.ArgumentParser, cmd: Command) -> None:
    _add_option(p, "--json", action="store_true", help="print one JSON object on stdout")
    _add_option(p, "--quiet", action="store_true", help="no progress bar")
    if cmd.uses_torch:
        _add_option(
            p,
            "--threads",
            default=None,
            help="torch intra-op threads (default: $SAR_NUM_THREADS, else 1)",
        )


def build_parser(argv: Sequence[str] | None = None) -> Parser:
    """The argument parser; only the command named first in ``argv`` gets its options.

    With ``argv=None`` every command gets its options (this imports every command module).
    """
    parser = Parser(
        prog="python -m sar_core", description="SAR Lab: sharpness-aware training vs bit flips"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    chosen = argv[0] if argv else None
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        if argv is None or name == chosen:
            importlib.import_module(cmd.module).add_arguments(p)
            _common(p, cmd)
    return parser


def _print(args: argparse.Namespace, out: dict) -> None:
    from sar_core.data.io import dumps

    if getattr(args, "json", False):
        sys.stdout.write(dumps(out) + "\n")
    else:
        for k, v in out.items():
            sys.stdout.write(f"{k}: {dumps(v)}\n")


def _run(args: argparse.Namespace) -> dict:
    cmd = COMMANDS[args.command]
    if cmd.uses_torch:
        from sar_core.cli.common import optional
        from sar_core.runtime import configure_threads

        configure_threads(optional("threads", getattr(args, "threads", None), kind=int))
    return importlib.import_module(cmd.module).run(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input, 1 internal error or failed tasks)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv).parse_args(argv)
        out = _run(args)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except (UsageError, ValueError) as e:
        sys.stderr.write(f"error: {' '.join(str(e).split())}\n")
        return 2
    except Exception as e:  # noqa: BLE001 — one line, never a traceback
        sys.stderr.write(f"error: internal {type(e).__name__}: {' '.join(str(e).split())}\n")
        return 1
    _print(args, out)
    # a command that reports failed parts (a study's failed tasks) did not fully succeed
    return 1 if isinstance(out, dict) and out.get("failed") else 0


__all__ = ["COMMANDS", "Command", "Parser", "UsageError", "build_parser", "main"]
