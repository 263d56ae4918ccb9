"""Regression tests for defects found in review (each failed before its fix): the library's,
then the dashboard's (issue 9, found in a real browser; AppTest sessions)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save
from test_pages import PAGES, ROOT, TIMEOUT, AppTest, assert_ok, charts, errors, page, table_with

from sar_core.data.io import SCHEMA, checkpoint_bytes, load_checkpoint
from sar_core.engine.evaluate import evaluate
from sar_core.faults.model import FaultModel
from sar_core.formats.bits import flip_value, parse_bits
from sar_core.training.calibrate import calibrate_rho
from sar_core.training.loop import TrainConfig, spec_for, train


def test_compare_refuses_models_trained_on_different_splits(cli, tmp_path):
    # before: every model was scored on the first model's test split (a silent wrong answer)
    paths = []
    for seed in (0, 7):
        p = tmp_path / f"s{seed}.safetensors"
        rc, _, err = cli("train", "--epochs", "1", "--seed", seed, "--out", p, "--quiet")
        assert rc == 0, err
        paths.append(p)
    for cmd in ("compare", "sweep"):
        rc, out, err = cli(
            cmd, "--models", *paths, "--format", "int8", "--ber", "0.01", "--trials", "2", "--quiet"
        )
        assert rc == 2 and out == ""
        assert err.count("\n") == 1 and "split seed 7" in err and "split seed 0" in err


def test_csv_that_does_not_match_the_checkpoint_is_a_usage_error(cli, tmp_path):
    from sar_core.data.datasets import load_csv

    rng = np.random.default_rng(0)

    def write(path, n_features):
        X = rng.normal(size=(60, n_features))
        y = (X[:, 0] > 0).astype(int)
        cols = [f"f{i}" for i in range(n_features)] + ["label"]
        rows = [",".join(cols)] + [",".join(map(str, [*x, t])) for x, t in zip(X, y)]
        path.write_text("\n".join(rows) + "\n")
        return path

    three, five = write(tmp_path / "a.csv", 3), write(tmp_path / "b.csv", 5)
    data = load_csv(three, name="a")
    res = train(spec_for(data, "mlp", (8,)), data, TrainConfig(epochs=1))
    ck = tmp_path / "a.safetensors"
    ck.write_bytes(checkpoint_bytes(res.model, res.spec, res.metadata(data)))
    rc, _, err = cli("inject", "--model", ck, "--csv", five, "--ber", "0.01", "--trials", "2")
    assert rc == 2 and "has 5 features" in err and "trained with 3" in err
    rc, out, _ = cli(
        "inject",
        "--model",
        ck,
        "--csv",
        three,
        "--ber",
        "0.01",
        "--trials",
        "2",
        "--json",
        "--quiet",
    )
    assert rc == 0 and json.loads(out)["trials"] == 2


def test_parse_bits_checks_bounds_before_expanding_a_range():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"position 1000000000000 is outside 0\.\.7"):
        parse_bits("0-1000000000000", "int8")
    assert time.perf_counter() - t0 < 1.0  # would allocate ~10^12 ints before the fix
    with pytest.raises(ValueError) as e:
        parse_bits("0-100000", "float32")
    assert len(str(e.value)) < 300  # the message shows what was typed, not the expanded list


@pytest.mark.parametrize("bits", [[1.7], [True], ["3"]])
def test_parse_bits_rejects_non_integer_positions(bits):
    with pytest.raises(ValueError, match="not an integer bit position"):
        FaultModel(bits=bits, ber=0.1)


def _with_meta(meta_change: dict) -> bytes:
    tensors = {"out.weight": torch.zeros(10, 64), "out.bias": torch.zeros(10)}
    meta = {
        "schema": SCHEMA,
        "method": "sgd",
        "config": {},
        "seed": 0,
        "metrics": {},
        "dataset": {"name": "digits", "seed": 0},
        "spec": {"arch": "mlp", "n_features": 64, "n_classes": 10, "widths": [4]},
    }
    meta.update(meta_change)
    return st_save(tensors, metadata={"sar_lab": json.dumps(meta)})


@pytest.mark.parametrize(
    "change, needle",
    [
        ({"dataset": {"name": "digits", "seed": "x"}}, "dataset.seed='x'"),
        ({"dataset": {"name": "digits", "seed": [1]}}, "dataset.seed=[1]"),
        ({"dataset": {"seed": 0}}, "dataset.name=None"),
    ],
)
def test_checkpoint_dataset_metadata_is_validated(change, needle):
    # before: accepted, then the dashboard crashed on every rerun at int(seed)
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        load_checkpoint(_with_meta(change))


def test_tiny_file_declaring_a_huge_model_is_rejected_without_building_it():
    huge = {"arch": "mlp", "n_features": 100000, "n_classes": 10, "widths": [1024] * 6}
    with pytest.raises(ValueError, match="do not match the declared mlp architecture"):
        load_checkpoint(_with_meta({"spec": huge}))


def test_unreadable_path_is_a_value_error():
    with pytest.raises(ValueError, match="Invalid model path"):
        load_checkpoint("a" * 5000)


def test_int8_scale_that_underflows_float32_is_rejected():
    with pytest.raises(ValueError, match="Invalid scale"):
        flip_value(1e-45, "int8", 0)


def test_calibration_accepts_numpy_like_every_other_analysis(digits_small, demo):
    X, y = digits_small
    model = demo["digits_mlp_sgd"].model
    a = calibrate_rho(
        model, np.asarray(X), np.asarray(y), FaultModel(format="int8", ber=0.01), trials=2
    )
    b = calibrate_rho(
        model,
        torch.as_tensor(np.asarray(X)),
        torch.as_tensor(np.asarray(y)),
        FaultModel(format="int8", ber=0.01),
        trials=2,
    )
    assert a == b


def test_stopping_mid_epoch_returns_the_weights_its_history_describes(digits):
    spec = spec_for(digits, "mlp")
    polls = iter(range(10**6))
    res = train(
        spec, digits, TrainConfig(epochs=3), should_stop=lambda: next(polls) >= 23 + 5
    )  # 1437 rows / 64 = 23 batches
    assert res.stopped and len(res.history) == 1  # stopped 5 batches into epoch 2
    once = train(spec, digits, TrainConfig(epochs=1))
    assert evaluate(res.model, digits.X_test, digits.y_test).accuracy == res.clean_accuracy
    for p, q in zip(res.model.parameters(), once.model.parameters()):
        assert torch.equal(p, q)  # exactly the one-epoch model
    assert res.metadata(digits)["stopped"] is True


# --- issue 9: dashboard defects found in a real browser (each failed before its fix) --------


def _widget_bounds(at: AppTest) -> dict[str, tuple]:
    """Key -> what a carried value must fit: (type, min, max, options, max selections)."""
    out = {}
    for kind in ("slider", "number_input", "select_slider", "multiselect", "selectbox"):
        for w in at.get(kind):
            if not w.key or w.key.startswith("$$"):
                continue
            p = w.proto
            out[w.key] = (
                kind,
                getattr(p, "min", None),
                getattr(p, "max", None),
                tuple(getattr(p, "options", ()) or ()),
                getattr(p, "max_selections", None),
            )
    return out


def test_widgets_sharing_a_key_accept_the_same_values_on_every_page():
    """Defect 1: Streamlit carries a keyed widget's value to the same key on the next page; a
    page with a smaller maximum (trials 500 -> 300) then raised StreamlitValueAboveMaxError.
    Every key used on several pages must accept the same values everywhere: the 'models'
    multiselect once had max_selections 4 on Loss landscape and none on Bit flips, so 5 models
    carried from Bit flips could not be held there. Each page flags its own limit instead (see
    tests/test_session_walk.py for the carried selection)."""
    seen: dict[str, tuple[str, tuple]] = {}
    pages_of: dict[str, set[str]] = {}
    for name in PAGES[1:]:
        for key, bounds in _widget_bounds(page(name).run()).items():
            pages_of.setdefault(key, set()).add(name)
            if key in seen:
                first, other = seen[key]
                assert other == bounds, f"key {key!r}: {first} {other} vs {name} {bounds}"
            else:
                seen[key] = (name, bounds)
    # the shared keys are really checked, on every page that draws them
    assert pages_of["models"] == {"landscape", "bit_flips", "robustness"}
    assert pages_of["trials"] >= {"train", "bit_flips", "robustness"}
    assert pages_of["format"] >= {"landscape", "bit_flips", "robustness"}


def test_one_session_through_every_page_with_settings_carried():
    """Defect 1/3: one session moves page to page with extreme settings; nothing crashes."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    at.switch_page("app_pages/bit_flips.py").run()
    at.slider(key="trials").set_value(500)
    at.selectbox(key="format").set_value("float32")
    at.multiselect(key="models").set_value(["demo · digits CNN · SGD", "demo · digits CNN · SAR"])
    at.run()
    assert not at.exception
    for name in PAGES[1:] + PAGES[:1] + ["bit_flips"]:
        at.switch_page(f"app_pages/{name}.py").run()
        assert not at.exception, (name, [e.value for e in at.exception])


