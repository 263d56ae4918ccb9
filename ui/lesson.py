"""The lesson's numbers for the page: read from the precomputed bundle (assets/lesson/quick.json,
no torch), or computed by sar_core.analysis.lesson and cached by settings.

The bundle holds the quick numbers of the five lesson models at seed 0 for every fault choice
and rate; it names the checkpoints' content digests and is used only while they match the files
(and the seed is 0). Any other case (another seed, your own model, a Precise run) computes, and
imports torch the first time it does.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from sar_core.analysis.lesson_summary import (
    BERS,
    FAULTS,
    LESSON_METHODS,
    PRECISE_TRIALS,
    QUICK_TRIALS,
    check_bundle,
    lesson_paths,
    noise,
    summarize_level,
)
from sar_core.plots.style import method_label

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
BUNDLE = ASSETS / "lesson" / "quick.json"
# the same path as sar_core.experiments.suite_results.RESULTS_PATH
SUITE = ROOT / "benchmarks" / "results" / "suite.json"
REGISTRY_KEY = "sar_registry"  # ui.registry.STATE_KEY (not imported: it loads torch)
SUITE_TARGET = {"int8": "int8", "float16": "float16"}  # the formats the held-out suite measures
__all__ = ["BERS", "FAULTS", "PRECISE_TRIALS", "QUICK_TRIALS"]


@dataclass(frozen=True)
class Model:
    """One model of the lesson: a bundled demo file, or this session's own model (``entry``)."""

    name: str
    method: str
    key: str  # content digest
    path: str | None = None
    entry: object = field(default=None, compare=False, hash=False)

    @property
    def short(self) -> str:
        return self.name.split(" · ")[-1]


def _digest_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:20]


@st.cache_data(show_spinner=False, max_entries=16)
def _digests(paths: tuple[str, ...], mtimes: tuple[int, ...]) -> list[str]:
    return [_digest_file(Path(p)) for p in paths]


def demo_lineup() -> list[Model]:
    """The five lesson models (SGD first: the reference of every paired difference)."""
    paths = lesson_paths(ASSETS)
    keys = _digests(tuple(map(str, paths)), tuple(p.stat().st_mtime_ns for p in paths))
    return [
        Model(f"demo · digits MLP · {method_label(m)}", m, k, str(p))
        for m, k, p in zip(LESSON_METHODS, keys, paths)
    ]


def own_models() -> list:
    """This session's own models with the lesson's architecture (registry entries)."""
    if not st.session_state.get(REGISTRY_KEY):
        return []
    from ui.registry import demo_entries, user_entries

    spec = next(e for e in demo_entries() if e.arch == "mlp").checkpoint.spec
    return [e for e in user_entries().values() if e.checkpoint.spec == spec]


def own_model(entry) -> Model:
    """A lineup entry for one of this session's own models."""
    return Model(entry.name, entry.method, entry.key, None, entry)


# --- the bundle --------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=2)
def _read_bundle(path: str, mtime_ns: int) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def bundle(lineup: Sequence[Model], seed: int) -> dict | None:
    """The precomputed numbers, when they were computed for exactly this lineup and seed."""
    if not BUNDLE.is_file():
        return None
    b = _read_bundle(str(BUNDLE), BUNDLE.stat().st_mtime_ns)
    ok = b is not None and check_bundle(b, [m.key for m in lineup], seed=seed)
    return b if ok else None


def _any_bundle() -> dict | None:
    return _read_bundle(str(BUNDLE), BUNDLE.stat().st_mtime_ns) if BUNDLE.is_file() else None


def rates(fault: str) -> list[float]:
    """The rates offered for a fault choice: where something happens (from the bundle's seed-0
    measurement of the demo models; every rate when no bundle is there)."""
    b = _any_bundle()
    offered = (b or {}).get("rates", {}).get(fault)
    return [float(x) for x in offered] if offered else list(BERS)


def nearest(ber: float, offered: Sequence[float]) -> float:
    """The offered rate closest to ``ber`` on a log scale."""
    return min(offered, key=lambda r: abs(math.log(r / ber)))


# --- live computation (torch) ------------------------------------------------------------------


def _models(lineup: Sequence[Model]) -> list:
    from ui.cache import demo_checkpoint

    return [
        m.entry.model if m.entry is not None else demo_checkpoint(m.path).checkpoint.model
        for m in lineup
    ]


def _test_data():
    from ui.cache import dataset

    return dataset("digits", 0)


@st.cache_data(show_spinner=False, max_entries=512)
def _live_level(keys, _lineup, fault, ber, seed, trials) -> dict:
    from sar_core.analysis import lesson as LA

    data = _test_data()
    fm = LA.fault_model(fault, ber)
    return LA.measure(_models(_lineup), data.X_test, data.y_test, fm, trials=trials, seed=seed)


@st.cache_data(show_spinner=False, max_entries=256)
def _live_setting(keys, _lineup, fault, ber, seed) -> dict:
    from sar_core.analysis import lesson as LA

    data = _test_data()
    return LA.setting(_models(_lineup), data.X_test, data.y_test, fault, ber, seed=seed)


