"""python -m sar_core.study {run,report} ... (the same command as `python -m sar_core study`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


class _Parser(argparse.ArgumentParser):
    """Errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ValueError(f"{self.prog}: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run, print (JSON with --json); 2 on bad input, 1 on an internal error."""
    from sar_core.study import cli

    parser = _Parser(prog="python -m sar_core.study", description="SAR Lab studies")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    cli.add_arguments(parser)
    try:
        args = parser.parse_args(argv)
        out = cli.run(args)
    except SystemExit as e:  # --help, or Ctrl-C (130)
        return int(e.code or 0)
    except ValueError as e:
        sys.stderr.write(f"error: {' '.join(str(e).split())}\n")
        return 2
    except Exception as e:  # noqa: BLE001 - one line, never a traceback
        sys.stderr.write(f"error: internal {type(e).__name__}: {' '.join(str(e).split())}\n")
        return 1
    from sar_core.io import dumps

    if args.json:
        sys.stdout.write(dumps(out) + "\n")
    else:
        for k, v in out.items():
            sys.stdout.write(f"{k}: {dumps(v)}\n")
    return 1 if out.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