@pytest.mark.parametrize("value", ["3.5e38", "1e39", "-1e39", "1e-45", "nan"])
@pytest.mark.parametrize("fmt", ["float32", "float16", "int8"])
def test_bit_anatomy_never_crashes_on_huge_tiny_or_non_finite_values(value, fmt):
    """Defect 2: '3.5e38' or /bit_anatomy?value=1e39 raised "Unknown format code 'g' for object
    of type 'str'"; 1e-45 in float32 showed an int8 error."""
    at = page("bit_anatomy")
    at.query_params.update({"value": value, "aformat": fmt})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    v = float(value)
    if value == "nan":
        assert errors(at) and "Type a finite number" in errors(at)[0]
        return
    if fmt == "int8" and v == 1e-45:  # |v| / 127 is below float32's smallest scale
        assert errors(at) and errors(at)[0].startswith("int8 stores this value as q × s")
        return
    assert not errors(at), errors(at)
    import numpy as np

    with np.errstate(over="ignore"):
        ref = float(np.float32(v)) if fmt == "float32" else float(np.float16(v))
    if fmt != "int8":  # the stored value is the numpy cast of the typed one (inf when too large)
        want = f"{ref:.7g}" if np.isfinite(ref) else ("inf" if ref > 0 else "-inf")
        assert at.metric[0].value == want
    table = at.dataframe[0].value
    assert list(table["format"]) == ["float32", "float16", "bfloat16", "int8"]


