"""Bit flips (live): choose models, format, bits, layers and rates; watch accuracy fall."""

import streamlit as st

from ui.layout import LOADING, page_header

page_header(
    "Bit flips (live)",
    "Pick models, the number format their weights are stored in, which bits may flip and how "
    "often, then press **Play**: the bit error rate climbs and the chart grows point by point, "
    "every model hit by exactly the same faults. **Try first:** the default int8 sweep on the "
    "three demo MLPs, then float32 with only the exponent bits (or only bit 30).",
)
with st.spinner(LOADING):  # the title is on screen before torch loads
    from sar_core import limits
    from sar_core.data.io import rows_to_csv
    from sar_core.formats.bits import get_format
    from sar_core.names import FAULT_KINDS, FAULT_TARGETS
    from ui import registry
    from ui.compute import asym_sweep_iter, log_levels, sweep_iter
    from ui.inputs import Checks, at_most, check_float_in, check_int_in, need_some, read_bers
    from ui.jobs import finish_job, job, run_controls, start_job, stop_button
    from ui.layout import changed_settings, stale_box
    from ui.results import flips_figure, flips_table, sweep_rows
    from ui.widgets import (
        BER_GRID,
        LiveChart,
        bit_picker,
        fault_label,
        fault_model_from,
        fmt_ber,
        format_picker,
        model_picker,
        seed_input,
        show_errors,
        trials_slider,
    )

previous = job("flips")
checks = Checks()

models = model_picker("Models (same architecture)", key="models")
checks.check(need_some, models, "Choose at least one model.")
checks.check(at_most, models, 6, "models")
c1, c2 = st.columns([1, 1])
fmt = format_picker(key="format", default="int8", where=c1)
with c2:
    layer_names = registry.layers_of(models[0]) if models else []
    arch = models[0].arch if models else "none"
    layers = st.multiselect(
        "Layers (empty = all)",
        layer_names,
        key=f"layers_{arch}",  # one list per architecture: a CNN has other layer names
        help="Restrict the faults to some layers.",
    )
bits = bit_picker(fmt, key="bits", label=f"Bits that may flip ({get_format(fmt).width}-bit {fmt})")

r1, r2, r3 = st.columns([2, 3, 2])
rate_mode = r1.radio(
    "Fault rate",
    ["ber", "count", "asym"],
    format_func={
        "ber": "Bit error rate sweep",
        "count": "Exact flip-count sweep",
        "asym": "Asymmetric sweep (1→0 and 0→1 rates)",
    }.get,
    key="rate",
    bind="query-params",
)
with r3:
    points = st.slider("Points", 1, limits.MAX_BER_POINTS, 6, key="points", bind="query-params")
    trials = trials_slider(key="trials", default=30)
with r2:
    if rate_mode in ("ber", "asym"):
        lo, hi = st.select_slider(
            "BER range (log scale)" if rate_mode == "ber" else "1→0 rate range (log scale)",
            BER_GRID,
            value=(1e-3, 1e-1),
            format_func=fmt_ber,
            key="ber_range",
            bind="query-params",
        )
        exact = st.text_input(
            "Exact levels (optional, overrides the range)",
            key="ber_exact",
            placeholder="e.g. 1e-3, 3e-3, 0.01",
        )
        levels = (
            checks.check(read_bers, exact) if exact.strip() else log_levels(lo, hi, points)
        ) or []
        rate = {"ber": levels[0] if levels else 0.01}
        ratio = 0.0
        if rate_mode == "asym":
            ratio = st.number_input(
                "0→1 rate as a multiple of the 1→0 rate",
                value=0.1,
                format="%.3g",
                key="ratio",
                bind="query-params",
                help="Some memories lose charge far more often than they gain it: 1→0 errors "
                "dominate. 0.1: a stored 0 becomes 1 ten times less often than a 1 becomes 0.",
            )
            top_level = max(levels) if levels else 1.0
            ratio = checks.check(
                check_float_in, ratio, "The 0→1 / 1→0 ratio", low=0.0, high=1.0 / top_level
            )
            ratio = 0.0 if ratio is None else ratio
            rate = {"ber_10": rate["ber"], "ber_01": ratio * rate["ber"]}
    else:
        max_count = st.number_input("Largest number of flips", value=100, step=1, key="max_count")
        top = checks.check(
            check_int_in,
            max_count,
            "The largest number of flips",
            low=1,
            high=limits.MAX_FLIP_COUNT,
        )
        levels = log_levels(1, top, points, integer=True) if top else []
        rate = {"count": 1}
