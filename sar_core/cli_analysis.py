"""CLI subcommands for loss landscapes and sharpness (filled in by the landscape work)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], dict]] = {}


def register(sub, common: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add the analysis subcommands to the CLI parser."""
