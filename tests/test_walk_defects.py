"""Regressions from the teacher's walk (issue 17, item 5), each failing before its fix: a diverged
training run, the landscape's preselection, Bit anatomy's edge values, whole numbers typed in
scientific notation, and distinct colours for two models of one method."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

TIMEOUT = 180


def page(name: str) -> AppTest:
    return AppTest.from_file(str(ROOT / "app_pages" / f"{name}.py"), default_timeout=TIMEOUT)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_train_at_the_widgets_largest_learning_rate_says_it_diverged():
    """lr 10 (the box's maximum) with 3 epochs: before, a red ValueError box ('holds NaN or Inf
    values'); now a warning names the divergence, no model is kept, the page stays usable."""
    at = page("train").run()
    at.multiselect(key="methods").set_value(["sgd"])
    at.text_input(key="epochs").set_value("3")
    at.slider(key="trials").set_value(2)
    at.number_input(key="lr").set_value(10.0).run()
    at.button(key="train_go").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not errors(at), errors(at)
    notes = " ".join(w.value for w in at.warning)
    assert "SGD diverged" in notes and "lr=10" in notes
    assert at.session_state["sar_registry"] == {}
    table = at.dataframe[0].value
    assert list(table["model"]) == ["(diverged, not saved)"]
    at.number_input(key="lr").set_value(0.05).run()  # still usable: a sane rate trains
    at.button(key="train_go").click().run()
    assert not at.exception and not errors(at)
    assert list(at.session_state["sar_registry"]) == ["my digits MLP · SGD"]


@pytest.mark.parametrize(
    ("typed", "shown"),
    [("1e9", "1e+09 is not"), ("abc", "'abc' is not a number"), ("2.5", "2.5 is not")],
)
def test_epochs_typed_in_any_notation_are_read_as_typed(typed, shown):
    """A browser number box turned '1e9' into 1 and trained; the box now reads the text."""
    at = page("train").run()
    at.text_input(key="epochs").set_value(typed).run()
    assert not at.exception
    assert any(
        e.startswith("Epochs must be a whole number from 1 to") and shown in e for e in errors(at)
    ), errors(at)
    assert at.button(key="train_go").disabled


@pytest.mark.parametrize(("text", "want"), [("30", 30), ("1e3", 1000), (" 7 ", 7), ("1E2", 100)])
def test_read_int_reads_scientific_notation_exactly(text, want):
    from ui.inputs import read_int

    assert read_int(text, "N", low=1, high=10**6) == want


@pytest.mark.parametrize("text", ["1e12", "1e9", "nan", "inf", "-1", "", "1.5e0"])
def test_read_int_refuses_what_it_cannot_use(text):
    from ui.inputs import InputError, read_int

    with pytest.raises(InputError, match="Flips must be a whole number from 1 to 1000"):
        read_int(text, "Flips", low=1, high=1000)


def test_read_ints_refuses_a_huge_count_in_a_list():
    from ui.inputs import InputError, read_ints

    assert read_ints("64, 1e2", "Widths", low=1, high=512) == (64, 100)
    with pytest.raises(InputError, match="1e\\+12 is not"):
        read_ints("64, 1e12", "Widths", low=1, high=512)


def own_entry(name: str, file: str):
    from sar_core.data.io import load_checkpoint
    from ui.cache import LoadedCheckpoint, digest_of
    from ui.registry import Entry

    raw = (ROOT / "assets" / file).read_bytes()
    return Entry(name, "trained", LoadedCheckpoint(load_checkpoint(raw), raw, digest_of(raw)))


def test_landscape_after_training_two_models_preselects_within_the_limit():
    """Before: the demo picks matched 'my digits MLP · SGD' too: 5 models, an error, Compute
    disabled."""
    at = page("landscape")
    mine = [
        own_entry("my digits MLP · SGD", "digits_mlp_sgd.safetensors"),
        own_entry("my digits MLP · SAR", "digits_mlp_sar.safetensors"),
    ]
    at.session_state["sar_registry"] = {e.name: e for e in mine}
    at.run()
    assert not at.exception and not errors(at), errors(at)
    picked = at.multiselect(key="models").value
    assert 1 <= len(picked) <= 4 and all(n.startswith("demo · ") for n in picked), picked
    assert not at.button(key="compute").disabled


def anatomy(value: str, fmt: str = "int8") -> AppTest:
    at = page("bit_anatomy").run()
    at.selectbox(key="aformat").set_value(fmt).run()
    at.text_input(key="value").set_value(value).run()
    return at


def test_bit_anatomy_int8_of_a_huge_value_is_its_finite_code():
    """3.5e38 in int8 is code 127 times s = 3.5e38 / 127: finite (was 'stored as inf' and a NaN
    relative change, from a float32 product q × s)."""
    import numpy as np

    at = anatomy("3.5e38")
    assert not at.exception and not errors(at), errors(at)
    assert not any("inf" in i.value for i in at.info)
    s = 3.5e38 / 127
    with np.errstate(over="ignore"):  # 3.5e38 is above float32's max: it saturates to q = 127
        q = int(np.clip(np.nan_to_num(np.float32(3.5e38) / np.float32(s)), -127, 127))
    assert q == 127
    flipped = int(np.array([q], dtype=np.int8).view(np.uint8)[0] ^ 0x80)  # bit 7, numpy view
    q1 = int(np.array([flipped], dtype=np.uint8).view(np.int8)[0])
    before, after = q * float(np.float32(s)), q1 * float(np.float32(s))
    values = [m.value for m in at.metric]
    assert values[0] == f"{before:.7g}" and values[1] == f"{after:.7g}"
    assert values[2] == f"{abs(after - before) / abs(before):.3g}"  # 128/127, not NaN


@pytest.mark.parametrize("zero", ["0", "-0", "-0.0"])
def test_bit_anatomy_int8_zero_asks_for_a_scale(zero):
    """A typed 0 gives no int8 scale (0 / 127): it asked for none and showed -128 with s = 1."""
    at = anatomy(zero)
    assert not at.exception
    assert any("a typed 0 gives no scale" in e for e in errors(at)), errors(at)
    assert not at.metric
    at.text_input(key="scale").set_value("1e-3").run()  # with a scale it is a real int8 value
    assert not errors(at) and at.metric[0].value == "0"
    assert at.metric[1].value == "-0.128"  # bit 7 of q = 0: -128 x 1e-3


@pytest.mark.parametrize("bad", ["abc", "nan", "inf", ""])
def test_bit_anatomy_bad_input_shows_no_other_values_bits(bad):
    """Under an input error the page kept drawing 0.1's bits; now it draws no value's bits."""
    at = anatomy(bad, fmt="float32")
    assert not at.exception and errors(at)
    assert not at.metric  # no 'Stored value 0.1'
    assert "cells" not in [c.proto.id for c in at.get("plotly_chart")] or not any(
        "0.1 stored" in str(c.proto) for c in at.get("plotly_chart")
    )
    assert any("Fix the value" in i.value for i in at.info)


def test_train_page_sar_is_the_library_default_sar():
    """The Train page's SAR geometry and rho are the library's defaults (SAR v3: fault geometry,
    SAR_DEFAULT_RHO); it showed elementwise, which with v3's small rho made SAR nearly SGD."""
    from sar_core.training.optim import SAR_DEFAULT_GEOMETRY, SAR_DEFAULT_RHO

    at = page("train").run()
    assert not at.exception
    assert at.selectbox(key="geometry").value == SAR_DEFAULT_GEOMETRY
    assert at.number_input(key="rho").value == pytest.approx(SAR_DEFAULT_RHO)
