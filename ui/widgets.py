"""Widgets and page helpers shared by the pages: errors, intro text, model / bit / rate pickers.

Page settings are shared through the URL: simple widgets use ``bind="query-params"`` (their key
is the query parameter), the bit toggles are written as one compact ``bits=0-7,31`` parameter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import streamlit as st

from sar_core import limits
from sar_core.bits import FORMAT_NAMES, bit_fields, get_format, parse_bits
from sar_core.faults import FaultModel
from ui import registry
from ui.registry import Entry

T = TypeVar("T")

FIELD_MD = {"sign": "red", "exponent": "blue", "mantissa": "green", "integer": "green"}
BER_GRID = tuple(float(f"{m}e{e}") for e in range(-7, 0) for m in (1, 2, 5)) + (0.1,)
DEFAULT_MODELS = ("digits MLP · SGD", "digits MLP · SAM", "digits MLP · SAR")


# --- errors ----------------------------------------------------------------------------------


@contextmanager
def show_errors() -> Iterator[None]:
    """Turn a ValueError from sar_core into an ``st.error`` with its message, then stop the run.

    The page stays usable: the next widget change reruns it normally.
    """
    try:
        yield
    except ValueError as e:
        st.error(str(e), icon=":material/error:")
        st.stop()


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn``; a ValueError becomes an ``st.error`` and the run stops (no traceback)."""
    with show_errors():
        return fn(*args, **kwargs)


# --- layout ----------------------------------------------------------------------------------


def page_header(title: str, intro: str) -> None:
    """Title plus the two or three sentences that say what the page shows and what to try."""
    st.title(title)
    st.markdown(intro)


def fmt_pct(x: float | None) -> str:
    """Accuracy in [0, 1] as a percentage string."""
    return "–" if x is None else f"{100 * x:.1f}%"


def finite_or_none(x: float | None) -> float | None:
    """``x`` as a float, or None when missing or not finite (a table then shows an empty cell)."""
    return None if x is None or not math.isfinite(x) else float(x)


def fmt_ci(ci: Sequence[float] | None, digits: int = 1) -> str:
    """A 95% CI [low, high] in [0, 1] as '91.2–94.0%'; 'n/a' when undefined (one trial: NaN)."""
    if ci is None or finite_or_none(ci[0]) is None or finite_or_none(ci[1]) is None:
        return "n/a"
    return f"{100 * ci[0]:.{digits}f}–{100 * ci[1]:.{digits}f}%"


def fmt_ber(x: float) -> str:
    """A BER as 1e-4 / 2e-3 style text."""
    m, e = f"{x:.0e}".split("e")
    return f"{m}e{int(e)}"


class LiveChart:
    """A chart slot that redraws a plotly figure at most every ``interval`` seconds."""

    def __init__(self, interval: float = 0.3) -> None:
        self.slot = st.empty()
        self.interval = interval
        self._last = 0.0
        self._n = 0

    def draw(self, fig, *, force: bool = False) -> None:
        """Redraw (throttled unless ``force``)."""
        now = time.perf_counter()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self._n += 1
        self.slot.plotly_chart(fig, key=f"live_{id(self)}_{self._n}")


# --- models ----------------------------------------------------------------------------------


def model_picker(
    label: str,
    *,
    key: str,
    default: Sequence[str] = DEFAULT_MODELS,
    max_selections: int | None = None,
    help: str | None = None,
) -> list[Entry]:
    """Multiselect over demo + own models (bound to the URL); returns the chosen entries."""
    pool = registry.all_entries()
    names = list(pool)
    wanted = [n for n in names if any(n.endswith(d) for d in default)]
    picked = st.multiselect(
        label,
        names,
        default=wanted[: max_selections or None],
        key=key,
        max_selections=max_selections,
        help=help or "Demo models are shared and read-only; your own models come from Train.",
        bind="query-params",
    )
    return [pool[n] for n in picked if n in pool]


def single_model_picker(label: str, *, key: str, default: str = "digits MLP · SAR") -> Entry:
    """Selectbox over demo + own models (bound to the URL)."""
    pool = registry.all_entries()
    names = list(pool)
    idx = next((i for i, n in enumerate(names) if n.endswith(default)), 0)
    name = st.selectbox(label, names, index=idx, key=key, bind="query-params")
    return pool[name]


# --- bits ------------------------------------------------------------------------------------


def compact_bits(bits: Sequence[int]) -> str:
    """Sorted positions as a compact spec: [0,1,2,3,31] -> '0-3,31' ('' when empty)."""
    out, run = [], []
    for b in sorted(set(bits)):
        if run and b == run[-1] + 1:
            run.append(b)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [b]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def bit_label(fmt: str, bit: int) -> str:
    """Markdown label of a bit toggle: its number, coloured by field (the selection is the fill)."""
    return f":{FIELD_MD[bit_fields(fmt)[bit]]}[**{bit}**]"


def field_legend(fmt: str) -> str:
    """Markdown legend of the field colours of a format (MSB field first)."""
    names = {"sign": "sign", "exponent": "exponent", "mantissa": "mantissa", "integer": "magnitude"}
    fields = list(dict.fromkeys(bit_fields(fmt)[::-1]))
    return " ".join(f":{FIELD_MD[f]}[**{names[f]}**]" for f in fields)


def _set_bits(state_key: str, bits: Sequence[int]) -> None:
    st.session_state[state_key] = list(bits)