def test_bit_anatomy_opens_in_float32_whatever_format_other_pages_carry():
    """Defect 3: the pages' shared 'format' (int8) carried into Bit anatomy, whose first
    experiment ("bit 30 of 0.1") needs float32."""
    at = page("bit_anatomy")
    at.query_params.update({"format": "int8"})  # what navigation from Bit flips carries
    at.run()
    assert_ok(at)
    assert at.selectbox(key="aformat").value == "float32"
    assert [m.value for m in at.metric][:2] == ["0.1", "3.402824e+37"]


def test_results_computed_with_other_settings_are_marked():
    """Defect 3: after switching the models, the old chart was shown as current."""
    at = page("bit_flips").run()
    at.slider(key="trials").set_value(2)
    at.slider(key="points").set_value(1)
    at.button(key="play").click().run()
    assert_ok(at)
    assert not at.warning and charts(at) == 1
    at.multiselect(key="models").set_value(["demo · digits CNN · SGD", "demo · digits CNN · SAR"])
    at.run()
    assert_ok(at)
    assert charts(at) == 1  # the old results stay visible...
    (w,) = [w.value for w in at.warning]  # ...marked as computed with other settings
    assert w.startswith("**Settings changed — press Play.**") and "models" in w
    at.multiselect(key="models").set_value(list(DEFAULT_MLPS)).run()
    assert not at.warning  # back to the settings of the results: not stale


DEFAULT_MLPS = ("demo · digits MLP · SGD", "demo · digits MLP · SAM", "demo · digits MLP · SAR")


def test_rho_caption_is_computed_from_the_points():
    """Defect 4: the caption said 'not monotonic in ρ' under a chart that rose steadily."""
    from ui.training import rho_caption

    def pts(accs, half=0.002):
        return [
            {"rho": r, "mean_accuracy": a, "clean_accuracy": 0.97, "ci95": [a - half, a + half]}
            for r, a in zip((0.05, 0.1, 0.5, 1.0), accs)
        ]

    rising = rho_caption(pts([0.9557, 0.96, 0.965, 0.9704]), None)
    assert "rose with ρ: 95.6% at ρ=0.05 → 97.0% at ρ=1" in rising
    assert "not monotonic" not in rising
    bumpy = rho_caption(pts([0.95, 0.97, 0.94, 0.96]), None)
    assert "not monotonic" in bumpy and "best 97.0% at ρ=0.1" in bumpy
    peaked = rho_caption(pts([0.95, 0.97, 0.96, 0.94]), None)
    assert peaked.startswith("Under faults, accuracy peaked at 97.0% at ρ=0.1")
    noisy = rho_caption(pts([0.95, 0.951, 0.952, 0.953], half=0.05), None)
    assert "All 95% intervals overlap" in noisy