@st.cache_data(show_spinner=False, max_entries=32)
def _live_static(keys, _lineup, seed) -> dict:
    from sar_core.analysis import lesson as LA

    data = _test_data()
    return LA.static(_models(_lineup), data.X_test, data.y_test, seed=seed)


def _keys(lineup: Sequence[Model]) -> tuple[str, ...]:
    return tuple(m.key for m in lineup)


def level(lineup: Sequence[Model], fault: str, ber: float, seed: int) -> dict:
    """The raw quick level (QUICK_TRIALS paired patterns) at one rate."""
    b = bundle(lineup, seed)
    if b is not None and repr(float(ber)) in b["levels"].get(fault, {}):
        return b["levels"][fault][repr(float(ber))]
    return _live_level(_keys(lineup), lineup, fault, ber, seed, QUICK_TRIALS)


def setting(lineup: Sequence[Model], fault: str, ber: float, seed: int) -> dict:
    """Loss along the real fault and the worst flip at one rate."""
    b = bundle(lineup, seed)
    if b is not None and repr(float(ber)) in b["settings"].get(fault, {}):
        return b["settings"][fault][repr(float(ber))]
    return _live_setting(_keys(lineup), lineup, fault, ber, seed)


def static(lineup: Sequence[Model], seed: int) -> dict:
    """Per-model int8 steps and the random-direction loss slices."""
    b = bundle(lineup, seed)
    return b["static"] if b is not None else _live_static(_keys(lineup), lineup, seed)


def curve(lineup: Sequence[Model], fault: str, offered: Sequence[float], seed: int) -> list[dict]:
    """Summaries (sar_core.analysis.lesson_summary.summarize_level) at every offered rate."""
    return [summarize_level(level(lineup, fault, r, seed)) for r in offered]


def quick_noise(levels: Sequence[dict], ber: float) -> dict:
    """How noisy the quick curve is next to the differences it shows (lesson_summary.noise)."""
    return noise(levels, ber)


def precise(
    lineup: Sequence[Model], fault: str, ber: float, seed: int, *, chunk: int = 25
) -> Iterator[dict]:
    """PRECISE_TRIALS paired patterns at one rate, yielding the growing summary every ``chunk``."""
    from sar_core.analysis import lesson as LA

    data = _test_data()
    fm = LA.fault_model(fault, ber)
    for raw in LA.iter_measure(
        _models(lineup), data.X_test, data.y_test, fm, trials=PRECISE_TRIALS, seed=seed, chunk=chunk
    ):
        yield summarize_level(raw)


# --- warming up -------------------------------------------------------------------------------

_WARM = threading.Event()


def warm_up() -> None:
    """Import torch and the lesson's computing modules in a background thread, once per server
    process, after the quick numbers are on screen: a first Precise run (or another seed) then
    does not wait for the import (measured 3-5 s on the shared 2-core machine)."""
    if _WARM.is_set():
        return
    _WARM.set()
    threading.Thread(target=_import_compute, name="lesson-warm-up", daemon=True).start()


def _import_compute() -> None:
    import sar_core.analysis.lesson  # noqa: F401  (torch, the engine, the landscapes)
    import ui.cache  # noqa: F401  (checkpoint loading, datasets)


# --- the held-out suite ------------------------------------------------------------------------


def headline_view(results: dict, target: str) -> dict:
    """What the lesson shows of the suite at one target: suite_results.headline
    for the digits MLP task, the held-out seeds and the number of tasks."""
    from sar_core.experiments.suite_results import headline

    cfg = results.get("config", {})
    return {
        "rows": headline(results, target, task="digits_mlp"),
        "heldout_seeds": list(cfg.get("heldout_seeds", [])),
        "tuning_seeds": list(cfg.get("tuning_seeds", [])),
        "n_tasks": len(results["tasks"]),
    }


def file_digest(path: Path) -> str:
    """Short content digest of a file (the bundle's key of the suite results it read)."""
    return _digest_file(path)


@st.cache_data(show_spinner=False, max_entries=4)
def _live_headline(digest: str, target: str) -> dict:
    from sar_core.experiments.suite_results import load_results

    return headline_view(load_results(SUITE), target)


def suite_headline(fault: str) -> dict | None:
    """The held-out suite's headline for the chosen format (None: the suite has no such target).

    Read from the bundle when it was computed from this very results file (same digest), else
    from sar_core.experiments.suite_results.headline (loads torch the first time).
    """
    target = SUITE_TARGET.get(FAULTS[fault].format)
    if target is None or not SUITE.is_file():
        return None
    digest = _digests((str(SUITE),), (SUITE.stat().st_mtime_ns,))[0]
    cached = (_any_bundle() or {}).get("suite") or {}
    if cached.get("digest") == digest and target in cached.get("targets", {}):
        return cached["targets"][target]
    return _live_headline(digest, target)
