"""One browser session across every page (AppTest with ``switch_page``): settings chosen on one
page reach the next page that shows them, and no page pair crashes or silently resets them.

A Streamlit widget's id includes its page, and a run drops the state of widgets it did not draw,
so before the fix the bit picker opened empty on Robustness after Bit flips ("Choose at least one
bit that may flip") and the trials, ber, bias and heatmap settings went back to their defaults.
"""

from __future__ import annotations

from test_pages import ROOT, TIMEOUT, AppTest

PAGES = [
    "home", "lesson", "train", "landscape", "bit_flips", "bit_anatomy", "robustness", "your_model",
]  # fmt: skip
KINDS = (
    "slider", "number_input", "select_slider", "multiselect", "selectbox", "text_input",
    "checkbox", "radio", "pills", "toggle", "button_group",
)  # fmt: skip
CNNS = ["demo · digits CNN · SGD", "demo · digits CNN · SAR"]
ALL_DEMOS = [
    f"demo · digits {a} · {m}" for a in ("MLP", "CNN") for m in ("SGD", "SAM", "SAR")
]  # the six demo models: the most Bit flips and Robustness accept


def _widgets(at: AppTest) -> dict:
    return {
        w.key: w for kind in KINDS for w in at.get(kind) if w.key and not w.key.startswith("$$")
    }


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def _go(at: AppTest, name: str) -> AppTest:
    at.switch_page(f"app_pages/{name}.py").run()
    assert not at.exception, (name, [e.value for e in at.exception])
    return at


def _every_ordered_pair(nodes: list[str]) -> list[str]:
    """A closed walk using every ordered pair (a, b), a != b, exactly once (Hierholzer)."""
    out_edges = {a: [b for b in nodes if b != a] for a in nodes}
    stack, walk = [nodes[0]], []
    while stack:
        if out_edges[stack[-1]]:
            stack.append(out_edges[stack[-1]].pop())
        else:
            walk.append(stack.pop())
    return walk[::-1]


def test_the_walk_covers_every_ordered_page_pair():
    walk = _every_ordered_pair(PAGES)
    pairs = list(zip(walk, walk[1:]))
    assert len(pairs) == len(set(pairs)) == len(PAGES) * (len(PAGES) - 1)


def test_bits_chosen_on_bit_flips_are_kept_on_robustness():
    """Defect 1: Bit flips -> Robustness left the bit picker empty."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    _go(at, "bit_flips")
    at.pills(key="bits_int8").set_value([5, 6, 7]).run()
    assert at.pills(key="bits_int8").value == [5, 6, 7]
    _go(at, "robustness")
    assert at.pills(key="bits_int8").value == [5, 6, 7]
    assert not _errors(at), _errors(at)
    assert at.button(key="run_report").proto.disabled is False
    _go(at, "bit_flips")
    assert at.pills(key="bits_int8").value == [5, 6, 7]


def _choose(at: AppTest, name: str, want: dict, **values) -> None:
    _go(at, name)
    widgets = _widgets(at)
    for key, value in values.items():
        widgets[key].set_value(value)
    at.run()
    assert not at.exception and not _errors(at), (name, _errors(at))
    for key in values:  # what the widget holds (a select slider gives a tuple back, etc.)
        want[key] = _widgets(at)[key].value


def test_one_session_walks_every_page_pair_and_keeps_its_settings():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    want: dict = {}  # key -> the non-default value chosen for it
    _choose(at, "bit_flips", want, models=CNNS, format="float16", trials=7, seed=3, points=3,
            kind="stuck-at-0", bias=True)  # fmt: skip
    _choose(at, "bit_flips", want, bits_float16=[10, 11, 12, 13, 14])
    _choose(at, "robustness", want, heat_trials=4, sharp=False, ber=0.05, range=(1e-3, 1e-2))
    _choose(at, "landscape", want, steps1=21, do2d=False)
    _choose(at, "lesson", want, error_rate=0.01)
    _choose(at, "bit_anatomy", want, value="0.5", aformat="float16")
    assert {"models", "format", "trials", "seed", "ber", "bits_float16"} <= set(want)
    seen_on: dict[str, set[str]] = {}
    for name in _every_ordered_pair(PAGES):
        _go(at, name)
        assert not _errors(at), (name, _errors(at))
        for key, w in _widgets(at).items():
            if key in want:
                assert w.value == want[key], (name, key, w.value, want[key])
                seen_on.setdefault(key, set()).add(name)
    # the shared settings really were checked on several pages each
    assert seen_on["models"] == seen_on["format"] == {"landscape", "bit_flips", "robustness"}
    assert seen_on["trials"] == {"train", "bit_flips", "robustness"}
    assert seen_on["bits_float16"] == {"bit_flips", "robustness"}


def test_six_models_carried_to_landscape_are_flagged_not_a_crash():
    """Defect 2 (shared key 'models'): the most models Bit flips accepts (6) reach Loss landscape,
    whose limit is 4; the page keeps the choice, says so and disables Compute."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    _go(at, "bit_flips")
    at.multiselect(key="models").set_value(ALL_DEMOS).run()
    assert not _errors(at) or all("same architecture" in e for e in _errors(at))
    _go(at, "landscape")
    assert at.multiselect(key="models").value == ALL_DEMOS
    assert any("at most 4 models" in e and "you chose 6" in e for e in _errors(at)), _errors(at)
    assert at.button(key="compute").proto.disabled is True
    at.multiselect(key="models").set_value(CNNS).run()
    assert not at.exception and not _errors(at), _errors(at)
    _go(at, "robustness")
    assert at.multiselect(key="models").value == CNNS


def test_train_and_anatomy_settings_survive_a_page_between():
    """Train's and Bit anatomy's own settings (ui/train_form.py, app_pages/bit_anatomy.py draw
    them through ui.widgets.carried) are kept after a page that does not show them."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    want: dict = {}
    _choose(at, "train", want, rho=0.02, arch="cnn", tbits="0-5", batch="32", widths="16")
    _choose(at, "bit_anatomy", want, flip_float32=[29, 30])
    for name in ("home", "train", "bit_anatomy"):
        _go(at, name)
        for key, w in _widgets(at).items():
            if key in want:
                assert w.value == want[key], (name, key, w.value, want[key])