def test_ci_bounds_are_clamped_and_mean_flips_keep_their_digits():
    """Defect 5: 'ci95 high 100.05%' in the table and CSV; 'mean flips 0.0' for 0.033."""
    from ui.layout import fmt_ci
    from ui.results import sweep_curves, sweep_rows

    s = {
        "mean_accuracy": 0.999,
        "ci95": [0.9975, 1.0005],
        "std": 0.001,
        "mean_flips": 0.033,
        "mean_changed_bits": 0.033,
        "paired_difference": {"mean": 0.0, "ci95": [0.0, 0.0]},
        "deployed_accuracy": 0.999,
        "trials": 30,
    }
    rec = {
        "models": ["m"],
        "methods": ["sgd"],
        "rate": "ber",
        "levels": [{"level": 1e-6, "summaries": [s]}],
    }
    (row,) = sweep_rows(rec)
    assert row["ci95_high_pct"] == 100.0 and row["ci95_low_pct"] == pytest.approx(99.75)
    assert sweep_curves(rec)[0]["hi"] == [1.0]
    assert fmt_ci(s["ci95"]) == "99.8–100.0%" and fmt_ci([-0.01, 0.02]) == "0.0–2.0%"
    at = page("bit_flips").run()
    at.slider(key="trials").set_value(2)
    at.slider(key="points").set_value(1)
    at.button(key="play").click().run()
    cfg = at.dataframe[0].proto.columns
    # the table shows bits changed per trial (stuck-at hits that change nothing are not counted)
    key = '"mean_changed_bits"'
    assert key in cfg and '"%.3g"' in cfg.split(key)[1].split("}}")[0]


def test_uploaded_model_is_listed_in_the_same_run():
    """Defect 6: the first upload showed 'No models of your own yet' next to 'Loaded ...'; a
    second upload was registered but missing from the table."""
    at = page("train").run()
    good = (ROOT / "assets" / "digits_mlp_sar.safetensors").read_bytes()
    at.file_uploader[0].set_value(("mine.safetensors", good, "application/octet-stream")).run()
    assert_ok(at)
    assert not [i.value for i in at.info if "No models of your own" in i.value]
    assert list(table_with(at, "source")["model"]) == ["upload · mine"]
    other = (ROOT / "assets" / "digits_mlp_sgd.safetensors").read_bytes()
    at.file_uploader[0].set_value(("other.safetensors", other, "application/octet-stream")).run()
    assert list(table_with(at, "source")["model"]) == ["upload · mine", "upload · other"]
    at.file_uploader[0].set_value(("again.safetensors", good, "application/octet-stream")).run()
    assert any("already loaded as **upload · mine**" in i.value for i in at.info)
    assert len(table_with(at, "source")) == 2


def test_a_rejected_number_is_flagged_and_never_used():
    """Defect 7: a number box showing a rejected 0 trained with the last accepted value."""
    at = page("train").run()
    at.multiselect(key="methods").set_value(["sgd"])
    at.slider(key="trials").set_value(2)
    at.text_input(key="epochs").set_value("0").run()  # a text box read by ui.inputs.int_box
    assert not at.exception, [e.value for e in at.exception]
    assert errors(at) == ["Epochs must be a whole number from 1 to 300; 0 is not."]
    assert at.button(key="train_go").disabled and at.session_state["sar_registry"] == {}
    at.text_input(key="epochs").set_value("1e9").run()  # a number box had silently made it 1
    assert errors(at) == ["Epochs must be a whole number from 1 to 300; 1e+09 is not."]
    assert at.button(key="train_go").disabled and at.session_state["sar_registry"] == {}
    at.text_input(key="epochs").set_value("1").run()
    at.button(key="train_go").click().run()
    assert_ok(at)
    assert list(at.dataframe[0].value["epochs"]) == [1]


def test_bad_input_keeps_previous_results_and_speaks_plainly():
    """Defect 8: a bad value appeared only after Play, and then the previous results vanished;
    messages read like code (Invalid methods=[])."""
    at = page("bit_flips").run()
    at.slider(key="trials").set_value(2)
    at.slider(key="points").set_value(1)
    at.button(key="play").click().run()
    assert charts(at) == 1
    at.text_input(key="ber_exact").set_value("2").run()  # flagged at once, before any Play
    assert not at.exception and len(errors(at)) == 1 and at.button(key="play").disabled
    assert charts(at) == 1 and len(at.dataframe) == 1  # previous results stay
    train = page("train").run()
    train.multiselect(key="methods").set_value([]).run()
    assert errors(train) == ["Choose at least one method to train."]
    for msgs in (errors(at), errors(train)):
        assert not any("Invalid" in m or "[-inf, inf]" in m for m in msgs), msgs


# Machado, Oliveira & Fernandes (2009), severity 1.0, on linear RGB: an independent model of
# colour vision deficiency to check the palette against.
_CVD = {
    "protan": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
               [-0.003882, -0.048116, 1.051998]],
    "deutan": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
               [-0.011820, 0.042940, 0.968881]],
    "tritan": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
               [0.004733, 0.691367, 0.303900]],
}  # fmt: skip


