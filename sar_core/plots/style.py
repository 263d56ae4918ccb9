"""Shared look: one name and one fixed colour per method, everywhere; field colours.

The method colours are colour-blind safe: six of the Okabe-Ito palette (Okabe & Ito 2008) and
three of Paul Tol's "muted" scheme. Checked in tests/test_regressions.py: under simulated
protan-, deutan- and tritanopia (Machado et al. 2009) every pair stays at least 12 CIE76 units
apart, and no two methods share a hue family at similar lightness (SAM green, SAR vermillion;
before, SAM orange and SAR vermillion read as "both orange").
Every figure takes its method colours from :func:`method_color`; nothing else picks them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

METHOD_LABELS = {
    "sgd": "SGD",
    "adam": "Adam",
    "sam": "SAM",
    "asam": "ASAM",
    "sar": "SAR",
    "fat": "Fault-aware (FAT)",
    "clip": "Weight clipping",
    "randbet": "RandBET",
    "sar_clip": "SAR + clipping",
    "asam_tuned": "ASAM (tuned rho)",  # the suite's tuned entry
}
METHOD_COLORS = {
    "sgd": "#0072B2",  # blue (Okabe-Ito)
    "adam": "#56B4E9",  # sky blue (Okabe-Ito)
    "sam": "#009E73",  # bluish green (Okabe-Ito)
    "asam": "#CC79A7",  # reddish purple (Okabe-Ito)
    "sar": "#D55E00",  # vermillion (Okabe-Ito)
    "fat": "#000000",  # black (Okabe-Ito)
    "clip": "#999933",  # olive (Tol muted)
    "randbet": "#332288",  # indigo (Tol muted)
    "sar_clip": "#882255",  # wine (Tol muted)
}
FIELD_COLORS = {
    "sign": "#D55E00",
    "exponent": "#0072B2",
    "mantissa": "#009E73",
    "integer": "#009E73",
}
# models whose method is unknown (a checkpoint from elsewhere): greys and muted hues that no
# method above uses
_EXTRA = ["#777777", "#44AA99", "#AA4499", "#DDCC77", "#BBBBBB"]
# a sequence of one method at several settings (SAR at several rho): plasma samples, violet
# to amber (perceptually ordered, colour-blind safe), leaving out plasma's deep-blue end so no
# run looks like SGD's blue reference
SEQUENTIAL = ["#8B0AA5", "#B12A90", "#CC4778", "#E16462", "#F2844B", "#FCA636", "#FCCE25"]
GREY = "#9A9A9A"


ARCH_LABELS = {"mlp": "MLP", "cnn": "CNN", "cnn1d": "1-D CNN"}


def arch_label(arch: str) -> str:
    """Display name of a model architecture (unknown names in capitals)."""
    return ARCH_LABELS.get(arch, arch.upper())


def method_label(method: str) -> str:
    """Display name of a training method (unknown names pass through)."""
    return METHOD_LABELS.get(method, method)


def method_color(method: str, index: int = 0) -> str:
    """The fixed colour of a method; unknown methods get a fixed extra colour by index."""
    return METHOD_COLORS.get(method, _EXTRA[index % len(_EXTRA)])


def curve_colors(methods: Sequence[str]) -> list[str]:
    """One colour per curve: each method's own colour for its first curve; a second curve of the
    same method (your own SGD next to the demo SGD) gets the next unused extra colour, so two
    models never share a colour in one figure."""
    out, seen, extra = [], set(), iter(_EXTRA)
    used = {METHOD_COLORS.get(m) for m in methods}
    for m in methods:
        c = METHOD_COLORS.get(m) if m not in seen else None
        if c is None:
            c = next((x for x in extra if x not in used), GREY)
            used.add(c)
        seen.add(m)
        out.append(c)
    return out


def sequential_colors(n: int) -> list[str]:
    """``n`` distinguishable colours in order (for one method at ``n`` settings)."""
    if n <= 0:
        return []
    if n == 1:
        return [SEQUENTIAL[3]]
    if n > len(SEQUENTIAL):
        return [SEQUENTIAL[i % len(SEQUENTIAL)] for i in range(n)]
    last = len(SEQUENTIAL) - 1
    return [SEQUENTIAL[round(i * last / (n - 1))] for i in range(n)]


def rgba(hex_color: str, alpha: float) -> str:
    """'#RRGGBB' as an rgba() string with opacity ``alpha``."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def curve_percents(curves: Sequence[Mapping]) -> list[float]:
    """Every finite mean and CI bound of accuracy ``curves`` (fractions), in %: what a y range
    must span."""
    return [
        100 * float(v)
        for c in curves
        for key in ("mean", "lo", "hi")
        for v in c.get(key, [])
        if v is not None and math.isfinite(v)
    ]
