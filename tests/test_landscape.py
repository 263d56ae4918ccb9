"""Loss landscapes: directions vs their definition, slices vs unbatched evaluate(), invariants, plots."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch

from sar_core.analysis import landscape as L
from sar_core.data.models import ModelSpec, build_model
from sar_core.engine.evaluate import evaluate
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel
from sar_core.plots import landscape as P
from sar_core.plots import landscape_2d as P2
from sar_core.plots.style import method_color, method_label


@pytest.fixture(scope="module")
def tiny():
    """A 4-6-3 MLP and 40 rows of data."""
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(40, 4, generator=gen)
    y = torch.randint(0, 3, (40,), generator=gen)
    model = build_model(ModelSpec(n_features=4, n_classes=3, widths=(6,)), seed=1)
    return model, X, y


def param_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for n, p in model.named_parameters():
        h.update(n.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def ref_score(model, X, y, combo):
    """Unbatched reference: evaluate() on an explicitly built parameter dict."""
    return evaluate(model, X, y, combo)


def test_filter_norms_match_weights_mlp_and_cnn():
    mlp = build_model(ModelSpec(n_features=4, n_classes=3, widths=(6, 5)), seed=0)
    cnn = build_model(
        ModelSpec(arch="cnn", n_features=64, n_classes=10, widths=(3, 4), image_shape=(1, 8, 8)),
        seed=0,
    )
    for model in (mlp, cnn):
        d = L.random_direction(model, seed=3)
        for n, w in model.named_parameters():
            if w.ndim == 1:
                assert torch.count_nonzero(d[n]) == 0, n  # biases zeroed (Li et al.)
                continue
            wn = w.detach().reshape(w.shape[0], -1).norm(dim=1)
            dn = d[n].reshape(w.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(dn, wn, rtol=1e-5, atol=1e-7)
        db = L.random_direction(model, seed=3, include_bias=True)
        for n, w in model.named_parameters():
            if w.ndim == 1:
                assert math.isclose(float(db[n].norm()), float(w.detach().norm()), rel_tol=1e-5)


def test_same_seed_same_raw_direction_across_models_and_no_global_rng(tiny):
    model_a, _, _ = tiny
    model_b = build_model(ModelSpec(n_features=4, n_classes=3, widths=(6,)), seed=7)
    state = torch.get_rng_state()
    ra = L.random_direction(model_a, 5, normalize="none", include_bias=True)
    rb = L.random_direction(model_b, 5, normalize="none", include_bias=True)
    assert torch.equal(torch.get_rng_state(), state)
    for n in ra:
        assert torch.equal(ra[n], rb[n])
    fa, fb = L.random_direction(model_a, 5), L.random_direction(model_b, 5)
    wa, wb = dict(model_a.named_parameters()), dict(model_b.named_parameters())
    w = "fc1.weight"  # filter-normalized: the same unit filters, scaled to each model's weights
    ua = fa[w] / wa[w].detach().norm(dim=1, keepdim=True)
    ub = fb[w] / wb[w].detach().norm(dim=1, keepdim=True)
    torch.testing.assert_close(ua, ub)
    torch.testing.assert_close(ua, ra[w] / ra[w].norm(dim=1, keepdim=True))
    assert not torch.equal(L.random_direction(model_a, 6)[w], fa[w])


def test_slice_1d_center_exact_and_points_match_reference(tiny):
    model, X, y = tiny
    d = L.random_direction(model, 0)
    r = L.slice_1d(model, X, y, d, steps=11, span=2.0)
    assert r["alphas"][5] == 0.0 and len(r["loss"]) == 11
    clean = evaluate(model, X, y)
    assert r["loss"][5] == clean.loss and r["accuracy"][5] == clean.accuracy
    w = {n: p.detach() for n, p in model.named_parameters()}
    for i in (0, 3, 10):
        a = r["alphas"][i]
        ref = ref_score(model, X, y, {n: w[n] + a * d[n] for n in w})
        assert math.isclose(r["loss"][i], ref.loss, rel_tol=1e-5)
        assert r["accuracy"][i] == ref.accuracy
    small = L.slice_1d(model, X, y, d, steps=11, span=2.0, chunk_size=1)
    np.testing.assert_allclose(small["loss"], r["loss"], rtol=1e-6)
    custom = L.slice_1d(model, X, y, d, alphas=[0.0, 0.5])
    assert custom["loss"][0] == clean.loss
    ref = ref_score(model, X, y, {n: w[n] + 0.5 * d[n] for n in w})
    assert math.isclose(custom["loss"][1], ref.loss, rel_tol=1e-5)


def test_slice_2d_layout_center_and_corner(tiny):
    model, X, y = tiny
    d1, d2 = L.direction_pair(model, 0)
    r = L.slice_2d(model, X, y, d1, d2, steps=5, span=1.0)
    assert len(r["loss"]) == len(r["betas"]) == 5 and all(len(row) == 5 for row in r["loss"])
    assert r["loss"][2][2] == r["center_loss"] == evaluate(model, X, y).loss
    w = {n: p.detach() for n, p in model.named_parameters()}
    a, b = r["alphas"][0], r["betas"][4]  # loss[j][i] is (beta_j, alpha_i)
    ref = ref_score(model, X, y, {n: w[n] + a * d1[n] + b * d2[n] for n in w})
    assert math.isclose(r["loss"][4][0], ref.loss, rel_tol=1e-5)
    assert not math.isclose(r["loss"][0][4], ref.loss, rel_tol=1e-3)


def test_interpolation_endpoints_are_the_models(tiny):
    model_a, X, y = tiny
    model_b = build_model(ModelSpec(n_features=4, n_classes=3, widths=(6,)), seed=2)
    r = L.interpolate(model_a, model_b, X, y)
    i0, i1 = r["t"].index(0.0), r["t"].index(1.0)
    assert r["loss"][i0] == evaluate(model_a, X, y).loss == r["loss_a"]
    assert r["loss"][i1] == evaluate(model_b, X, y).loss == r["loss_b"]
    assert r["accuracy"][i1] == evaluate(model_b, X, y).accuracy
    assert len(r["t"]) == 41 and r["t"][0] == -0.5 and r["t"][-1] == 1.5


def test_models_bit_identical_after_analyses(tiny):
    model, X, y = tiny
    other = build_model(ModelSpec(n_features=4, n_classes=3, widths=(6,)), seed=2)
    before = param_hash(model), param_hash(other)
    d1, d2 = L.direction_pair(model, 1, include_bias=True)
    L.slice_1d(model, X, y, d1, steps=5)
    L.slice_2d(model, X, y, d1, d2, steps=3)
    L.interpolate(model, other, X, y, steps=5)
    L.fault_direction_slice(model, X, y, FaultModel(format="int8", ber=0.05), steps=5)
    L.fault_direction_slice(model, X, y, FaultModel(bits=(30,), count=2), steps=5)
    assert (param_hash(model), param_hash(other)) == before


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"steps": 1}, "steps=1"),
        ({"steps": 102}, "steps=102"),
        ({"steps": 2.5}, "steps=2.5"),
        ({"span": 0.0}, "span=0.0"),
        ({"span": -1.0}, "span=-1.0"),
        ({"span": float("nan")}, "span=nan"),
    ],
)
def test_validation_names_parameter_value_and_range(tiny, kwargs, needle):
    model, X, y = tiny
    d = L.random_direction(model, 0)
    with pytest.raises(ValueError, match="Invalid") as e:
        L.slice_1d(model, X, y, d, **kwargs)
    assert needle in str(e.value)
    assert "[2, 101]" in str(e.value) or "(0.0, inf]" in str(e.value) or "finite" in str(e.value)
    with pytest.raises(ValueError, match="Invalid"):
        L.slice_2d(model, X, y, d, d, **kwargs)


def test_direction_shape_mismatch_rejected(tiny):
    model, X, y = tiny
    d = L.random_direction(model, 0)
    d["fc1.weight"] = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="fc1.weight"):
        L.slice_1d(model, X, y, d)


def test_fault_direction_lands_on_the_sampled_fault(tiny):
    model, X, y = tiny
    fm = FaultModel(format="int8", ber=0.05)
    r = L.fault_direction_slice(model, X, y, fm, seed=3, steps=3, span=1.0)  # alphas -1, 0, 1
    inj = Injector(model, fm)
    pattern = inj.sample(np.random.default_rng([3, 0]))
    faulty = evaluate(model, X, y, inj.apply(pattern))
    assert r["fault_alpha"] == 1.0 and r["n_flips"] == pattern.n_flips > 0
    assert r["fault_loss"] == faulty.loss and r["fault_accuracy"] == faulty.accuracy
    assert r["loss"][1] == evaluate(model, X, y, inj.deployed()).loss == r["deployed_loss"]
    assert math.isclose(r["loss"][2], faulty.loss, rel_tol=1e-5)  # w_dep + 1 * d = w_faulty
    pert = inj.perturbation(pattern)
    norm = math.sqrt(sum(float(t.double().pow(2).sum()) for t in pert.values()))
    assert math.isclose(r["direction_norm"], norm, rel_tol=1e-9) and not r["nonfinite"]


def test_fault_direction_nonfinite_is_reported_not_raised():
    model = build_model(ModelSpec(n_features=4, n_classes=3, widths=(6,)), seed=0)
    with torch.no_grad():  # test setup: every fc1 weight 1.5, whose float16 bit-14 flip is NaN
        model.fc1.weight.fill_(1.5)
    X, y = torch.randn(20, 4), torch.randint(0, 3, (20,))
    fm = FaultModel(format="float16", bits=(14,), count=1, layers=("fc1",))
    r = L.fault_direction_slice(model, X, y, fm, steps=5, span=1.0)
    assert r["nonfinite"] and r["nonfinite_entries"] == 1 and r["direction_norm"] == math.inf
    assert r["fault_loss"] == math.inf
    assert math.isfinite(r["loss"][2])  # alpha = 0: the deployed weights, untouched by 0 * NaN
    assert all(v == math.inf for i, v in enumerate(r["loss"]) if i != 2)
    fig = P.fault_slice_figure([{"label": "m", "method": "sgd", **r}])
    texts = " ".join(a.text for a in fig.layout.annotations)
    assert "not finite" in texts


def test_catastrophic_float32_flip_gives_inf_losses_without_crash(tiny):
    model, X, y = tiny
    r = L.fault_direction_slice(model, X, y, FaultModel(bits=(30,), count=1), steps=7)
    assert not r["nonfinite"] and r["direction_norm"] > 1e30
    assert any(v == math.inf for v in r["loss"]) or r["fault_loss"] > 1e10


# ---- figures ---------------------------------------------------------------------------------


def curves():
    a = [-1.0, 0.0, 1.0]
    return [
        {"label": "run 1", "method": "sgd", "alphas": a, "loss": [1.0, 0.5, math.inf]},
        {"label": "run 2", "method": "sar", "alphas": a, "loss": ["inf", 0.4, float("nan")]},
    ]


def test_slice_1d_figure_gaps_names_colours_and_labels():
    fig = P.slice_1d_figure(curves(), fault_alpha=1.0)
    assert fig.data[0].y == (1.0, 0.5, None) and fig.data[1].y == (None, 0.4, None)
    assert fig.data[0].name.startswith(method_label("sgd"))
    assert fig.data[1].line.color == method_color("sar")
    assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    assert any("3 of 6" in a.text for a in fig.layout.annotations)
    log = P.slice_1d_figure(curves(), log_y=True)
    assert log.layout.yaxis.type == "log"


def grids():
    g1 = {"label": "a", "method": "sgd", "alphas": [-1, 0, 1], "betas": [-1, 0, 1]}
    g2 = dict(g1, label="b", method="sar")
    g1["loss"] = [[3.0, 2.0, 3.0], [2.0, 1.0, 2.0], [3.0, 2.0, math.inf]]
    g2["loss"] = [[9.0, 2.0, 3.0], [2.0, 0.5, 2.0], [3.0, 2.0, 3.0]]
    return [g1, g2]


def test_contours_share_one_colour_scale_and_show_gaps():
    figs = P2.contour_figures(grids())
    assert len(figs) == 2
    ranges = {(f.data[0].zmin, f.data[0].zmax) for f in figs}
    assert ranges == {(0.5, 9.0)}
    assert figs[0].data[0].z[2][2] is None
    assert any("not finite" in a.text for a in figs[0].layout.annotations)
    assert all(f.layout.xaxis.title.text and f.layout.yaxis.title.text for f in figs)
    logs = P2.contour_figures(grids(), log_z=True)
    assert math.isclose(logs[1].data[0].zmax, math.log10(9.0))
    side = P2.contours_side_by_side(grids())
    contours = [t for t in side.data if t.type == "contour"]
    assert len(contours) == 2 and len({(c.zmin, c.zmax) for c in contours}) == 1
    surf = P2.surface_figure(grids()[0], 0.5, 9.0)
    assert surf.data[0].cmin == 0.5 and surf.layout.title.text


def test_interpolation_figure_marks_both_models():
    res = {
        "t": [0.0, 0.5, 1.0],
        "loss": [0.2, math.inf, 0.3],
        "accuracy": [0.9, 0.1, 0.8],
        "loss_a": 0.2,
        "loss_b": 0.3,
    }
    fig = P.interpolation_figure(res, "SGD", "SAR", method_a="sgd", method_b="sar")
    names = [t.name for t in fig.data]
    assert "SGD" in names and "SAR" in names and fig.data[0].y[1] is None
    assert fig.layout.title.text and fig.layout.xaxis.title.text


def test_fault_slice_figure_marks_real_fault():
    r = {
        "label": "x",
        "method": "sar",
        "alphas": [0.0, 1.0],
        "loss": [0.1, 0.3],
        "fault_loss": 0.3,
        "fault_alpha": 1.0,
        "n_flips": 4,
    }
    fig = P.fault_slice_figure([r])
    star = [t for t in fig.data if t.mode == "markers"][0]
    assert star.x == (1.0,) and star.y == (0.3,) and "4 flips" in star.name


# ---------------------------------------------------------------- batched engine ---------------


def _small_cnn():
    from collections import OrderedDict

    gen = torch.Generator().manual_seed(3)
    cnn = torch.nn.Sequential(
        OrderedDict(
            conv=torch.nn.Conv2d(1, 4, 3, padding=1),
            act=torch.nn.ReLU(),
            pool=torch.nn.MaxPool2d(2),
            flat=torch.nn.Flatten(),
            out=torch.nn.Linear(64, 3),
        )
    ).eval()
    with torch.no_grad():
        for p in cnn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    X = torch.randn(12, 1, 8, 8, generator=gen)  # a 4-D input
    y = torch.randint(0, 3, (12,), generator=gen)
    return cnn, X, y


def test_activation_count_matches_the_layer_sizes(tiny):
    from sar_core.engine import combinations as C

    model, X, _ = tiny  # 4-6-3 MLP: fc1 6 + relu 6 + out 3
    w = {n: p.detach() for n, p in model.named_parameters()}
    assert C.activation_elements(model, w, X) == 6 + 6 + 3
    cnn, X4, _ = _small_cnn()  # conv 4x8x8, relu 4x8x8, pool 4x4x4, flatten (a view), out 3
    w = {n: p.detach() for n, p in cnn.named_parameters()}
    assert C.activation_elements(cnn, w, X4) == 256 + 256 + 64 + 3
    digits_cnn = build_model(
        ModelSpec(arch="cnn", n_features=64, n_classes=10, widths=(8, 16), image_shape=(1, 8, 8))
    )
    w = {n: p.detach() for n, p in digits_cnn.named_parameters()}
    per_row = 2 * 8 * 64 + 8 * 16 + 2 * 16 * 16 + 16 * 4 + 10  # conv/relu, pool, conv/relu, pool
    assert C.activation_elements(digits_cnn, w, torch.zeros(3, 64)) == per_row
    points = C.chunk_size_for(digits_cnn, w, torch.zeros(360, 64))
    per_point = sum(t.numel() for t in w.values()) + 360 * per_row
    assert points == max(1, min(C.MAX_CHUNK, C.CHUNK_BUDGET // per_point))


@pytest.mark.parametrize("which", ["mlp", "cnn"])
def test_every_engine_path_matches_unbatched_evaluate(tiny, which):
    """Affine head or not, vmap or loop, any chunk: each point equals evaluate() on w + a d1 + b d2."""
    from sar_core.engine import combinations as C

    model, X, y = tiny if which == "mlp" else _small_cnn()
    w = {n: p.detach() for n, p in model.named_parameters()}
    d1, d2 = L.direction_pair(model, 5, include_bias=True)
    assert C._split_head(model, list(w)) is not None  # the affine-head path is exercised
    coeffs = [[1.0, a, b] for a, b in ((-1.0, 0.5), (0.3, -0.7), (2.0, 2.0), (0.0, 0.0))]
    refs = [
        evaluate(model, X, y, {n: w[n] + a * d1[n] + b * d2[n] for n in w}) for _, a, b in coeffs
    ]
    for chunk, batched in ((1, False), (3, True), (4, True), (2, False)):
        loss, acc = C.evaluate_combinations(
            model, X, y, [w, d1, d2], coeffs, chunk_size=chunk, batched=batched
        )
        for r, lo, ac in zip(refs, loss, acc):
            assert math.isclose(lo, r.loss, rel_tol=1e-5) and ac == r.accuracy
    assert loss[3] == refs[3].loss  # the unit row is scored by evaluate() itself


def test_nonfinite_vector_bypasses_the_affine_head(tiny):
    """0 * inf must stay 0: a vector with Inf in the head layer never enters the head sum."""
    from sar_core.engine import combinations as C

    model, X, y = tiny
    w = {n: p.detach() for n, p in model.named_parameters()}
    bad = {n: torch.zeros_like(t) for n, t in w.items()}
    bad["fc1.weight"][0, 0] = math.inf
    loss, _ = C.evaluate_combinations(model, X, y, [w, bad], [[1.0, 0.0], [1.0, 1.0], [0.5, 0.0]])
    assert loss[0] == evaluate(model, X, y).loss and loss[1] == math.inf
    half = evaluate(model, X, y, {n: 0.5 * t for n, t in w.items()}).loss
    assert math.isclose(loss[2], half, rel_tol=1e-6)
