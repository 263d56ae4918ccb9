"""`study` command: ``run SPEC --out DIR [--executor local|ray] [--address A] [--workers N]`` and
``report DIR --html FILE``.

Protocol of a CLI command module: ``add_arguments(parser)`` adds the options (here two
sub-commands) and ``run(args) -> dict`` does the work and returns what is printed. Nothing heavy
is imported at module level (no torch, no ray), so ``--help`` stays instant. Bad input raises
ValueError (exit 2, one line); progress goes to stderr unless ``--quiet``.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``run`` and ``report`` sub-commands to the ``study`` parser."""
    kw = {"parser_class": type(parser)} if type(parser) is not argparse.ArgumentParser else {}
    sub = parser.add_subparsers(dest="study_command", required=True, metavar="{run,report}", **kw)
    r = sub.add_parser("run", help="run a study spec (finished tasks are skipped)")
    r.add_argument("spec", help="study spec (TOML), e.g. studies/smoke.toml")
    r.add_argument("--out", required=True, help="study directory (cache, checkpoints, tables)")
    r.add_argument("--executor", default="local", choices=("local", "ray"))
    r.add_argument(
        "--address",
        default=None,
        help="ray only: 'auto' or ray://host:port of a running cluster (default: start a local "
        "Ray instance)",
    )
    r.add_argument(
        "--workers",
        default=None,
        help="local: worker processes; ray without --address: CPUs of the local instance "
        "(default: the cores of this machine)",
    )
    p = sub.add_parser("report", help="write one self-contained HTML report of a study directory")
    p.add_argument("dir", help="study directory written by `study run`")
    p.add_argument("--html", required=True, help="output HTML file")
    for sp in (r, p):  # SUPPRESS: a value given before the sub-command is not overwritten
        sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        sp.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS)


def _progress(quiet: bool):
    """The study's progress callback: ``cli.common.Progress`` over tasks, failures in its label.

    The total is known from the first event, so the bar is made then.
    """
    from sar_core.cli.common import Progress

    state: dict = {"bar": None, "failed": 0}

    def on_event(e: dict) -> None:
        state["failed"] += e["status"] == "failed"
        if state["bar"] is None:
            state["bar"] = Progress(e["total"], "study", quiet)
        bar = state["bar"]
        bar.label = f"study ({state['failed']} failed)" if state["failed"] else "study"
        bar(e["done"])

    return on_event


def _invocation() -> list[str]:
    """The command line as typed: ``python -m <module> args`` (or the script's path)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        return ["python", "-m", spec.name.removesuffix(".__main__"), *sys.argv[1:]]
    return ["python", *sys.argv]


def _workers(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"Invalid workers={text!r}: must be an integer >= 1") from None
    if n < 1:
        raise ValueError(f"Invalid workers={n}: must be an integer >= 1")
    return n


def _run(args: argparse.Namespace) -> dict:
    from sar_core.experiments.study.run import run_study

    quiet = bool(getattr(args, "quiet", False))
    if args.address is not None and args.executor != "ray":
        raise ValueError(f"Invalid address={args.address!r}: --address needs --executor ray")
    command = _invocation()
    try:
        out = run_study(
            args.spec,
            args.out,
            executor=args.executor,
            workers=_workers(args.workers),
            address=args.address,
            on_event=_progress(quiet),
            command=command,
        )
    except KeyboardInterrupt:
        sys.stderr.write(
            f"\ninterrupted: finished tasks are stored in {args.out}; run the same command "
            "again to resume\n"
        )
        raise SystemExit(130) from None
    for label, error in out["failed"].items():
        sys.stderr.write(f"failed: {label}: {error}\n")
    return out


def _report(args: argparse.Namespace) -> dict:
    from sar_core.experiments.study.report import write_report

    return write_report(args.dir, args.html)


def run(args: argparse.Namespace) -> dict:
    """Run the chosen sub-command; returns the dict the CLI prints."""
    if args.study_command == "run":
        return _run(args)
    return _report(args)
