"""The lesson page (AppTest): five models under the same faults; its numbers equal an
independent campaign on the checkpoints, the precomputed bundle equals a fresh computation, the
verdicts come from accuracy lost with paired intervals, links with bad values say they fell back,
every format offers only rates where something happens, and beginner mode hides the jargon."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

TIMEOUT = 180
METHODS = ("sgd", "sar", "clip", "randbet", "asam")


def lesson(**query: str) -> AppTest:
    """A fresh session on the lesson opened with a URL query (``fault`` by key or label)."""
    at = AppTest.from_file(str(ROOT / "app_pages" / "lesson.py"), default_timeout=TIMEOUT)
    at.query_params.update(query)
    return at.run()


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(parts + [t.value for t in at.title])


def strip_rows(at: AppTest) -> list[list[str]]:
    """The model strip's rows: [model, no faults, under faults, lost, vs SGD] cells."""
    table = next(m.value for m in at.markdown if m.value.startswith("| model | no faults"))
    return [[c.strip() for c in r.strip("|").split("|")] for r in table.splitlines()[2:]]


def under_faults(at: AppTest) -> list[str]:
    return [r[2].split(" <small>")[0] for r in strip_rows(at)]


def checkpoints():
    from sar_core.analysis.lesson_summary import lesson_paths
    from sar_core.data.io import load_checkpoint

    return [load_checkpoint(p).model for p in lesson_paths(ROOT / "assets")]


def reference(fault: str, ber: float, trials: int, seed: int):
    """The five models under the lesson's fault straight from sar_core.analysis.campaign (no
    lesson or dashboard code): trial t uses rng([seed, t])."""
    from sar_core.analysis.campaign import compare
    from sar_core.analysis.lesson_summary import FAULTS
    from sar_core.data.datasets import load_dataset
    from sar_core.faults.model import FaultModel

    f = FAULTS[fault]
    data = load_dataset("digits", seed=0)
    fm = FaultModel(format=f.format, bits=f.bits, ber=ber)
    return compare(checkpoints(), data.X_test, data.y_test, fm, trials=trials, seed=seed)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def pts(x: float) -> str:
    """Signed points with a true minus sign, as the page writes them (independent of ui); a
    value that rounds to zero is '0.0' (the page printed '[−0.0, +2.5]')."""
    return "0.0" if round(x, 1) == 0 else f"{x:+.1f}".replace("-", "−")


def test_lesson_shows_five_models_whose_numbers_match_an_independent_campaign():
    from ui.lesson import QUICK_TRIALS

    at = lesson()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert [r[0].split("</span> ")[1] for r in strip_rows(at)] == [
        "SGD",
        "SAR",
        "Weight clipping",
        "RandBET",
        "ASAM",
    ]
    res = reference("int8", 0.03, QUICK_TRIALS, 0)["results"]
    assert under_faults(at) == [pct(np.mean(r.accuracy)) for r in res]
    assert len(at.get("plotly_chart")) == 2  # the real fault, the worst flip
    assert any("sar-accuracy-chart" in m.value for m in at.markdown)  # accuracy: SVG
    at.select_slider(key="error_rate").set_value(0.01).run()  # no button pressed
    assert not at.exception
    res = reference("int8", 0.01, QUICK_TRIALS, 0)["results"]
    assert under_faults(at) == [pct(np.mean(r.accuracy)) for r in res]


def test_the_bundle_is_current_and_equals_a_fresh_computation():
    """The precomputed numbers name today's checkpoints and are what sar_core computes now."""
    from sar_core.analysis import lesson as LA
    from sar_core.analysis.lesson_summary import check_bundle, digest, lesson_paths
    from sar_core.data.datasets import load_dataset

    b = json.loads((ROOT / "assets" / "lesson" / "quick.json").read_text())
    digests = [digest(p.read_bytes()) for p in lesson_paths(ROOT / "assets")]
    assert check_bundle(b, digests, seed=0), "rebuild: python scripts/make_demo_assets.py --bundle"
    data = load_dataset("digits", seed=0)
    models = checkpoints()
    for fault, ber in (("int8", 0.03), ("float32-exponent", 1e-5)):
        fresh = LA.measure(
            models, data.X_test, data.y_test, LA.fault_model(fault, ber), trials=20, seed=0
        )
        stored = b["levels"][fault][repr(ber)]
        for f, s in zip(fresh["models"], stored["models"]):
            assert f["accuracy"] == s["accuracy"] and f["changed"] == s["changed"]


