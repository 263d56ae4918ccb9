"""Bit flips (live): choose models, format, bits, layers and rates; watch accuracy fall."""

import streamlit as st

from ui.layout import LOADING, page_header

page_header(
    "Bit flips (live)",
    "Pick models, the number format their weights are stored in, which bits may flip and how "
    "often, then press **Play**: the bit error rate climbs and the chart grows point by point, "
    "every model hit by exactly the same faults. **Try first:** the default int8 sweep on the "
    "three demo MLPs, then float32 with only the exponent bits (or only bit 30): picking a "
    "format moves the rate range to that format's own scale.",
)
with st.spinner(LOADING):  # the title is on screen before torch loads
    from sar_core.formats.bits import get_format
    from ui import registry
    from ui.compute import check_faults
    from ui.flips import fault_widgets, play, rate_widgets, show
    from ui.inputs import Checks, at_most, need_some, rates_follow_format
    from ui.jobs import job, run_controls
    from ui.widgets import bit_picker, carried, fault_model_from, format_picker, model_picker

previous = job("flips")
checks = Checks()

models = model_picker("Models (same architecture)", key="models")
checks.check(need_some, models, "Choose at least one model.")
checks.check(at_most, models, 6, "models")
c1, c2 = st.columns([1, 1])
fmt = format_picker(key="format", default="int8", where=c1, on_change=rates_follow_format)
with c2:
    arch = models[0].arch if models else "none"
    names = registry.layers_of(models[0]) if models else []
    layers = carried(
        f"layers_{arch}",  # one list per architecture: a CNN has other layer names
        lambda: st.multiselect(
            "Layers (empty = all)", names, key=f"layers_{arch}",
            help="Restrict the faults to some layers.",
        ),
        valid=lambda v: [n for n in v if n in names],
    )  # fmt: skip
width = get_format(fmt).width
bits = bit_picker(fmt, key="bits", label=f"Bits that may flip ({width}-bit {fmt})")
rate = rate_widgets(checks)
fault = fault_widgets(fmt, checks)
seed = fault.pop("seed")

fm = None
if bits:
    fm = checks.check(fault_model_from, fmt, bits, layers=layers or None, **fault, **rate.rate)
    if fm is not None:  # an imported int8 (QDQ) model: faults hit its stored codes only
        checks.check(check_faults, models, fm)
else:
    checks.flag(f"Choose at least one bit (0 to {width - 1}) that may flip.")
settings = {
    "models": [m.name for m in models],
    "format": fmt,
    "bits": list(bits),
    "layers": list(layers),
    "bias": fault["include_bias"],
    "kind": [fault["kind"], fault["target"], fault["burst"]],
    "rate": rate.mode,
    "levels": list(rate.levels) + ([rate.ratio] if rate.mode == "asym" else []),
    "trials": rate.trials,
    "seed": seed,
}

go, stop_slot = run_controls("Play", key="play", stop_key="flips_stop", disabled=not checks.ok)
checks.waiting_note()
if go and checks.ok:
    previous = play(models, fm, rate, seed=seed, settings=settings, stop_slot=stop_slot)
show(previous, settings)