def bit_picker(
    fmt: str, *, key: str = "bits", default: str = "all", label: str = "Bits"
) -> list[int]:
    """Bit toggles coloured by field (numbered, bit 0 = LSB) with quick groups; URL ``key=spec``.

    Returns the selected positions (possibly empty; the caller turns that into an error).
    """
    width = get_format(fmt).width
    fields = bit_fields(fmt)
    state_key = f"{key}_{fmt}"
    if state_key not in st.session_state:
        # the URL value describes the format of the page load; a later format switch starts
        # from the default instead
        used = f"_{key}_url_used"
        spec = default if st.session_state.get(used) else st.query_params.get(key, default)
        st.session_state[used] = True
        try:
            init = list(parse_bits(spec, fmt)) if spec != "none" else []
        except ValueError:
            init = list(parse_bits(default, fmt))
        st.session_state[state_key] = init
    groups = ["all", "none", "sign"] + (["exponent", "mantissa"] if fields[0] == "mantissa" else [])
    groups += ["msb", "lsb"]
    st.markdown(f"**{label}** — {field_legend(fmt)} · bit 0 is the least significant bit")
    cols = st.columns(len(groups))
    for col, g in zip(cols, groups):
        positions = [] if g == "none" else list(parse_bits(g, fmt))
        col.button(
            g.upper() if g in ("msb", "lsb") else g,
            key=f"{state_key}_grp_{g}",
            on_click=_set_bits,
            args=(state_key, positions),
            width="stretch",
        )
    picked = st.pills(
        label,
        list(range(width - 1, -1, -1)),
        selection_mode="multi",
        key=state_key,
        format_func=lambda b: bit_label(fmt, b),
        label_visibility="collapsed",
    )
    picked = sorted(picked or [])
    st.query_params[key] = compact_bits(picked) or "none"
    return picked


# --- fault models ----------------------------------------------------------------------------


def format_picker(*, key: str = "format", default: str = "int8") -> str:
    """Number format the weights are stored in (segmented control, URL-bound)."""
    return st.segmented_control(
        "Number format",
        list(FORMAT_NAMES),
        default=default,
        key=key,
        required=True,
        bind="query-params",
        help="float32: 1 sign, 8 exponent, 23 mantissa bits; int8: symmetric per-tensor quantization.",
    )


def parse_floats(name: str, text: str) -> list[float]:
    """Comma-separated numbers; ValueError naming the parameter on anything else."""
    out = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(float(part))
        except ValueError:
            raise ValueError(
                f"Invalid {name}={part!r}: expected a number such as 0.01 or 1e-3 "
                "(several: comma-separated)"
            ) from None
    return out


def ber_select(
    label: str, *, key: str, default: float = 0.01, help: str | None = None
) -> float | None:
    """One BER: a log-spaced select slider plus an optional exact value that overrides it.

    An exact value that is not one number shows an ``st.error`` with the message and returns
    None; the caller skips whatever needs the BER (the rest of the page still renders).
    """
    c1, c2 = st.columns([3, 2])
    with c1:
        ber = st.select_slider(
            label,
            BER_GRID,
            value=default,
            format_func=fmt_ber,
            key=key,
            bind="query-params",
            help=help or "Probability that any one stored bit is flipped.",
        )
    with c2:
        exact = st.text_input(
            "Exact BER (optional)",
            key=f"{key}_exact",
            placeholder="e.g. 3e-3",
            help="Overrides the slider; must be in (0, 1].",
        )
    if exact.strip():
        try:
            return parse_one("ber", exact, "give one number in (0, 1]")
        except ValueError as e:
            with c2:
                st.error(str(e), icon=":material/error:")
            return None
    return ber


def parse_one(name: str, text: str, expected: str) -> float:
    """Exactly one number; otherwise a ValueError naming ``name`` (``expected`` says what to type)."""
    vals = parse_floats(name, text)
    if len(vals) != 1:
        raise ValueError(f"Invalid {name}={text!r}: {expected}")
    return vals[0]


def fault_model_from(
    fmt: str,
    bits: Sequence[int],
    *,
    ber: float | None = None,
    count: int | None = None,
    layers: Sequence[str] | None = None,
    include_bias: bool = False,
) -> FaultModel:
    """A validated FaultModel; an empty bit selection is an error with a clear message."""
    if not bits:
        top = get_format(fmt).width - 1
        raise ValueError(f"Invalid bits=[]: select at least one bit position in 0..{top}")
    if layers is not None and not layers:
        raise ValueError("Invalid layers=[]: select at least one layer")
    return FaultModel(
        format=fmt,
        bits=tuple(bits),
        ber=ber,
        count=count,
        layers=tuple(layers) if layers else None,
        include_bias=include_bias,
    )


def fault_label(fm: FaultModel, *, with_rate: bool = True) -> str:
    """Short human text for a fault model: 'int8, BER 1e-2' / 'float32 bits 0-22, 5 flips'."""
    width = get_format(fm.format).width
    bits = "" if len(fm.bits) == width else f" bits {compact_bits(fm.bits)}"
    rate = f"BER {fmt_ber(fm.ber)}" if fm.ber is not None else f"{fm.count} flips"
    layers = f", layers {','.join(fm.layers)}" if fm.layers else ""
    return f"{fm.format}{bits}{', ' + rate if with_rate else ''}{layers}"


def trials_slider(*, key: str = "trials", default: int = 30, high: int = 500) -> int:
    """Monte Carlo trials per level (capped by sar_core.limits.MAX_TRIALS)."""
    return st.slider(
        "Trials (fault patterns per level)",
        1,
        min(high, limits.MAX_TRIALS),
        default,
        key=key,
        bind="query-params",
        help="Every model is hit by the same patterns (paired trials).",
    )


def seed_input(*, key: str = "seed", default: int = 0) -> int:
    """Random seed (URL-bound)."""
    return int(
        st.number_input(
            "Seed",
            min_value=0,
            max_value=2**32 - 1,
            value=default,
            step=1,
            key=key,
            bind="query-params",
            help="Same seed, same numbers: share the URL to reproduce a result.",
        )
    )