def test_every_offered_rate_is_no_dead_end():
    """At the first and last rate each format offers, some model loses accuracy and some model
    still beats chance (recomputed here from campaigns, 20 patterns)."""
    from ui.lesson import FAULTS, rates

    for fault in FAULTS:
        offered = rates(fault)
        assert offered, fault
        for ber in (offered[0], offered[-1]):
            res = reference(fault, ber, 20, 0)["results"]
            lost = [r.deployed_accuracy - np.mean(r.accuracy) for r in res]
            assert max(lost) >= 0.005, (fault, ber)
            assert max(np.mean(r.accuracy) for r in res) >= 0.15, (fault, ber)


def test_presets_set_the_controls_and_move_accuracy_visibly():
    from sar_core.analysis.campaign import compare
    from sar_core.data.datasets import load_dataset
    from sar_core.faults.model import FaultModel
    from ui.lesson import FAULTS, rates
    from ui.lesson_text import PRESETS

    at = lesson()
    data = load_dataset("digits", seed=0)
    models = checkpoints()[:2]
    for i, (label, fault, ber) in enumerate(PRESETS):
        at.button(key=f"preset_{i}").click().run()
        assert at.selectbox(key="fault").value == fault, label
        assert at.select_slider(key="error_rate").value == ber and ber in rates(fault), label
        f = FAULTS[fault]
        fm = FaultModel(format=f.format, bits=f.bits, ber=ber)
        sgd = compare(models, data.X_test, data.y_test, fm, trials=100)["results"][0]
        mean = sum(sgd.accuracy) / len(sgd.accuracy)  # the reference loses visibly, above chance
        assert 0.2 < mean < sgd.deployed_accuracy - 0.02, (label, mean)


def test_verdicts_compare_accuracy_lost_with_paired_intervals():
    """The strip's 'vs SGD' cells are the paired t-interval of (faulty - fault-free) differences
    (scipy reference), and the words follow the interval's side of 0."""
    from scipy import stats

    from ui.lesson import QUICK_TRIALS

    at = lesson(fault="float32-exponent", error_rate="1e-5")
    res = reference("float32-exponent", 1e-5, QUICK_TRIALS, 0)["results"]
    a = np.asarray(res[0].accuracy) - res[0].deployed_accuracy
    for r, row in zip(res[1:], strip_rows(at)[1:]):
        d = 100 * ((np.asarray(r.accuracy) - r.deployed_accuracy) - a)
        lo, hi = stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=stats.sem(d))
        cell = row[4]
        sym = "▲" if lo > 0 else ("▼" if hi < 0 else "·")  # loses less / more / no difference
        assert cell == f"{sym} {pts(d.mean())} [{pts(lo)}, {pts(hi)}]", cell


def test_a_bad_link_value_says_it_fell_back():
    at = lesson(error_rate="7e-3")
    assert not at.exception
    notes = " ".join(w.value for w in at.warning)
    assert "'7e-3' is not offered" in notes and "showing 5e-3 instead" in notes
    assert at.select_slider(key="error_rate").value == 0.005
    at = lesson(fault="nonsense")
    assert "fault 'nonsense'" in " ".join(w.value for w in at.warning)
    assert at.selectbox(key="fault").value == "int8"
    good = lesson(fault="float32-bit30", error_rate="1e-4")  # a key-form link is understood
    assert not good.warning or "not offered" not in good.warning[0].value
    assert good.selectbox(key="fault").value == "float32-bit30"


def test_a_link_made_with_the_senders_own_model_says_so():
    at = lesson(own="my SAM")
    assert any("sender's own model 'my SAM'" in w.value for w in at.warning)
    assert len(strip_rows(at)) == 5  # the demo models