def _lab(hex_color: str, vision=None) -> np.ndarray:
    """CIE L*a*b* (D65) of an sRGB colour, optionally as seen with a colour vision deficiency."""
    c = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    if vision is not None:
        lin = np.clip(np.array(_CVD[vision]) @ lin, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    n = (xyz @ lin) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(n > 0.008856, np.cbrt(n), 7.787 * n + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_every_method_has_its_own_colour_blind_safe_colour():
    """Defect 11: SAM and SAR were both orange. Every method has one fixed colour; under normal
    and simulated protan / deutan / tritan vision every pair differs by >= 12 CIE76 units, and no
    two chromatic colours share a hue family (< 30 degrees) at similar lightness (< 20 L*)."""
    import itertools

    from sar_core.plots.style import METHOD_COLORS, method_color
    from sar_core.training.loop import METHODS

    assert set(METHODS) | {"clip", "randbet", "sar_clip"} <= set(METHOD_COLORS)
    assert len(set(METHOD_COLORS.values())) == len(METHOD_COLORS)
    for vision in (None, "protan", "deutan", "tritan"):
        for a, b in itertools.combinations(METHOD_COLORS, 2):
            d = np.linalg.norm(_lab(method_color(a), vision) - _lab(method_color(b), vision))
            assert d >= 12, (vision, a, b, round(float(d), 1))
    for a, b in itertools.combinations(METHOD_COLORS, 2):
        (l1, a1, b1), (l2, a2, b2) = _lab(METHOD_COLORS[a]), _lab(METHOD_COLORS[b])
        if np.hypot(a1, b1) > 20 and np.hypot(a2, b2) > 20:
            dh = abs(np.degrees(np.arctan2(b1, a1) - np.arctan2(b2, a2))) % 360
            assert min(dh, 360 - dh) >= 30 or abs(l1 - l2) >= 20, (a, b)


def test_sharpness_scatter_has_no_overlapping_text_and_rho_runs_differ():
    """Defect 11: point labels overlapped on the sharpness scatter; the rho sweep used six
    shades of one orange."""
    from sar_core.plots.robustness import sharpness_scatter
    from ui.training import rho_sweep_plans

    pts = [
        {"label": f"m{i}", "method": m, "x": 1.0 + 0.01 * i, "y": 0.9, "lo": 0.89, "hi": 0.91}
        for i, m in enumerate(["sgd", "sam", "sar", "sar"])
    ]
    fig = sharpness_scatter(pts, x_title="x")
    assert all(t.mode == "markers" for t in fig.data)  # no text drawn next to the points
    assert [t.name for t in fig.data] == ["m0", "m1", "m2", "m3"]  # one legend entry each
    assert fig.data[2].marker.symbol != fig.data[3].marker.symbol  # same method, other shape
    plans = rho_sweep_plans(
        [0.05, 0.1, 0.2, 0.5, 1, 2],
        {"epochs": 1},
        tag="t",
        geometry="elementwise",
        with_reference=False,
    )
    shades = [p["color"] for p in plans]
    assert len(set(shades)) == 6
    lab = [_lab(c) for c in shades]
    assert min(abs(a[0] - b[0]) for a, b in zip(lab, lab[1:])) > 3  # ordered, distinguishable


def test_surfaces_share_one_figure_and_one_colour_bar():
    """Defect 9: three narrow columns of 3D surfaces, each with its own identical colour bar."""
    from sar_core.plots.landscape_2d import surfaces_figure

    g = {"alphas": [0, 1], "betas": [0, 1], "loss": [[1.0, 2.0], [3.0, 4.0]], "method": "sgd"}
    fig = surfaces_figure([g, {**g, "method": "sam"}, {**g, "method": "sar"}])
    assert len(fig.data) == 3 and [bool(t.showscale) for t in fig.data] == [True, False, False]
    assert {(t.cmin, t.cmax) for t in fig.data} == {(1.0, 4.0)}


def test_training_eta_is_computed_from_measured_epochs():
    """Defect 10: the page promised 'about 10 s' for a run that took 50 s."""
    from ui.jobs import eta_text

    assert eta_text(0, 30, 0.0) == "" and eta_text(30, 30, 10.0) == ""
    assert eta_text(3, 30, 6.0) == "about 54 s left"  # 2 s per epoch, 27 epochs to go
    assert eta_text(1, 100, 3.0) == "about 5 min left"  # 297 s
