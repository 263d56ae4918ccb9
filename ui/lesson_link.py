"""The lesson's address bar: a shared link's values are checked before the widgets read them,
and a value the lesson cannot show is replaced by a stated fallback, never silently.

The fault box writes its label to the link (``?fault=int8%3A+all+bits``); older links and
tests may hold its key (``?fault=int8``); both are accepted. The rate is written as the slider
shows it (``?error_rate=3e-2``).
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping

import streamlit as st

from ui.layout import fmt_ber
from ui.lesson import FAULTS, REGISTRY_KEY, Model, nearest, own_model, own_models, rates

DEFAULT_FAULT = "int8"
DEFAULT_RATE = 0.03


NOTES_KEY = "_lesson_link_notes"  # session_state: the notes about the link this session opened


def reset_precise() -> None:
    """A new setting (or Stop) goes back to the quick trial count; notes about the link that
    opened the page are done with once the reader changes a setting."""
    st.query_params.pop("precise", None)
    st.session_state[NOTES_KEY] = []


def set_preset(fault: str, ber: float) -> None:
    """Set the fault choice and the rate of a preset (a callback: runs before the widgets)."""
    st.session_state.update({"fault": fault, "error_rate": ber})
    reset_precise()


def _fault_key(raw: str) -> str | None:
    if raw in FAULTS:
        return raw
    return next((k for k, f in FAULTS.items() if f.label == raw), None)


def _rate(raw: str) -> float | None:
    try:
        v = float(raw)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def link_notes(qp: MutableMapping, state: MutableMapping) -> list[str]:
    """The notes about the link that opened this session (checked on its first run only: after
    that the widgets write the address bar)."""
    if NOTES_KEY not in state:
        state[NOTES_KEY] = _check_link(qp, state)
    return state[NOTES_KEY]


def _check_link(qp: MutableMapping, state: MutableMapping) -> list[str]:
    """Check the link's fault, rate and own-model values; fix what cannot be shown and say so."""
    notes = []
    fault = state.get("fault")
    raw = qp.get("fault")
    if raw is not None and _fault_key(raw) is None:
        fault = DEFAULT_FAULT
        notes.append(
            f"This link asks for the fault '{raw}', which is not one of the choices: showing "
            f"{FAULTS[fault].label} instead."
        )
        qp["fault"] = FAULTS[fault].label
        state["fault"] = fault
    elif raw is not None:
        fault = _fault_key(raw)
        if raw != FAULTS[fault].label:  # a key-form link (?fault=int8): the box reads labels
            qp["fault"] = FAULTS[fault].label
        state["fault"] = fault
    fault = fault or DEFAULT_FAULT
    raw = qp.get("error_rate")
    offered = rates(fault)
    if raw is not None:
        v = _rate(raw)
        if v is None or not any(math.isclose(v, r, rel_tol=1e-9) for r in offered):
            near = nearest(v if v is not None else DEFAULT_RATE, offered)
            notes.append(
                f"This link's bit error rate '{raw}' is not offered for {FAULTS[fault].label} "
                f"(offered: {fmt_ber(offered[0])} to {fmt_ber(offered[-1])}, where something "
                f"happens): showing {fmt_ber(near)} instead."
            )
            qp["error_rate"] = fmt_ber(near)
            state["error_rate"] = near
        else:  # the slider's value (also for another spelling: 0.0001 for 1e-4)
            if raw != fmt_ber(v):
                qp["error_rate"] = fmt_ber(v)
            state["error_rate"] = nearest(v, offered)
    own = qp.get("own")
    if own is not None and own not in {e.name for e in lesson_own_models()}:
        notes.append(
            f"This link was made with the sender's own model '{own}', which lives only in their "
            "browser: you see the five demo models, and the numbers differ from theirs."
        )
    return notes


def _weights(model) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(p.shape)) for n, p in model.named_parameters()]


def lesson_own_models() -> list:
    """This session's own models the lesson can measure: trained or uploaded checkpoints of its
    architecture (``ui.lesson.own_models``) and uploaded float ONNX models with the lesson MLP's
    parameter names and shapes (an export of a digits MLP): the same fault sites, so the paired
    faults hit them too. They run on the lesson's digits test rows, not on their uploaded data.
    An int8 QDQ model is left out: the lesson's float16 / float32 faults cannot hit its codes."""
    own = own_models()
    if not st.session_state.get(REGISTRY_KEY):
        return own
    from ui.registry import demo_entries, user_entries

    mlp = _weights(next(e for e in demo_entries() if e.arch == "mlp").model)
    return own + [
        e
        for e in user_entries().values()
        if e.imported and not e.checkpoint.quantized and _weights(e.model) == mlp
    ]


def pick_own() -> list[Model]:
    """The expert view's "Add your own model" box (this session's models of the lesson's
    architecture): [] or the chosen one. The link records it (``?own=``) so a recipient, who
    does not have it, is told."""
    own = lesson_own_models()
    if not own:
        return []
    pick = st.selectbox("Add your own model", ["none"] + [e.name for e in own], key="lesson_own")
    if pick == "none":
        st.query_params.pop("own", None)
        return []
    st.query_params["own"] = pick
    st.info(
        "Your own model lives in this browser session only: a shared link to this page shows "
        "the demo models alone (with a notice).",
        icon=":material/link_off:",
    )
    entry = next(e for e in own if e.name == pick)
    if entry.imported:
        st.caption(
            "Your uploaded model is measured here on the lesson's digits test rows (its "
            "uploaded data is used on the other pages)."
        )
    return [own_model(entry)]