s1, s2, s3, s4, s5 = st.columns([2, 2, 2, 2, 2])
with s1:
    seed = seed_input(checks=checks)
kind = s2.selectbox(
    "What a hit does",
    FAULT_KINDS,
    key="kind",
    bind="query-params",
    help="flip: the bit inverts (a soft error); stuck-at-0 / 1: the bit is forced to 0 / 1 "
    "(a worn or broken memory cell; a bit that already holds that value does not change).",
)
target = s3.selectbox(
    "Where",
    FAULT_TARGETS,
    key="target",
    bind="query-params",
    help="weights: the stored parameters; activations: each layer's outputs as computed.",
)
with s4:
    burst = st.number_input(
        "Burst (adjacent bits)",
        value=1,
        step=1,
        key="burst",
        bind="query-params",
        help="A hit changes this many neighbouring bits of one word, from the chosen bit up.",
    )
    burst = (
        checks.check(check_int_in, burst, "The burst length", low=1, high=get_format(fmt).width)
        or 1
    )
include_bias = s5.checkbox("Include biases", False, key="bias")

fm = None
if bits:
    fm = checks.check(
        fault_model_from,
        fmt,
        bits,
        layers=layers or None,
        include_bias=include_bias,
        kind=kind,
        burst=burst,
        target=target,
        **rate,
    )
else:
    checks.flag(f"Choose at least one bit (0 to {get_format(fmt).width - 1}) that may flip.")

settings = {
    "models": [m.name for m in models],
    "format": fmt,
    "bits": list(bits),
    "layers": list(layers),
    "bias": include_bias,
    "kind": [kind, target, burst],
    "rate": rate_mode,
    "levels": list(levels) + ([ratio] if rate_mode == "asym" else []),
    "trials": trials,
    "seed": seed,
}
NAMES = {"models": "models", "format": "format", "bits": "bits", "layers": "layers"}
NAMES.update(
    bias="biases",
    kind="fault kind",
    rate="fault rate",
    levels="levels",
    trials="trials",
    seed="seed",
)

play, stop_slot = run_controls("Play", key="play", stop_key="flips_stop", disabled=not checks.ok)
checks.waiting_note()

if play and checks.ok:
    with show_errors():
        if rate_mode == "asym":
            stream = asym_sweep_iter(models, fm, levels, ratio=ratio, trials=trials, seed=seed)
        else:
            kw = {"bers": levels} if rate_mode == "ber" else {"counts": levels}
            stream = sweep_iter(models, fm, trials=trials, seed=seed, **kw)
    rec = start_job(
        "flips",
        models=[m.name for m in models],
        methods=[m.method for m in models],
        sources=[m.source for m in models],
        rate=rate_mode,
        ratio=ratio if rate_mode == "asym" else None,
        fault_label=fault_label(fm, with_rate=False),
        fault=fm.to_dict(),
        settings=settings,
        levels=[],
    )
    stop_button(stop_slot, live=True, key="flips_stop")
    bar = st.progress(0.0, text="Sweeping...")
    chart = LiveChart(interval=0.0)
    with show_errors():
        for i, (level, summaries) in enumerate(stream):
            rec["levels"].append({"level": level, "summaries": summaries})
            label = f"{level} flips" if rate_mode == "count" else fmt_ber(level)
            bar.progress((i + 1) / len(levels), text=f"Level {i + 1}/{len(levels)}: {label}")
            chart.draw(flips_figure(rec))
    chart.slot.empty()
    previous = finish_job(rec, stop_slot, key="flips_stop", bar=bar)

if previous is not None and previous["levels"]:
    if previous["status"] == "stopped":
        st.warning("Sweep stopped; the levels finished so far are shown.")
    changed = changed_settings(previous.get("settings", {}), settings, NAMES)
    with stale_box("flips", changed, "Play"):
        st.plotly_chart(flips_figure(previous), key="flips_fig")
        rows = sweep_rows(previous)
        flips_table(rows, previous["rate"])
    st.download_button(
        "Download CSV",
        rows_to_csv(rows),
        file_name="bit_flips_sweep.csv",
        mime="text/csv",
        key="flips_csv",
        on_click="ignore",
        icon=":material/download:",
    )
elif previous is None:
    st.info("Press **Play** to start the sweep.")
