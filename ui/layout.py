"""Light page furniture: header, styles, number formatting, stale-result marking.

Imports streamlit only (no torch, numpy or plotly), so a page can draw its title and intro at
once and load the heavy modules afterwards, behind a spinner: the first paint after a server
start does not wait for torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

CSS = Path(__file__).resolve().parents[1] / "assets" / "style.css"
LOADING = "Loading the lab's maths (torch) — only the first page after a server start waits."


def inject_css() -> None:
    """The app's small stylesheet (greyed stale results, narrow-screen tweaks)."""
    if CSS.exists():
        st.html(f"<style>{CSS.read_text()}</style>")


def page_header(title: str, intro: str) -> None:
    """Title plus the two or three sentences that say what the page shows and what to try."""
    st.title(title)
    st.markdown(intro)


# --- numbers as text -------------------------------------------------------------------------


def as_number(x) -> float | None:
    """``x`` as a float (JSON's "inf" / "nan" strings included); None when it is no number."""
    if isinstance(x, str):
        x = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(x.strip().lower(), x)
    try:
        return None if x is None or isinstance(x, bool) else float(x)
    except (TypeError, ValueError):
        return None


def fmt_num(x, digits: int = 7) -> str:
    """A value for display: '0.1', '3.402824e+38', 'inf', '-inf', 'NaN', '–' (missing)."""
    v = as_number(x)
    if v is None:
        return "–"
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


def clip01(x: float | None) -> float | None:
    """An accuracy bound clamped to [0, 1] (a t-interval can overshoot); None stays None."""
    v = as_number(x)
    if v is None or math.isnan(v):
        return None
    return min(max(v, 0.0), 1.0)


def fmt_pct(x: float | None, digits: int = 1) -> str:
    """Accuracy in [0, 1] as a percentage string."""
    v = as_number(x)
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.{digits}f}%"


def text_where_missing(df, formats: Mapping[str, str]):
    """``df`` with each column of ``formats`` that holds a missing value turned into text
    (``formats[col]`` applied, "" where missing); the other columns stay numbers.

    The grid draws a null cell as a grey "None" whatever a Styler's ``na_rep`` says."""
    out = df.copy()
    for col, fmt in formats.items():
        if col in out.columns and out[col].isna().any():
            out[col] = [
                fmt.format(v) if as_number(v) is not None and v == v else "" for v in out[col]
            ]
    return out


def percent_columns(df, columns: Sequence[str]):
    """``df`` for ``st.dataframe`` with ``columns`` (fractions in [0, 1]) shown as percentages
    with two decimals, empty where missing.

    Streamlit's ``format="percent"`` trims trailing zeros (97.5% above 97.28%). A pandas Styler
    formats the display only: the values (sorting, the CSV, ``.value``) stay fractions. A column
    with a missing value becomes text (``text_where_missing``). The columns' ``column_config``
    must set no format: it would win over the Styler."""
    from pandas.api.types import is_numeric_dtype

    cols = [c for c in columns if c in df.columns]
    df = text_where_missing(df, dict.fromkeys(cols, "{:.2%}"))
    numeric = [c for c in cols if is_numeric_dtype(df[c])]
    return df.style.format("{:.2%}", subset=numeric, na_rep="")


def fmt_ci(ci: Sequence[float] | None, digits: int = 1) -> str:
    """A 95% CI in [0, 1] as '91.2–94.0%', clamped to [0, 100]%; 'n/a' when undefined; ends
    that would round equal get more decimals ('96.1–96.4%', not '96–96%')."""
    if ci is None or len(ci) != 2:
        return "n/a"
    lo, hi = as_number(ci[0]), as_number(ci[1])
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "n/a"
    lo, hi = clip01(lo), clip01(hi)
    # ends that round equal ('96–96%') get more decimals, up to 3, until they differ
    while digits < 3 and lo != hi and f"{100 * lo:.{digits}f}" == f"{100 * hi:.{digits}f}":
        digits += 1
    return f"{100 * lo:.{digits}f}–{100 * hi:.{digits}f}%"


def fmt_ber(x: float) -> str:
    """A BER as 1e-4 / 2e-3 / 3.5e-3 style text."""
    m, e = f"{float(x):.1e}".split("e")
    m = m[:-2] if m.endswith(".0") else m
    return f"{m}e{int(e)}"


# --- results computed with other settings ----------------------------------------------------


def changed_settings(stored: Mapping, current: Mapping, names: Mapping[str, str]) -> list[str]:
    """Human names of the settings whose current value differs from the stored one."""
    return [names.get(k, k) for k in current if stored.get(k) != current[k]]


@contextmanager
def stale_box(key: str, changed: Sequence[str], button: str) -> Iterator[None]:
    """Draw results inside; when ``changed`` is not empty, grey them and say what to press.

    The results stay visible (they are still the last thing computed), marked as not matching
    the settings above.
    """
    if changed:
        st.warning(
            f"**Settings changed — press {button}.** The results below were computed before you "
            f"changed: {', '.join(changed)}.",
            icon=":material/update:",
        )
    box = st.container(key=f"stale_{key}" if changed else f"fresh_{key}")
    with box:
        yield
