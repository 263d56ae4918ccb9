"""One validation behaviour for every input: a bad value is flagged at once, next to its widget,
in words a student understands; the page's run button waits until every flag is gone, and the
previous results stay on screen.

Number boxes have no min / max of their own (a browser box with bounds shows a rejected value in
red while the page silently keeps using the last accepted one); their range is checked here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")


class InputError(ValueError):
    """A bad setting, with a message meant for the person who typed it."""


class Checks:
    """The input problems of one page run. ``check`` shows a problem at once and remembers it."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def check(self, fn: Callable[..., T], *args: Any, where=None, **kwargs: Any) -> T | None:
        """``fn(*args, **kwargs)``; on ValueError an error box (in ``where``) and None."""
        try:
            return fn(*args, **kwargs)
        except ValueError as e:
            self.flag(str(e), where=where)
            return None

    def flag(self, message: str, *, where=None) -> None:
        """Show ``message`` as an error (in ``where``, default: here) and remember it."""
        (where or st).error(message, icon=":material/error:")
        self.problems.append(message)

    @property
    def ok(self) -> bool:
        """True when no input was flagged in this run."""
        return not self.problems

    def waiting_note(self, where=None) -> None:
        """Say why the run button does nothing (only when something is flagged)."""
        if self.problems:
            (where or st).caption("Fix the settings marked in red first; the results below stay.")


# --- readers: text or number -> value, InputError in plain words -----------------------------


def _parts(text: str) -> list[str]:
    """The non-empty pieces of comma- (or semicolon-) separated text."""
    return [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]


def _numbers(text: str) -> list[float]:
    out = []
    for part in _parts(text):
        try:
            out.append(float(part))
        except ValueError:
            raise InputError(f"'{part}' is not a number. Type numbers like 0.01 or 1e-3.") from None
    return out


def read_ber(text: str, what: str = "The bit error rate") -> float:
    """One bit error rate in (0, 1] from text."""
    vals = _numbers(text)
    if len(vals) != 1:
        raise InputError(f"{what} needs one number, like 0.003 or 3e-3; you typed '{text}'.")
    return check_ber(vals[0], what)


def check_ber(x: float, what: str = "The bit error rate") -> float:
    """A BER must be above 0 and at most 1 (it is a probability)."""
    if not math.isfinite(x) or not 0 < x <= 1:
        raise InputError(
            f"{what} is a probability: above 0 and at most 1 (0.003 means 3 bits in 1000 "
            f"flip); {x:g} is not."
        )
    return float(x)


def read_bers(text: str) -> list[float]:
    """Several BERs from comma-separated text (each in (0, 1])."""
    vals = _numbers(text)
    if not vals:
        raise InputError("Type at least one bit error rate, like 1e-3, 3e-3, 0.01.")
    return [check_ber(v, "Each bit error rate") for v in vals]


def read_floats(text: str, label: str, *, low: float, high: float) -> list[float]:
    """Several numbers in [low, high] from comma-separated text."""
    vals = _numbers(text)
    if not vals:
        raise InputError(f"{label}: type at least one number, like 0.1, 0.5, 1.")
    return [check_float_in(v, label, low=low, high=high) for v in vals]


def check_int_in(value: Any, label: str, *, low: int, high: int) -> int:
    """A whole number in [low, high]."""
    v = value
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(f"{label} must be a whole number from {low} to {high}.")
    if not math.isfinite(v) or v != int(v) or not low <= v <= high:
        raise InputError(f"{label} must be a whole number from {low} to {high}; {v:g} is not.")
    return int(v)


def check_float_in(
    value: Any, label: str, *, low: float, high: float, low_open: bool = False
) -> float:
    """A number in [low, high] (or (low, high] when ``low_open``)."""
    v = value
    lo = f"above {low:g}" if low_open else f"from {low:g}"
    if v is None or isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InputError(f"{label} must be a number {lo} to {high:g}.")
    if v < low or v > high or (low_open and v == low):
        raise InputError(f"{label} must be a number {lo} to {high:g}; {v:g} is not.")
    return float(v)


def _whole(part: str) -> int | float | None:
    """A typed number as written: '30', '1e9' (1000000000, not 1), '2.5' (not whole: a float);
    None when it is no number."""
    try:
        return int(part)
    except ValueError:
        pass
    try:
        v = float(part)
    except ValueError:
        return None
    return int(v) if math.isfinite(v) and v == int(v) else v


