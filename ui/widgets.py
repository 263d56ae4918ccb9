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
from sar_core.faults.model import FaultModel
from sar_core.formats.bits import FORMAT_NAMES, bit_fields, get_format, parse_bits
from ui import registry
from ui.inputs import Checks, InputError, read_ber
from ui.layout import clip01, fmt_ber, fmt_ci, fmt_pct, page_header  # noqa: F401 (re-exported)
from ui.registry import Entry

T = TypeVar("T")

FIELD_MD = {"sign": "red", "exponent": "blue", "mantissa": "green", "integer": "green"}
BER_GRID = tuple(float(f"{m}e{e}") for e in range(-7, 0) for m in (1, 2, 5))  # 1e-7 .. 5e-1
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


# --- layout ---------------------------------------------------------------------------------


def finite_or_none(x: float | None) -> float | None:
    """``x`` as a float, or None when missing or not finite (a table then shows an empty cell)."""
    return None if x is None or not math.isfinite(x) else float(x)


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


# --- settings carried across pages -----------------------------------------------------------


def carried(key: str, draw: Callable[[], T], *, valid: Callable[[Any], Any] | None = None) -> T:
    """Draw a keyed widget with the value this session last chose for ``key`` on any page.

    A widget's id includes its page and Streamlit drops the state of widgets a run did not draw,
    so without this a setting silently reset on the next page (or after a page without it).
    ``valid`` maps a kept value to one the widget accepts here (or None: start from default).
    """
    kept = f"_kept_{key}"
    value = st.session_state[key] if key in st.session_state else st.session_state.get(kept)
    if value is not None and valid is not None:
        value = valid(value)
    if value is not None:
        st.session_state[key] = value  # through the Session State API: the new widget takes it
    out = draw()
    st.session_state[kept] = out
    return out


# --- models ----------------------------------------------------------------------------------


def model_picker(
    label: str,
    *,
    key: str,
    default: Sequence[str] = DEFAULT_MODELS,
    max_selections: int | None = None,
    help: str | None = None,
) -> list[Entry]:
    """Multiselect over demo + own models (bound to the URL); returns the chosen entries.

    ``max_selections`` only trims the preselection: the widget itself has the same rules on every
    page (its key is shared), and each page flags a selection above its own limit.
    """
    pool = registry.all_entries()
    names = list(pool)
    wanted = [n for n in names if any(n.endswith(d) for d in default)]
    picked = carried(
        key,
        lambda: st.multiselect(
            label,
            names,
            default=wanted[: max_selections or None],
            key=key,
            help=help or "Demo models are shared and read-only; your own models come from Train.",
            bind="query-params",
        ),
        valid=lambda v: [n for n in v if n in pool],  # an own model may be gone
    )
    return [pool[n] for n in picked if n in pool]


def single_model_picker(label: str, *, key: str, default: str = "digits MLP · SAR") -> Entry:
    """Selectbox over demo + own models (bound to the URL)."""
    pool = registry.all_entries()
    names = list(pool)
    idx = next((i for i, n in enumerate(names) if n.endswith(default)), 0)
    name = carried(
        key,
        lambda: st.selectbox(label, names, index=idx, key=key, bind="query-params"),
        valid=lambda v: v if v in pool else None,
    )
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
    if state_key not in st.session_state and f"_kept_{state_key}" in st.session_state:
        st.session_state[state_key] = st.session_state[f"_kept_{state_key}"]  # a page between
    elif state_key not in st.session_state:
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
    else:
        # a widget's id includes its page, so the pills on the next page would start empty;
        # writing the value back through the Session State API hands it to the new widget
        st.session_state[state_key] = list(st.session_state[state_key])
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
    st.session_state[f"_kept_{state_key}"] = picked
    st.query_params[key] = compact_bits(picked) or "none"
    return picked


# --- fault models ----------------------------------------------------------------------------


def format_picker(*, key: str = "format", default: str = "int8", where=None, on_change=None) -> str:
    """Number format the weights are stored in (a select box: readable at any width; URL-bound)."""
    return carried(
        key,
        lambda: (where or st).selectbox(
            "Number format",
            list(FORMAT_NAMES),
            index=list(FORMAT_NAMES).index(default),
            key=key,
            on_change=on_change,
            bind="query-params",
            help="float32: 1 sign, 8 exponent, 23 mantissa bits; int8: symmetric quantization.",
        ),
        valid=lambda v: v if v in FORMAT_NAMES else None,
    )


