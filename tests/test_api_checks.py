"""Models and data an analysis cannot evaluate as deployed are refused at the API boundary.

Found by an outside review (unseen models, unchosen inputs): a module registered twice made the
chain evaluators run another network and made functional_call write faulty weights into the
caller's model; a model left in train mode gave random results and moved BatchNorm statistics;
float labels were truncated; engine= ignored the X and y it was given."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sar_core import FaultModel, evaluate, run_campaign
from sar_core.analysis.landscape import random_direction, slice_1d
from sar_core.analysis.sharpness import sam_sharpness
from sar_core.engine.montecarlo import MonteCarlo

FM = FaultModel(format="int8", ber=0.02)


def _data(n=120, d=8, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.5)
    return X, np.minimum(y, k - 1)


def _state(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _mlp(*mid: nn.Module, seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), *mid, nn.Linear(16, 3)).eval()


def test_a_module_registered_twice_is_refused_and_the_model_is_untouched():
    torch.manual_seed(0)
    mid = nn.Linear(16, 16)
    model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), mid, nn.Tanh(), mid, nn.Linear(16, 3))
    X, y = _data()
    before = _state(model)
    for evaluator in ("auto", "full", "resume", "batched"):
        with pytest.raises(ValueError, match=r"'2' is registered again at '4'"):
            run_campaign(model.eval(), X, y, FM, trials=3, evaluator=evaluator)
    with pytest.raises(ValueError, match="registered again"):
        evaluate(model, X, y)
    assert _same(before, _state(model))


def test_one_module_under_two_attribute_names_is_refused():
    class TwoNames(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.a, self.out = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 3)
            self.b = self.a

        def forward(self, x):
            return self.out(torch.tanh(self.b(torch.tanh(self.a(self.inp(x))))))

    X, y = _data()
    with pytest.raises(ValueError, match=r"'a' is registered again at 'b'"):
        run_campaign(TwoNames().eval(), X, y, FM, trials=2)


def test_a_shared_activation_at_two_positions_runs_the_whole_network():
    """named_children() yields a module once: the chain evaluators used to drop the second
    Tanh. Every evaluator must equal full forward passes of the whole model."""
    act = nn.Tanh()
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(8, 16), act, nn.Linear(16, 16), act, nn.Linear(16, 3)).eval()
    X, y = _data()
    fm = FaultModel(format="float32", ber=2e-3)
    full = run_campaign(model, X, y, fm, trials=12, evaluator="full")
    assert len(set(full.accuracy)) > 1  # the faults matter here, so a wrong network would show
    for evaluator in ("resume", "batched", "auto"):
        got = run_campaign(model, X, y, fm, trials=12, evaluator=evaluator)
        assert got.accuracy == pytest.approx(full.accuracy, abs=1e-9)
        assert got.loss == pytest.approx(full.loss, rel=1e-5)
    with torch.no_grad():  # the clean score is the model's own forward pass
        clean = float((model(torch.as_tensor(X)).argmax(1) == torch.as_tensor(y)).float().mean())
    assert full.clean_accuracy == pytest.approx(clean)


def test_tied_parameters_between_two_modules_are_accepted():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp, self.a, self.out = nn.Linear(8, 16), nn.Linear(16, 16), nn.Linear(16, 3)
            self.b = nn.Linear(16, 16, bias=False)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.out(torch.tanh(self.b(torch.tanh(self.a(self.inp(x))))))

    model = Tied().eval()
    X, y = _data()
    before = _state(model)
    res = run_campaign(model, X, y, FM, trials=3)
    assert len(res.accuracy) == 3 and _same(before, _state(model))


@pytest.mark.parametrize(
    "module, effect",
    [(nn.Dropout(0.5), "drops random units"), (nn.BatchNorm1d(16), "running statistics")],
)
def test_train_mode_dropout_or_batchnorm_is_refused_without_touching_the_model(module, effect):
    model = _mlp(module, nn.ReLU()).train()
    X, y = _data()
    before, rng = _state(model), torch.get_rng_state()
    for call in (
        lambda: run_campaign(model, X, y, FM, trials=2),
        lambda: evaluate(model, X, y),
        lambda: slice_1d(model, X, y, random_direction(model, 0), steps=3),
        lambda: sam_sharpness(model, X, y),
    ):
        with pytest.raises(ValueError, match=rf"'1' \({type(module).__name__}\).*{effect}.*eval"):
            call()
    assert model.training and _same(before, _state(model))
    assert torch.equal(rng, torch.get_rng_state())  # no global random draw
    assert len(run_campaign(model.eval(), X, y, FM, trials=2).accuracy) == 2


def test_train_mode_without_mode_dependent_modules_is_accepted():
    """A freshly built Linear/ReLU model is in train mode but computes the same in eval mode."""
    model = _mlp(nn.ReLU()).train()
    X, y = _data()
    assert evaluate(model, X, y).accuracy == evaluate(model.eval(), X, y).accuracy


def test_float64_and_non_finite_models_are_refused():
    X, y = _data()
    with pytest.raises(ValueError, match=r"'0.weight' is float64.*model.float\(\)"):
        run_campaign(_mlp(nn.ReLU()).double(), X, y, FM, trials=2)
    model = _mlp(nn.ReLU())
    with torch.no_grad():
        model[2].weight[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"'2.weight' holds nan at index \(1, 2\)"):
        run_campaign(model, X, y, FM, trials=2)
    with pytest.raises(ValueError, match="no parameters"):
        evaluate(nn.Sequential(nn.ReLU()), X, y)


@pytest.mark.parametrize(
    "X_of, y_of, match",
    [
        (lambda X: X, lambda y: y + 0.7, "non-integer values"),
        (lambda X: X, lambda y: y[:-1], r"expected \(120,\)"),
        (lambda X: X, lambda y: np.where(y == 0, 3, y), "label 3 is out of range.*0..2"),
        (lambda X: X, lambda y: y - 1, "label -1 is out of range"),
        (lambda X: np.where(X > 2, np.nan, X), lambda y: y, "inputs must be finite"),
        (lambda X: "not data", lambda y: y, "expected a non-empty array of numbers"),
        (lambda X: X[:0], lambda y: y[:0], "non-empty"),
        (lambda X: X[:, 0], lambda y: y, r"expected \(N, \.\.\.\)"),
    ],
)
def test_bad_data_gets_a_clear_error(X_of, y_of, match):
    X, y = _data()
    for call in (
        lambda: run_campaign(_mlp(nn.ReLU()), X_of(X), y_of(y), FM, trials=2),
        lambda: evaluate(_mlp(nn.ReLU()), X_of(X), y_of(y)),
    ):
        with pytest.raises(ValueError, match=match):
            call()


def test_integer_valued_float_labels_and_float64_inputs_are_accepted():
    X, y = _data()
    ref = run_campaign(_mlp(nn.ReLU()), X, y, FM, trials=4)
    got = run_campaign(
        _mlp(nn.ReLU()), torch.as_tensor(X, dtype=torch.float64), y.astype(np.float64), FM, trials=4
    )
    assert got.accuracy == ref.accuracy


@pytest.mark.parametrize(
    "head, match",
    [(nn.Linear(16, 1), r"output \(120, 1\)"), (nn.Flatten(0), r"output \(1920,\)")],
)
def test_outputs_that_are_not_class_logits_are_refused(head, match):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), head).eval()
    X, y = _data()
    with pytest.raises(ValueError, match=match):
        run_campaign(model, X, y, FM, trials=2)


def test_engine_reuse_checks_the_data_it_is_given():
    model = _mlp(nn.ReLU())
    X, y = _data()
    engine = MonteCarlo([model], X, y, FM)
    same = run_campaign(model, X.copy(), y.copy(), FM, trials=5, engine=engine)
    assert same.accuracy == run_campaign(model, X, y, FM, trials=5).accuracy
    with pytest.raises(ValueError, match="engine was built on 120 other rows"):
        run_campaign(model, X[:60], y[:60], FM, trials=5, engine=engine)
    X2 = X.copy()
    X2[0, 0] += 1.0
    with pytest.raises(ValueError, match="engine's own"):
        run_campaign(model, X2, y, FM, trials=5, engine=engine)


def test_a_sam_family_step_moves_batchnorm_statistics_once():
    """The ascent pass at w + e(w) keeps the running statistics (a SAR step updates them at w,
    once, like an SGD step): same batch count as SGD, and the same statistics after one step."""
    from sar_core.training.config import TrainConfig
    from sar_core.training.loop import _batch_step, _optimizer

    X, y = (torch.as_tensor(a) for a in _data())
    counts = {}
    for method in ("sgd", "sar"):
        model = _mlp(nn.BatchNorm1d(16), nn.ReLU()).train()
        config = TrainConfig(method=method, epochs=1, fault_model=FM if method == "sar" else None)
        opt = _optimizer(model, config)
        _batch_step(model, opt, config, X, y, np.random.default_rng(0))
        bn = model[1]
        counts[method] = (int(bn.num_batches_tracked), bn.running_mean.clone())
    assert counts["sar"][0] == counts["sgd"][0] == 1
    # the statistics of the one update are those of the batch at w (the same initial weights)
    assert torch.allclose(counts["sar"][1], counts["sgd"][1])


@pytest.mark.parametrize("fmt, np_type", [("float16", np.float16), ("float32", np.float32)])
def test_a_value_a_format_stores_as_inf_is_said_so(fmt, np_type):
    """flip stored 1e6 in float16 as inf and said nothing (value_before "inf", exit 0): the CLI
    now adds a note from the same rounding boundary as NumPy's cast (the Bit anatomy page shows
    the stored inf itself)."""
    from sar_core.formats.bits import flip_value, overflow_note

    big = float(np.finfo(np_type).max)
    ulp = big - float(np.nextafter(np_type(big), np_type(0)))
    ok, over = big + 0.49 * ulp, big + 0.5 * ulp  # round to nearest: the first stores max
    with np.errstate(over="ignore"):
        assert np.isfinite(np_type(ok)) and not np.isfinite(np_type(over))
    assert flip_value(ok, fmt, 0).value_before == big and overflow_note(ok, fmt) is None
    for v in (over, -over):
        assert np.isinf(flip_value(v, fmt, 0).value_before)
        assert f"beyond {fmt}'s largest finite value" in overflow_note(v, fmt)
    assert overflow_note(1e39, "int8") is None  # int8 scales to its value


def test_cli_flip_notes_an_overflow(capsys):
    import json

    from sar_core.cli import main

    assert main(["flip", "--format", "float16", "--value", "1e6", "--bit", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["value_before"] == "inf" and "stored as inf" in out["note"]
    assert main(["flip", "--format", "float16", "--value", "1.5", "--bit", "0", "--json"]) == 0
    assert "note" not in json.loads(capsys.readouterr().out)


def test_layer_lists_name_real_layers_once():
    with pytest.raises(ValueError, match=r"'' is not a layer name"):
        FaultModel(format="int8", ber=0.01, layers=("0", "", "2"))
    assert FaultModel(format="int8", ber=0.01, layers=("0", "0", "2")).layers == ("0", "2")


def test_a_cli_sweep_reports_its_rates_once(capsys):
    """The sweep's JSON held the fault model of its first rate (ber 0.001 for 0.001,0.01,0.03)."""
    import json
    from pathlib import Path

    from sar_core.cli import main

    path = Path(__file__).resolve().parents[1] / "assets" / "digits_mlp_sgd.safetensors"
    argv = ["sweep", "--models", str(path), "--format", "int8", "--ber", "0.001,0.01,0.03"]
    assert main([*argv, "--trials", "3", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ber"] == [0.001, 0.01, 0.03] and "ber" not in out["fault_model"]


def test_huge_finite_inputs_and_weights_are_accepted():
    """Finiteness is checked by a sum first; a sum that overflows on finite values is not a
    non-finite value (the exact scan decides)."""
    from sar_core.engine.checks import check_data, check_model

    X = torch.full((4, 3), 3e38)
    assert check_data(X, torch.zeros(4, dtype=torch.long))[0] is not None
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.fill_(3e38)
    assert check_model(lin) is lin