def read_int(text: str, label: str, *, low: int, high: int) -> int:
    """One whole number in [low, high] from text ('1e9' is read as 1000000000 and refused when
    it is out of range: a browser number box would have turned it into 1)."""
    v = _whole(str(text).strip())
    if v is None:
        raise InputError(
            f"{label} must be a whole number from {low} to {high}; '{text}' is not a number."
        )
    return check_int_in(v, label, low=low, high=high)


def int_box(
    label: str,
    default: int,
    *,
    key: str,
    low: int,
    high: int,
    checks: Checks,
    where=None,
    bind: str | None = None,
    help: str | None = None,
) -> int | None:
    """A whole-number box that reads exactly what was typed (a text box checked by read_int:
    '1e9' or '1e12' is refused with a message, not silently cut to 1); None when flagged."""
    w = where or st
    kw = {"bind": bind} if bind else {}
    text = w.text_input(label, str(default), key=key, help=help, **kw)
    return checks.check(read_int, text, label, low=low, high=high, where=where)


def read_ints(text: str, label: str, *, low: int, high: int) -> tuple[int, ...]:
    """Comma-separated whole numbers in [low, high] (empty text: an empty tuple)."""
    out = []
    for part in _parts(text):
        v = _whole(part)
        if v is None or not isinstance(v, int):
            raise InputError(f"{label}: '{part}' is not a whole number; type numbers like 64, 32.")
        out.append(check_int_in(v, label, low=low, high=high))
    return tuple(out)


def read_bits(text: str, fmt: str) -> tuple[int, ...]:
    """Bit positions from text: '0-7', '30,31' or a group (all, sign, exponent, mantissa, ...)."""
    from sar_core.formats.bits import get_format, parse_bits

    top = get_format(fmt).width - 1
    groups = "all, sign, msb, lsb" + (", exponent, mantissa" if fmt != "int8" else "")
    try:
        bits = parse_bits(text, fmt)
    except ValueError:
        raise InputError(
            f"Bits for {fmt} are numbered 0 to {top} (0 is the least significant bit). Type "
            f"positions like 0-3 or {top}, or a group: {groups}. '{text}' is not one of them."
        ) from None
    return need_some(bits, f"Choose at least one bit (0 to {top}) that may flip.")


def need_some(items: Sequence[T], message: str) -> Sequence[T]:
    """``items`` when not empty, else an InputError with ``message``."""
    if not items:
        raise InputError(message)
    return items


def at_most(items: Sequence[T], n: int, what: str) -> Sequence[T]:
    """``items`` when there are at most ``n`` of them."""
    if len(items) > n:
        raise InputError(f"Choose at most {n} {what} here (you chose {len(items)}).")
    return items


# --- rates on a format's own scale -------------------------------------------------------------

# a format's bit error rate starts at its own scale (int8's 1e-2 puts every float16 model at
# chance): the suite's digits MLP loses about 10 points at int8 3e-2 and at float16 1e-5
FORMAT_BER = {"int8": 1e-2, "float16": 1e-5, "bfloat16": 1e-5, "float32": 1e-5}
# the rate widgets that follow the shared "format" picker (Bit flips, Robustness, Landscape):
# key -> its value around the format's rate b (int8: 1e-2, (1e-3, 1e-1), (1e-3, 5e-2))
RATES_OF_FORMAT = {
    "ber": lambda b: b,
    "ber_range": lambda b: (b / 10, b * 10),
    "range": lambda b: (b / 10, b * 5),
}


def format_ber(fmt: str) -> float:
    """The bit error rate a format's settings start at (``FORMAT_BER``; 1e-2 if unknown)."""
    return FORMAT_BER.get(fmt, 1e-2)


def rate_of_format(key: str, fmt: str):
    """The value of rate widget ``key`` (``RATES_OF_FORMAT``) at format ``fmt``'s scale, on the
    1-2-5 grid (1e-5 / 10 is 1.0000000000000002e-06 in floating point, not 1e-6)."""
    value = RATES_OF_FORMAT[key](format_ber(fmt))
    if isinstance(value, tuple):
        return tuple(float(f"{v:.3g}") for v in value)
    return float(f"{value:.3g}")


def rates_follow_format(format_key: str = "format") -> None:
    """on_change of a format picker: every rate in ``RATES_OF_FORMAT`` moves to the new format's
    scale, on this page and (through ``ui.widgets.carried``'s kept values) on the others.

    Only a format change moves them: a rate picked afterwards stays."""
    fmt = st.session_state[format_key]
    for key in RATES_OF_FORMAT:
        value = rate_of_format(key, fmt)
        st.session_state[f"_kept_{key}"] = value
        if key in st.session_state:  # drawn on this page: the widget takes it
            st.session_state[key] = value
