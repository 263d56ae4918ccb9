"""flip: store one value in a number format, flip one bit, show both encodings (numpy only)."""

from __future__ import annotations

import argparse

from sar_core.names import FORMAT_NAMES


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the flip command."""
    p.add_argument("--format", required=True, choices=FORMAT_NAMES)
    p.add_argument("--value", required=True)
    p.add_argument("--bit", required=True, help="bit position, 0 = LSB")
    p.add_argument(
        "--scale",
        default=None,
        help="int8 step s (value = q*s). Default |value|/127: the value is stored as q = +-127, "
        "the saturated end of the int8 range, as if it were its tensor's largest weight",
    )


def run(a: argparse.Namespace) -> dict:
    """Flip the bit; the FlipResult as a dict."""
    from sar_core.cli.common import number, optional
    from sar_core.formats.bits import flip_value, overflow_note
    from sar_core.validate import check_float

    value = check_float("value", number("value", a.value))
    bit = number("bit", a.bit, kind=int)
    out = flip_value(value, a.format, bit, optional("scale", a.scale)).to_dict()
    note = overflow_note(value, a.format)
    return out if note is None else {**out, "note": note}
