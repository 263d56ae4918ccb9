"""Bit anatomy helpers: read a typed value, and one value stored in every format.

Every number here may be huge, tiny, zero, or become inf / NaN once stored: nothing formats a
value without ``ui.layout.fmt_num``, and a format that cannot store the value says so in its row
instead of stopping the page.
"""

from __future__ import annotations

import math

import numpy as np

from sar_core.formats.bits import FORMAT_NAMES, get_format
from ui.compute import flip_bits, flip_effects
from ui.inputs import InputError
from ui.layout import as_number, fmt_num


def read_value(text: str) -> float:
    """One finite number from text (e.g. 0.1, -3e-2, 1e39)."""
    parts = [p for p in str(text).replace(";", ",").split(",") if p.strip()]
    if len(parts) != 1:
        raise InputError(f"Type one number, like 0.1 or -3e-2; you typed '{text}'.")
    try:
        v = float(parts[0])
    except ValueError:
        raise InputError(f"'{text.strip()}' is not a number. Type one like 0.1 or -3e-2.") from None
    if not math.isfinite(v):
        raise InputError(
            f"Type a finite number, like 0.1 or 1e39; '{text.strip()}' is not one (a network "
            "never learns an inf or NaN weight, though a bit flip can create one)."
        )
    return v


def flip(value: float, fmt: str, bits, scale: float | None) -> dict:
    """ui.compute.flip_bits, with the one way a finite value can fail said in plain words."""
    try:
        return flip_bits(value, fmt, bits, scale)
    except ValueError:
        if fmt != "int8":
            raise
        s = abs(value) / 127 if scale is None else scale
        raise InputError(
            f"int8 stores this value as q × s with a scale s = {fmt_num(s, 3)}, and float32 "
            "cannot hold a scale that small (the smallest is about 1.4e-45). Type a larger "
            "value, or set the int8 scale."
        ) from None


def bits_to_change(stored: str, picked, kind: str) -> list[int]:
    """The clicked bits that a fault of ``kind`` really changes in a stored word (MSB first).

    flip: all of them; stuck-at-0 / stuck-at-1: only those now holding a 1 / a 0.
    """
    width = len(stored)
    if kind == "flip":
        return sorted(picked)
    keep = "1" if kind == "stuck-at-0" else "0"
    return sorted(b for b in picked if stored[width - 1 - b] == keep)


def _worst_flip(value: float, fmt: str, scale: float | None) -> int:
    """The bit whose single flip changes ``value`` most (inf / NaN counts as the most)."""
    eff = np.array([as_number(x) for x in flip_effects(value, fmt, scale)], dtype=np.float64)
    return int(np.argmax(np.where(np.isfinite(eff), eff, np.inf)))


def storage_note(value: float, stored) -> str:
    """'' or a sentence when storing changed the value's kind (overflow to inf, underflow to 0)."""
    s = as_number(stored)
    if s is None:
        return ""
    if math.isinf(s) and math.isfinite(value):
        return "too large: stored as inf"
    if s == 0 and value != 0:
        return "too small: stored as 0"
    return ""


def every_format_rows(value: float, scale: float | None) -> tuple[list[dict], list[tuple]]:
    """(table rows, bit-cell rows) of ``value`` stored in each format.

    ``scale`` applies to int8 only (None: |value| / 127). A format that cannot store the value
    (an int8 scale below float32's range) gets a row that says why; it has no bit cells.
    """
    rows, cells = [], []
    for f in FORMAT_NAMES:
        s_f = scale if f == "int8" else None
        try:
            stored = flip_bits(value, f, [], s_f)
            worst = _worst_flip(value, f, s_f)
            after = flip_bits(value, f, [worst], s_f)["value_after"]
        except ValueError:
            rows.append(
                {
                    "format": f,
                    "stored value": "cannot be stored",
                    "rounding error": None,
                    "worst single flip": "int8 needs a scale |value| / 127 that float32 can hold"
                    if f == "int8"
                    else "outside this format's range",
                }
            )
            continue
        before = as_number(stored["value_before"])
        err = abs(before - value) if before is not None and math.isfinite(before) else None
        note = storage_note(value, before)
        rows.append(
            {
                "format": f,
                "stored value": fmt_num(before) + (f" ({note})" if note else ""),
                "rounding error": err,
                "worst single flip": f"bit {worst}: {fmt_num(before, 3)} → {fmt_num(after, 3)}",
            }
        )
        cells.append((f, stored["bits_before"], f))
    if not cells:  # keep the figure drawable
        width = get_format("float32").width
        cells.append(("float32", "0" * width, "float32"))
    return rows, cells