def ber_select(
    label: str,
    *,
    key: str,
    checks: Checks,
    default: float = 0.01,
    help: str | None = None,
) -> float | None:
    """One BER: a log-spaced select slider plus an optional exact value that overrides it.

    A bad exact value is flagged at once (``checks``) next to the box and gives None.
    """
    c1, c2 = st.columns([3, 2])
    with c1:
        ber = carried(
            key,
            lambda: st.select_slider(
                label,
                BER_GRID,
                value=default,
                format_func=fmt_ber,
                key=key,
                bind="query-params",
                help=help or "Probability that any one stored bit is flipped.",
            ),
            valid=lambda v: v if v in BER_GRID else None,
        )
    with c2:
        exact = carried(
            f"{key}_exact",
            lambda: st.text_input(
                "Exact BER (optional)",
                key=f"{key}_exact",
                placeholder="e.g. 3e-3",
                help="Overrides the slider; a probability above 0 and at most 1.",
            ),
        )
    if exact.strip():
        return checks.check(read_ber, exact, where=c2)
    return ber


def fault_model_from(
    fmt: str,
    bits: Sequence[int],
    *,
    ber: float | None = None,
    count: int | None = None,
    layers: Sequence[str] | None = None,
    include_bias: bool = False,
    kind: str = "flip",
    burst: int = 1,
    target: str = "weights",
    ber_01: float | None = None,
    ber_10: float | None = None,
) -> FaultModel:
    """A validated FaultModel; an empty bit selection is an error with a clear message."""
    if not bits:
        top = get_format(fmt).width - 1
        raise InputError(f"Choose at least one bit (0 to {top}) that may flip.")
    if layers is not None and not layers:
        raise InputError("Choose at least one layer (or none: every layer).")
    top = get_format(fmt).width - 1
    if not any(b + burst - 1 <= top for b in bits):
        raise InputError(
            f"A burst of {burst} bits must fit in the {top + 1}-bit word: starting at bit "
            f"{min(bits)} it would run past bit {top}. Choose lower bits or a shorter burst."
        )
    return FaultModel(
        format=fmt,
        bits=tuple(bits),
        ber=ber,
        count=count,
        layers=tuple(layers) if layers else None,
        include_bias=include_bias,
        kind=kind,
        burst=burst,
        target=target,
        ber_01=ber_01,
        ber_10=ber_10,
    )


def fault_label(fm: FaultModel, *, with_rate: bool = True) -> str:
    """Short human text for a fault model: 'int8, BER 1e-2' / 'float32 bits 0-22, 5 flips'."""
    width = get_format(fm.format).width
    bits = "" if len(fm.bits) == width else f" bits {compact_bits(fm.bits)}"
    if fm.ber is not None:
        rate = f"BER {fmt_ber(fm.ber)}"
    elif fm.count is not None:
        rate = f"{fm.count} flips"
    else:
        rate = f"1→0 {fmt_ber(fm.ber_10 or 0)}, 0→1 {fmt_ber(fm.ber_01 or 0)}"
    layers = f", layers {','.join(fm.layers)}" if fm.layers else ""
    kind = getattr(fm, "kind", "flip")
    extra = "" if kind == "flip" else f", {kind}"
    extra += f", bursts of {fm.burst}" if getattr(fm, "burst", 1) > 1 else ""
    extra += ", activations" if getattr(fm, "target", "weights") == "activations" else ""
    return f"{fm.format}{bits}{', ' + rate if with_rate else ''}{layers}{extra}"


TRIALS_MAX = min(500, limits.MAX_TRIALS)  # one range on every page (see trials_slider)


def trials_slider(*, key: str = "trials", default: int = 30, where=None) -> int:
    """Monte Carlo trials per level: 1..TRIALS_MAX on every page.

    One key and one range everywhere: Streamlit carries a keyed widget's value to the widget of
    the same key on the next page, so a page with a smaller maximum crashed on a carried value.
    """
    return carried(
        key,
        lambda: (where or st).slider(
            "Trials (fault patterns per level)",
            1,
            TRIALS_MAX,
            default,
            key=key,
            bind="query-params",
            help="Every model is hit by the same patterns (paired trials).",
        ),
        valid=lambda v: v if isinstance(v, int) and 1 <= v <= TRIALS_MAX else None,
    )


def seed_input(*, key: str = "seed", default: int = 0, checks: Checks | None = None) -> int:
    """Random seed (URL-bound): a whole number from 0 to 2^32 - 1, checked at once."""
    from ui.inputs import check_int_in

    value = carried(
        key,
        lambda: st.number_input(
            "Seed",
            value=default,
            step=1,
            key=key,
            bind="query-params",
            help="Same seed, same numbers: share the URL to reproduce a result.",
        ),
    )
    if checks is None:
        return int(value)
    seed = checks.check(check_int_in, value, "The seed", low=0, high=2**32 - 1)
    return default if seed is None else seed
