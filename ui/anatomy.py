"""Bit anatomy helpers: read a typed value, and one value stored in every format.

Every number here may be huge, tiny, zero, or become inf / NaN once stored: nothing formats a
value without ``ui.layout.fmt_num``, and a format that cannot store the value says so in its row
instead of stopping the page.
"""

from __future__ import annotations

import math

import numpy as np

from sar_core.faults.model import apply_masks
from sar_core.formats.bits import FORMAT_NAMES, decode, get_format
from ui.compute_weights import flip_bits, flip_effects
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


_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32}


def _int8_exact(r: dict) -> dict:
    """An int8 result with its values as q × s in float64: q × s may exceed float32's range
    (127 × 2.76e36 is the stored 3.5e38, not the inf a float32 product gives)."""
    s = float(np.float32(r["scale"]))  # the scale as the format stores it (float32)
    q0, q1 = (
        float(decode(np.array([int(r[k], 2)], dtype=np.uint8), "int8", 1.0)[0])  # q, exact
        for k in ("bits_before", "bits_after")
    )
    before, after = q0 * s, q1 * s
    if before == 0:
        rel = 0.0 if after == before else math.inf
    else:
        rel = abs(after - before) / abs(before)
    return {**r, "value_before": before, "value_after": after, "relative_change": rel}


def flip(value: float, fmt: str, bits, scale: float | None) -> dict:
    """ui.compute_weights.flip_bits, with the ways a finite value can fail said in plain words; int8
    values are exact (q × s in float64)."""
    if fmt == "int8" and value == 0 and scale is None:  # -0 too
        raise InputError(
            "int8 stores a weight as q × s with s = max|w| / 127 of its tensor; a typed 0 gives "
            "no scale (0 / 127 = 0). Type the int8 scale s next to the value, like 1e-3."
        )
    try:
        r = flip_bits(value, fmt, bits, scale)
    except ValueError:
        if fmt != "int8":
            raise
        s = abs(value) / 127 if scale is None else scale
        raise InputError(
            f"int8 stores this value as q × s with a scale s = {fmt_num(s, 3)}, and float32 "
            "cannot hold a scale that small (the smallest is about 1.4e-45). Type a larger "
            "value, or set the int8 scale."
        ) from None
    return _int8_exact(r) if fmt == "int8" else r


def changed_bits(stored: str, picked, kind: str) -> list[int]:
    """The clicked bits a fault of ``kind`` really changes in a stored word (bits MSB first):
    sar_core.faults.model.apply_masks on the stored code (a stuck bit that already holds its
    value changes nothing)."""
    width = len(stored)
    code = np.array([int(stored, 2)], dtype=_UINT[width])
    mask = np.array([sum(1 << b for b in picked)], dtype=_UINT[width])
    diff = int((code ^ apply_masks(code, mask, kind))[0])
    return [b for b in range(width) if diff >> b & 1]


def effects(value: float, fmt: str, scale: float | None) -> list[float]:
    """Relative change of ``value`` for a flip of each bit position (int8: exact, float64)."""
    if fmt != "int8":
        return flip_effects(value, fmt, scale)
    return [flip(value, fmt, [b], scale)["relative_change"] for b in range(8)]


def _worst_flip(value: float, fmt: str, scale: float | None) -> int:
    """The bit whose single flip changes ``value`` most (inf / NaN counts as the most)."""
    eff = np.array([as_number(x) for x in effects(value, fmt, scale)], dtype=np.float64)
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
            stored = flip(value, f, [], s_f)
            worst = _worst_flip(value, f, s_f)
            after = flip(value, f, [worst], s_f)["value_after"]
        except ValueError:
            rows.append(
                {
                    "format": f,
                    "stored value": "cannot be stored",
                    "rounding error": None,
                    "worst single flip": "int8 needs a scale s > 0 that float32 can hold"
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
