"""Robustness report: BER sweep, double win, bit x layer sensitivity, sharpness vs robustness."""

import streamlit as st

from ui.layout import LOADING, page_header

page_header(
    "Robustness report",
    "One button measures the chosen models four ways under one fault model: accuracy against "
    "the bit error rate, which bit of which layer hurts most, whether the flatter model is the "
    "more robust one, and the *double win* table (clean accuracy kept, robustness gained, same "
    "inference cost). **Try first:** press *Run report* with the three demo MLPs, then with the "
    "three demo CNNs.",
)
with st.spinner(LOADING):  # the title is on screen before torch loads
    from ui import registry
    from ui.compute import check_faults
    from ui.defenses import ATTACK_FAULTS
    from ui.inputs import (
        Checks,
        at_most,
        check_int_in,
        need_some,
        rate_of_format,
        rates_follow_format,
    )
    from ui.jobs import job, require_result, run_controls
    from ui.layout import changed_settings, stale_box
    from ui.robustness import (
        SETTING_NAMES,
        run_report,
        show_double_win,
        show_heatmap,
        show_sharpness,
        show_sweep,
        sweep_range,
    )
    from ui.suite_view import suite_section
    from ui.widgets import (
        ber_select,
        bit_picker,
        carried,
        fault_model_from,
        format_picker,
        model_picker,
        seed_input,
        trials_slider,
    )

previous = job("report")
checks = Checks()
with st.expander(
    "Across tasks: the suite's results (held-out seeds, every method vs SGD)",
    key="suite_open",
    on_change="rerun",
):
    if st.session_state.get("suite_open"):  # drawn only when opened, not on every rerun
        suite_section()

models = model_picker("Models (same architecture and dataset)", key="models")
checks.check(need_some, models, "Choose at least one model.")
checks.check(at_most, models, 6, "models")
if len(models) > 1:
    checks.check(registry.check_comparable, models)
c1, c2 = st.columns([1, 2])
fmt = format_picker(key="format", default="int8", where=c1, on_change=rates_follow_format)
with c2:
    ber = ber_select(  # a shared link's format starts at its own scale
        "Bit error rate for the table and sharpness", key="ber", default=rate_of_format("ber", fmt),
        checks=checks,
    )  # fmt: skip
bits = bit_picker(fmt, key="bits")

s1, s2, s3 = st.columns(3)
with s1:
    lo, hi = sweep_range(fmt)
    trials = trials_slider(key="trials", default=30)
with s2:
    names = [m.name for m in models] or ["(select models)"]
    heat_name = carried(
        "heat_model",
        lambda: st.selectbox("Sensitivity heatmap for", names, key="heat_model"),
        valid=lambda v: v if v in names else None,
    )
    heat_flips = st.number_input(
        "Flips per trial in one (layer, bit)", value=5, step=1, key="heat_flips",
        bind="query-params",
    )  # fmt: skip
    heat_flips = checks.check(
        check_int_in, heat_flips, "Flips per trial in one (layer, bit)", low=1, high=1000
    )
    heat_trials = carried(
        "heat_trials", lambda: st.slider("Heatmap trials per cell", 1, 100, 10, key="heat_trials")
    )
with s3:
    seed = seed_input(checks=checks)
    with_sharp = st.checkbox(
        "Sharpness (about 3 s per model)", True, key="sharp", bind="query-params"
    )
    with_attack = st.checkbox(
        "Bit-flip attack (int8)", False, key="attack", bind="query-params",
        help="How many chosen int8 bit flips a progressive bit search (Rakin et al. 2019) needs "
        "to bring each model down to 10 points above chance. More flips = harder to break.",
    )  # fmt: skip

fm = count_fm = None
if not bits:
    checks.flag("Choose at least one bit that may flip.")
elif ber is not None and heat_flips is not None:
    fm = checks.check(fault_model_from, fmt, bits, ber=ber)
    count_fm = checks.check(fault_model_from, fmt, bits, count=heat_flips)
    if fm is not None:  # an imported int8 (QDQ) model: faults hit its stored codes only
        checks.check(check_faults, models, fm)
if with_attack:  # the search flips int8 codes of a per-tensor deployment
    checks.check(check_faults, models, ATTACK_FAULTS)
settings = {
    "models": [m.name for m in models],
    "format": fmt,
    "bits": list(bits),
    "ber": ber,
    "range": [lo, hi],
    "trials": trials,
    "heat": [heat_name, heat_flips, heat_trials],
    "seed": seed,
    "sharpness": with_sharp,
    "attack": with_attack,
}

run, stop_slot = run_controls(
    "Run report", key="run_report", stop_key="report_stop", disabled=not checks.ok
)
checks.waiting_note()
if run and checks.ok:
    previous = run_report(models, fm, count_fm, settings=settings, stop_slot=stop_slot)

previous = require_result(
    previous,
    hint="Press **Run report** to measure the selected models.",
    stopped="The report was stopped; the parts finished so far are shown.",
)
changed = changed_settings(previous.get("settings", {}), settings, SETTING_NAMES)
with stale_box("report", changed, "Run report"):
    if previous["levels"]:
        show_sweep(previous)
    if previous.get("table"):
        show_double_win(previous)
    if previous.get("heat"):
        show_heatmap(previous["heat"])
    if previous.get("sharpness"):
        show_sharpness(previous)