def test_precise_streams_to_300_patterns_equal_to_an_independent_campaign():
    from ui.lesson import PRECISE_TRIALS

    at = lesson(fault="int8", error_rate="3e-2")
    at.button(key="precise").click().run()
    assert not at.exception
    assert any(
        f"{PRECISE_TRIALS} of {PRECISE_TRIALS} patterns (done)" in c.value for c in at.caption
    )
    res = reference("int8", 0.03, PRECISE_TRIALS, 0)["results"]
    assert under_faults(at) == [pct(np.mean(r.accuracy)) for r in res]


def test_sentences_quote_the_numbers_beside_them():
    at = lesson(fault="int8", error_rate="3e-2")
    text = texts(at)
    rows = strip_rows(at)
    sgd_lost = rows[0][3].replace("−", "")
    assert f"SGD loses {sgd_lost} points" in text
    from sar_core.analysis.lesson import weight_arrays
    from sar_core.analysis.lesson_summary import int8_steps

    steps = [int8_steps(weight_arrays(m)) for m in checkpoints()]
    assert f"SGD's largest |w| is {steps[0]['max_abs_w']:.2f}" in text
    assert f"moves a weight by up to {steps[0]['bit7_move_max']:.2f}" in text
    assert "Held-out suite" in text and "In-sample" in text


def test_the_suite_strip_comes_from_the_results_file(tmp_path):
    from sar_core.experiments.suite_results import headline, load_results

    at = lesson(fault="int8")
    res = load_results()
    table = next(m.value for m in at.markdown if m.value.startswith("| held-out suite"))
    rows = [  # cells split on unescaped pipes ('max|w|' in a label is written 'max\\|w\\|')
        [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", r.strip()[1:-1])]
        for r in table.splitlines()[2:]
    ]
    want = headline(res, "int8", task="digits_mlp")
    assert len(rows) == len(want)
    for row, w in zip(rows, want):
        td = w["task_delta"]
        assert row[0] == w["label"] and row[1] == pts(w["mean_delta"])
        assert row[2] == f"{w['wins']}▲ {w['ties']}· {w['losses']}▼"
        assert row[3] == f"{pts(td['mean'])} [{pts(td['lo'])}, {pts(td['hi'])}]"
    seeds = ", ".join(map(str, res["config"]["heldout_seeds"]))
    assert f"training seeds {seeds}" in texts(at) and "In-sample" in texts(at)
    f32 = lesson(fault="float32")
    assert "no held-out result for float32" in texts(f32)


def test_beginner_view_hides_jargon_and_expert_view_shows_it():
    jargon = ("λ_max", "filter-normalized", "Hessian-vector")
    beginner = lesson()
    assert not any(j in texts(beginner) for j in jargon)
    assert "seed" not in [w.key for w in beginner.number_input]
    expert = lesson(expert="true")
    expert.session_state["why_open"] = True  # the curvature panel, opened
    expert.run()
    assert "λ_max" in texts(expert)
    assert "filter-normalized" in str([c.proto for c in expert.get("plotly_chart")])
    assert expert.number_input(key="seed").value == 0


def test_own_models_can_be_added_but_are_not_shareable():
    from sar_core.data.io import load_checkpoint
    from ui.cache import LoadedCheckpoint, digest_of
    from ui.registry import Entry

    at = lesson(expert="true")
    good = (ROOT / "assets" / "digits_mlp_sam.safetensors").read_bytes()
    entry = Entry(
        "my digits MLP · SAM",
        "uploaded",
        LoadedCheckpoint(load_checkpoint(good), good, digest_of(good)),
    )
    at.session_state["sar_registry"] = {entry.name: entry}
    at.run()
    at.selectbox(key="lesson_own").set_value(entry.name).run()
    assert not at.exception
    assert len(strip_rows(at)) == 6 and "(yours)" in strip_rows(at)[5][0]
    assert any("shared link to this page shows the demo models" in i.value for i in at.info)
    assert at.query_params["own"] == [entry.name] or at.query_params["own"] == entry.name


@pytest.mark.parametrize("bad", ["abc", "-3"])
def test_a_bad_seed_in_a_link_is_flagged_not_a_crash(bad):
    at = lesson(seed=bad)
    assert not at.exception and at.error
    assert strip_rows(at)  # falls back to seed 0 and still teaches
