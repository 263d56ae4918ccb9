"""Model specs and builders: shapes, layer names, seeded initial weights, no global RNG use."""

from __future__ import annotations

import pytest
import torch

from sar_core.data.models import ModelSpec, build_model, layer_names, n_parameters


def test_mlp_layers_and_parameter_count():
    spec = ModelSpec(arch="mlp", n_features=64, n_classes=10, widths=(128, 64))
    m = build_model(spec, 0)
    assert layer_names(m) == ["fc1", "fc2", "out"]
    assert n_parameters(m) == 64 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10
    assert m(torch.zeros(5, 64)).shape == (5, 10)
    assert not m.training  # built in eval mode


def test_cnn_layers_and_output_shape():
    spec = ModelSpec(arch="cnn", n_features=64, n_classes=10, widths=(8, 16), image_shape=(1, 8, 8))
    m = build_model(spec, 0)
    assert layer_names(m) == ["conv1", "conv2", "out"]
    assert tuple(m.conv2.weight.shape) == (16, 8, 3, 3)
    assert m(torch.zeros(3, 64)).shape == (3, 10)


def test_same_seed_same_weights_other_seed_other_weights():
    spec = ModelSpec(arch="mlp", n_features=10, n_classes=3, widths=(7, 5))
    a, b, c = build_model(spec, 4), build_model(spec, 4), build_model(spec, 5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_build_model_leaves_the_global_torch_rng_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    build_model(ModelSpec(arch="mlp", n_features=10, n_classes=3, widths=(7,)), 9)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_spec_dict_round_trip(arch):
    spec = ModelSpec(
        arch=arch,
        n_features=64,
        n_classes=10,
        widths=(4, 8),
        activation="tanh",
        image_shape=(1, 8, 8),
    )
    d = spec.to_dict()
    assert d["widths"] == [4, 8] and d["image_shape"] == [1, 8, 8]
    assert ModelSpec.from_dict(d) == spec


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_activations(activation):
    m = build_model(ModelSpec(n_features=4, n_classes=2, widths=(3,), activation=activation), 0)
    assert m(torch.randn(2, 4)).shape == (2, 2)


def test_cnn1d_layers_parameter_count_and_output_shape():
    spec = ModelSpec(
        arch="cnn1d", n_features=40, n_classes=10, widths=(16, 32), image_shape=(1, 40)
    )
    m = build_model(spec, 0)
    assert layer_names(m) == ["conv1", "conv2", "out"]
    assert tuple(m.conv1.weight.shape) == (16, 1, 5) and tuple(m.conv2.weight.shape) == (32, 16, 5)
    # 40 -> pool 20 -> pool 10 time steps, 32 channels
    assert n_parameters(m) == (16 * 5 + 16) + (32 * 16 * 5 + 32) + (32 * 10 * 10 + 10)
    x = torch.randn(3, 40)
    assert m(x).shape == (3, 10)
    # reference forward with torch.nn.functional, from the model's own weights
    import torch.nn.functional as F

    h = F.max_pool1d(
        F.relu(F.conv1d(x.reshape(3, 1, 40), m.conv1.weight, m.conv1.bias, padding=2)), 2
    )
    h = F.max_pool1d(F.relu(F.conv1d(h, m.conv2.weight, m.conv2.bias, padding=2)), 2)
    ref = F.linear(h.flatten(1), m.out.weight, m.out.bias)
    torch.testing.assert_close(m(x), ref)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_shape=None), "cnn1d' needs \\(C, L\\)"),
        (dict(image_shape=(1, 8, 8), n_features=64), "cnn1d' needs \\(C, L\\)"),
        (dict(image_shape=(2, 40)), "C\\*L must equal"),
        (dict(widths=(4, 4, 4, 4, 4)), "at most"),
    ],
)
def test_cnn1d_rejects_bad_shapes(kwargs, match):
    base = dict(arch="cnn1d", n_features=40, n_classes=10, widths=(16, 32), image_shape=(1, 40))
    with pytest.raises(ValueError, match=match):
        ModelSpec(**{**base, **kwargs})
