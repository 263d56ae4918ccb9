"""The Train page's settings form and results section (the page itself stays a short script).

Whole-number boxes read what was typed (ui.inputs.int_box): '1e9' epochs is refused with a
message, not cut to 1 by the browser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import streamlit as st

from sar_core import limits
from sar_core.data.datasets import DATASETS
from sar_core.plots.style import arch_label, method_label
from sar_core.training.loop import DEFAULT_WIDTHS, METHODS
from sar_core.training.optim import SAR_DEFAULT_GEOMETRY, SAR_DEFAULT_RHO, SAR_GEOMETRIES
from ui.inputs import (
    Checks,
    check_float_in,
    format_ber,
    int_box,
    need_some,
    read_bits,
    read_floats,
    read_int,
    read_ints,
)
from ui.widgets import (
    ber_select,
    carried,
    fault_model_from,
    format_picker,
    seed_input,
    trials_slider,
)

NAMES = {"fault": "SAR's fault model", "more": "more settings", "rhos": "ρ values"}


def _ber_of_format() -> None:
    """The user chose another target format: its bit error rate starts at
    ``ui.inputs.FORMAT_BER``."""
    st.session_state["tber"] = format_ber(st.session_state["tformat"])


@dataclass
class TrainSettings:
    """What the form holds (None where a value is flagged)."""

    mode: str
    dataset: str
    arch: str
    epochs: int | None
    seed: int
    methods: list
    rhos: list
    reference: bool
    trials: int
    fm: object | None
    lr: float | None
    radii: dict = field(default_factory=dict)
    geometry: str = SAR_DEFAULT_GEOMETRY  # "fault": SAR v3, shaped by the target fault model
    rho_mode: str = "fixed"
    batch: int | None = 64
    widths: tuple | None = ()

    def as_dict(self) -> dict:
        """The settings a result is compared against (to grey a stale one)."""
        return {
            "mode": self.mode,
            "dataset": self.dataset,
            "arch": self.arch,
            "epochs": self.epochs,
            "seed": self.seed,
            "methods": list(self.methods),
            "rhos": sorted(self.rhos),
            "reference": self.reference,
            "trials": self.trials,
            "fault": self.fm.to_dict() if self.fm else None,
            "more": [self.lr, self.radii, self.geometry, self.rho_mode, self.batch, self.widths],
        }


def _methods(checks: Checks, mode: str) -> tuple[list, list, bool]:
    if mode == "compare":
        methods = st.multiselect(
            "Methods to compare",
            list(METHODS),
            default=["sgd", "sam", "sar"],
            format_func=method_label,
            key="methods",
            bind="query-params",
        )
        checks.check(need_some, methods, "Choose at least one method to train.")
        return methods, [], False
    r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
    text = r1.text_input(
        "SAR's ρ values (comma-separated)",
        "0.005, 0.015, 0.05, 0.15, 0.5",  # around the default 0.015 (fault geometry)
        key="rhos",
        bind="query-params",
    )
    ref = r2.checkbox("SGD reference", True, key="ref", bind="query-params")
    rhos = checks.check(read_floats, text, "SAR's ρ values", low=0.0, high=100.0) or []
    return ["sar"], rhos, ref


def _more(checks: Checks, mode: str) -> dict:
    with st.expander("More settings: learning rate, radii, geometry, batch size, widths"):
        e1, e2, e3, e4 = st.columns(4)
        lr = e1.number_input(
            "Learning rate (empty = default)",
            value=None,
            format="%.4g",
            key="lr",
            bind="query-params",
            help="Default: 0.05 for SGD-based methods, 0.002 for Adam.",
        )
        if lr is not None:
            lr = checks.check(
                check_float_in, lr, "The learning rate", low=1e-5, high=10.0, where=e1
            )
        radii = {}
        for col, m, default, key in (
            (e2, "sar", SAR_DEFAULT_RHO, "rho"),
            (e3, "sam", 0.05, "rho_sam"),
            (e4, "asam", 0.5, "rho_asam"),
        ):
            v = carried(  # kept when you visit another page and come back
                key,
                lambda col=col, m=m, default=default, key=key: col.number_input(
                    f"{method_label(m)}'s ρ",
                    value=default,
                    format="%.3g",
                    key=key,
                    disabled=m == "sar" and mode != "compare",
                ),
            )
            radii[m] = checks.check(check_float_in, v, f"{method_label(m)}'s ρ", low=0, high=100)
        g1, g2, g3, g4 = st.columns(4)
        geometry = g1.selectbox(
            "SAR geometry",
            SAR_GEOMETRIES,
            index=SAR_GEOMETRIES.index(SAR_DEFAULT_GEOMETRY),
            key="geometry",
            help=(
                "fault (default, SAR v3): the neighbourhood follows the target fault model; for "
                "int8 the range max|W|/127 gets a gradient too, and every other step the ascent "
                "starts from the fault's mean (flips shrink int8 codes by 1 - 2p on average). "
                "plain / elementwise / layer: "
                "SAM-style shapes that ignore the target (their ρ is in other units: SAR v1 used "
                "ρ = 1.0 with elementwise)."
            ),
        )
        rho_mode = g2.selectbox(
            "SAR ρ mode",
            ["fixed", "calibrated"],
            key="rho_mode",
            help="calibrated: ρ is set so SAM's worst case matches the expected fault damage.",
        )
        batch_text = carried("batch", lambda: g3.text_input("Batch size", "64", key="batch"))
        batch = checks.check(read_int, batch_text, "Batch size", low=1, high=4096, where=g3)
        widths_text = carried(
            "widths",
            lambda: g4.text_input(
                "Hidden widths / CNN channels",
                "",
                key="widths",
                help="Empty: "
                + "; ".join(
                    f"{','.join(map(str, w))} ({arch_label(a)})" for a, w in DEFAULT_WIDTHS.items()
                ),
            ),
        )
        widths = checks.check(
            read_ints, widths_text, "Hidden widths", low=1, high=limits.MAX_WIDTH, where=g4
        )
    return dict(
        lr=lr, radii=radii, geometry=geometry, rho_mode=rho_mode, batch=batch, widths=widths
    )


def settings_form(checks: Checks) -> TrainSettings:
    """Every Train setting, each checked at once next to its widget."""
    c0, c1, c2, c3, c4 = st.columns([3, 2, 2, 2, 2])
    mode = c0.selectbox(  # a select box, not a segmented control: readable at 1024 px
        "Mode",
        ["compare", "rho sweep"],
        format_func={"compare": "Compare methods", "rho sweep": "ρ sweep (SAR)"}.get,
        key="mode",
        bind="query-params",
    )
    ds = c1.selectbox("Dataset", DATASETS, key="dataset", bind="query-params")
    archs = {"digits": ["mlp", "cnn"], "mnist1d": ["mlp", "cnn1d"]}.get(ds, ["mlp"])
    arch = carried(
        "arch",
        lambda: c2.selectbox(
            "Architecture",
            archs,
            format_func=arch_label,
            key="arch",
            help="The small CNN needs images (digits); MNIST-1D's signals have a 1-D CNN.",
        ),
        valid=lambda v: v if v in archs else None,
    )
    epochs = int_box(
        "Epochs",
        30,
        key="epochs",
        low=1,
        high=limits.MAX_EPOCHS,
        checks=checks,
        where=c3,
        bind="query-params",
    )
    with c4:
        seed = seed_input(checks=checks)
    m1, m2 = st.columns([3, 2])
    with m1:
        methods, rhos, ref = _methods(checks, mode)
    trials = trials_slider(key="trials", default=30, where=m2)
    st.markdown(
        "**SAR's fault model** — what SAR (and FAT) train against, and what every model is "
        "measured under afterwards."
    )
    f1, f2, f3 = st.columns([2, 1, 3])
    t_format = format_picker(key="tformat", default="int8", where=f1, on_change=_ber_of_format)
    with f2:
        bits_text = carried(  # kept when you visit another page and come back
            "tbits",
            lambda: st.text_input(
                "Bits",
                "all",
                key="tbits",
                help="all, sign, exponent, mantissa, msb, lsb, 0-7, 30,31 ...",
            ),
        )
        bits = checks.check(read_bits, bits_text, t_format)
    with f3:
        ber = ber_select("Bit error rate", key="tber", default=0.01, checks=checks)
    more = _more(checks, mode)
    fm = (
        checks.check(fault_model_from, t_format, bits, ber=ber)
        if bits and ber is not None
        else None
    )
    return TrainSettings(mode, ds, arch, epochs, seed, methods, rhos, ref, trials, fm, **more)


def diverged_notes(rec: Mapping) -> list[str]:
    """One sentence per run whose training diverged (its model was not kept)."""
    return [
        f"**{run['label']} diverged** and was not kept: {run['diverged']} "
        "The other models and this page stay usable."
        for run in rec.get("runs", [])
        if run.get("diverged")
    ]
