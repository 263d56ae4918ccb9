"""Input validation at the library boundary: errors name the parameter, the value and the limit."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; otherwise raise a ValueError listing them."""
    choices = list(choices)
    if value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise ValueError(f"Invalid {name}={_show(value)}: must be one of {allowed}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float inside the given interval, or raise ValueError."""
    lo_b = "(" if low_open else "["
    hi_b = ")" if high_open else "]"
    rng = f"{lo_b}{'-inf' if low is None else low}, {'inf' if high is None else high}{hi_b}"
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        and not _is_numpy_number(value)
    ):
        raise ValueError(f"Invalid {name}={_show(value)}: must be a number in {rng}")
    try:
        x = float(value)
    except OverflowError:  # an int beyond the float range
        x = math.inf
    if not math.isfinite(x):
        raise ValueError(f"Invalid {name}={_show(value)}: must be a finite number in {rng}")
    if low is not None and (x < low or (low_open and x == low)):
        raise ValueError(f"Invalid {name}={_show(value)}: must be in {rng}")
    if high is not None and (x > high or (high_open and x == high)):
        raise ValueError(f"Invalid {name}={_show(value)}: must be in {rng}")
    return x


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as an int inside [low, high], or raise ValueError."""
    rng = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    if isinstance(value, bool) or not (isinstance(value, int) or _is_numpy_int(value)):
        raise ValueError(f"Invalid {name}={_show(value)}: must be an integer in {rng}")
    x = int(value)
    if (low is not None and x < low) or (high is not None and x > high):
        raise ValueError(f"Invalid {name}={_show(value)}: must be an integer in {rng}")
    return x


def _is_numpy_number(value: Any) -> bool:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, (np.floating, np.integer))


def _is_numpy_int(value: Any) -> bool:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, np.integer)


def read_capped(
    source, max_bytes: int, *, path_label: str, size_label: str | None = None, hint: str = ""
) -> bytes:
    """The bytes of a file (or the bytes given), its size checked against ``max_bytes`` before it
    is read: ``ValueError`` names the path or the size, the cap, and ``hint`` (e.g. the limit)."""
    from pathlib import Path

    size_label = size_label or path_label
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        p = Path(source)
        try:
            if not p.is_file():
                raise ValueError(f"Invalid {path_label} path={str(source)[:200]!r}: no such file")
            if p.stat().st_size > max_bytes:
                raise ValueError(
                    f"Invalid {size_label} size={p.stat().st_size} bytes: the cap is "
                    f"{max_bytes} bytes{hint}"
                )
            data = p.read_bytes()
        except OSError as e:  # name too long, permission denied, ...
            raise ValueError(
                f"Invalid {path_label} path={str(source)[:200]!r}: cannot be read ({e.strerror})"
            ) from None
    if len(data) > max_bytes:
        raise ValueError(
            f"Invalid {size_label} size={len(data)} bytes: the cap is {max_bytes} bytes{hint}"
        )
    return data
