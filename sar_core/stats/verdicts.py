"""Win / tie / loss from an interval: the one rule every table, caption and lesson uses."""

from __future__ import annotations

import math

SYMBOLS = {"win": "\u25b2", "loss": "\u25bc", "tie": "\u00b7"}  # ▲ ▼ ·


def verdict(lo: float, hi: float) -> str:
    """'win' when the whole interval is above 0, 'loss' when below, 'tie' otherwise (or NaN)."""
    if math.isfinite(lo) and lo > 0:
        return "win"
    if math.isfinite(hi) and hi < 0:
        return "loss"
    return "tie"


def symbol(v: str) -> str:
    """The table glyph of a verdict."""
    try:
        return SYMBOLS[v]
    except KeyError:
        raise ValueError(f"Invalid verdict={v!r}: must be one of {sorted(SYMBOLS)}") from None
