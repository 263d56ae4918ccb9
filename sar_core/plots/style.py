"""Shared look: method names and colours (colour-blind-safe Okabe-Ito palette), field colours."""

from __future__ import annotations

METHOD_LABELS = {
    "sgd": "SGD",
    "adam": "Adam",
    "sam": "SAM",
    "asam": "ASAM",
    "sar": "SAR",
    "fat": "Fault-aware (FAT)",
}
METHOD_COLORS = {
    "sgd": "#0072B2",  # blue
    "adam": "#56B4E9",  # sky blue
    "sam": "#E69F00",  # orange
    "asam": "#CC79A7",  # purple
    "sar": "#D55E00",  # vermillion
    "fat": "#009E73",  # green
}
FIELD_COLORS = {
    "sign": "#D55E00",
    "exponent": "#0072B2",
    "mantissa": "#009E73",
    "integer": "#009E73",
}
_EXTRA = ["#000000", "#F0E442", "#999999", "#8C564B", "#17BECF"]


def method_label(method: str) -> str:
    """Display name of a training method (unknown names pass through)."""
    return METHOD_LABELS.get(method, method)


def method_color(method: str, index: int = 0) -> str:
    """Colour of a method; unknown methods get a fixed extra colour by index."""
    return METHOD_COLORS.get(method, _EXTRA[index % len(_EXTRA)])
