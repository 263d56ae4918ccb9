"""Long jobs with live output: per-session job records, interrupt detection, the training loop.

Stop works through Streamlit's own interrupt: a click on Stop (or on any widget) while a script
runs makes Streamlit abandon that run at the next ``st.*`` call (``runner.fastReruns``) and rerun
the page. A job record left in state "running" on the next run was therefore interrupted, and
is marked "stopped"; everything it finished before (epochs, models, sweep levels) is kept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import streamlit as st

from sar_core.data.datasets import Dataset
from sar_core.data.models import ModelSpec
from sar_core.plots.training import training_curves_figure
from sar_core.training.loop import TrainConfig, divergence_message, train
from ui import registry
from ui.widgets import LiveChart


def job(name: str) -> dict | None:
    """This session's record of job ``name``.

    Call it before starting a job in this run: a record still 'running' then belongs to an
    earlier run that was interrupted, and becomes 'stopped'.
    """
    rec = st.session_state.get(f"job_{name}")
    if rec is not None and rec.get("status") == "running":
        rec["status"] = "stopped"
    return rec


def start_job(name: str, **fields) -> dict:
    """A fresh job record in state 'running' (replaces the previous one)."""
    rec = {"status": "running", **fields}
    st.session_state[f"job_{name}"] = rec
    return rec


def stop_button(slot, *, live: bool, key: str, phase: str = "") -> None:
    """Stop button in ``slot``: enabled while a job runs (a click interrupts it), else disabled.

    ``phase`` keeps keys unique when the slot is redrawn several times in one run.
    """
    slot.button(
        "Stop",
        key=f"{key}_{'live' if live else 'idle'}{phase}",
        disabled=not live,
        icon=":material/stop_circle:",
        help="Stops the running job; finished parts are kept.",
    )


def finish_job(rec: dict, stop_slot, *, key: str, bar=None) -> dict:
    """Mark a job done, clear its progress bar and disable its Stop button; returns ``rec``."""
    rec["status"] = "done"
    if bar is not None:
        bar.empty()
    stop_button(stop_slot, live=False, key=key, phase="_done")
    return rec


def require_result(rec: dict | None, *, hint: str, stopped: str) -> dict:
    """The job's last result; without one, show ``hint`` and stop the page; warn if it was stopped."""
    if rec is None:
        st.info(hint)
        st.stop()
    if rec["status"] == "stopped":
        st.warning(stopped)
    return rec


def run_controls(
    label: str, *, key: str, stop_key: str, disabled: bool = False
) -> tuple[bool, object]:
    """The primary run button and, next to it, a Stop slot (idle); returns (clicked, slot).

    ``disabled``: some setting is flagged as invalid; the button waits until it is fixed.
    """
    row = st.container(horizontal=True, vertical_alignment="center")
    clicked = row.button(
        label, type="primary", icon=":material/play_arrow:", key=key, disabled=disabled
    )
    slot = row.empty()
    stop_button(slot, live=False, key=stop_key)
    return clicked, slot


def interrupt_point() -> bool:
    """A cheap Streamlit yield point for library ``should_stop`` callbacks; always False.

    Reading session state lets Streamlit act on a pending rerun (a click on Stop, or on any
    widget): the run is abandoned right here, between two training batches, instead of at the
    next chart update (an epoch later).
    """
    return "_sar_interrupt_probe" in st.session_state


def eta_text(done: int, total: int, elapsed: float) -> str:
    """'about 40 s left' from the epochs done so far and the time they took ('' before one)."""
    if done <= 0 or total <= done:
        return ""
    left = elapsed / done * (total - done)
    return f"about {left:.0f} s left" if left < 120 else f"about {left / 60:.0f} min left"


def train_runs(
    rec: dict,
    spec: ModelSpec,
    data: Dataset,
    plans: Sequence[dict],
    *,
    progress_text: str = "Training",
    where=None,
) -> None:
    """Train every plan (dicts with label, method, config, name, color?) with live curves.

    Appends to ``rec["runs"]`` as it goes; each finished model joins the user's registry, except
    one whose training diverged (weights NaN/Inf): its run records ``diverged``, the reason.
    Stop acts within one batch (``interrupt_point``); the progress text estimates the time
    left from the epochs measured so far. ``where``: the container to draw into (e.g. one at the
    top of the page, so the live chart is on screen without scrolling).
    """
    with where if where is not None else st.container():
        bar = st.progress(0.0, text=progress_text)
        chart = LiveChart()
    total = sum(p["config"].epochs for p in plans)
    done, t_start = 0, time.perf_counter()
    for plan in plans:
        run = {
            "label": plan["label"],
            "method": plan["method"],
            "history": [],
            "color": plan.get("color"),
            "model": None,
        }
        rec["runs"].append(run)
        cfg: TrainConfig = plan["config"]

        def on_epoch(r: dict, run=run, cfg=cfg) -> None:
            nonlocal done
            run["history"].append(r)
            done += 1
            eta = eta_text(done, total, time.perf_counter() - t_start)
            bar.progress(
                min(done / total, 1.0),
                text=f"{progress_text}: {run['label']} epoch {r['epoch']}/{cfg.epochs} "
                f"(test accuracy {100 * r['test_acc']:.1f}%){' · ' + eta if eta else ''}",
            )
            chart.draw(training_curves_figure(rec["runs"]))

        result = train(spec, data, cfg, on_epoch=on_epoch, should_stop=interrupt_point)
        run["diverged"] = divergence_message(result)
        if run["diverged"] is None:  # a diverged model (NaN/Inf weights) is not kept
            run["model"] = registry.add_trained(result, data, plan["name"]).name
    chart.draw(training_curves_figure(rec["runs"]), force=True)
    bar.empty()
    chart.slot.empty()
