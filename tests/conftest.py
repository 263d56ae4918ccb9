"""Shared fixtures: bundled data, demo checkpoints, tiny models, parameter digests, in-process CLI."""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

# Tiny models on a shared 2-core machine: one intra-op thread is 10-50x faster than two threads
# fighting over busy cores, and it keeps the suite's timing stable.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
DEMO_CHECKPOINTS = sorted(ASSETS.glob("digits_*.safetensors"))


def state_digest(model: nn.Module) -> dict[str, str]:
    """sha256 of every parameter and buffer (bytes, dtype and shape): equal iff bit-identical."""
    out = {}
    for name, t in model.state_dict(keep_vars=False).items():
        a = t.detach().cpu().contiguous()
        h = hashlib.sha256(a.numpy().view(np.uint8).tobytes())
        h.update(f"{a.dtype}{tuple(a.shape)}".encode())
        out[name] = h.hexdigest()
    return out


def numpy_trial_draws(seed, trials, n_sites, ber=None, count=None) -> list[np.ndarray]:
    """Each trial's sites drawn by numpy alone, one generator per trial: default_rng([seed, t]),
    a binomial (or the count), then choice without replacement (the reference of the chunk
    draws in sar_core.faults.draws). Trials are passed to numpy as given."""
    out = []
    for t in trials:
        rng = np.random.default_rng([seed, t])
        n = count if count is not None else int(rng.binomial(n_sites, ber))
        out.append(rng.choice(n_sites, size=n, replace=False) if n else np.empty(0, np.int64))
    return out


def assert_same_draws(got, want) -> None:
    """Equal lists of int64 site arrays, element for element and in order."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, w)


def tiny_linear(weight: np.ndarray, bias: np.ndarray) -> nn.Module:
    """A one-layer model named like sar_core's ('out') with the given weights."""
    w = np.asarray(weight, dtype=np.float32)
    lin = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        lin.bias.copy_(torch.from_numpy(np.asarray(bias, dtype=np.float32)))
    return nn.Sequential(OrderedDict(out=lin)).eval()


@pytest.fixture(scope="session")
def digest():
    """The state_digest function."""
    return state_digest


@pytest.fixture(scope="session")
def digits():
    """Bundled digits, split seed 0 (what the demo checkpoints were trained on)."""
    from sar_core.data.datasets import load_dataset

    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def digits_small(digits):
    """A 64-row slice of the digits test split (fast campaigns)."""
    return digits.X_test[:64], digits.y_test[:64]


@pytest.fixture(scope="session")
def demo_paths():
    """Paths of the bundled demo checkpoints."""
    assert len(DEMO_CHECKPOINTS) >= 6, f"demo checkpoints missing from {ASSETS}"
    return {p.stem: p for p in DEMO_CHECKPOINTS}


@pytest.fixture(scope="session")
def demo(demo_paths):
    """Loaded demo checkpoints by stem, e.g. demo['digits_mlp_sar']."""
    from sar_core.data.io import load_checkpoint

    return {k: load_checkpoint(p) for k, p in demo_paths.items()}


@pytest.fixture(scope="session")
def trained(digits):
    """digits MLP trained with sgd and with sar (30 epochs, seed 0), shared by several tests."""
    from sar_core.training.loop import TrainConfig, spec_for, train

    spec = spec_for(digits, "mlp")
    return {
        m: train(spec, digits, TrainConfig(method=m, epochs=30, seed=0)) for m in ("sgd", "sar")
    }


@pytest.fixture
def cli(capsys):
    """Run ``sar_core.cli.main(argv)`` in-process; returns (exit code, stdout, stderr)."""
    from sar_core.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


ONNX_ROWS = 200  # rows of the digits test split uploaded with an ONNX model in page tests


@pytest.fixture(scope="module")
def uploads(trained, digits):
    """(an ONNX export of the trained SGD MLP, an .npz of ONNX_ROWS test rows): what a user
    uploads on the Your model page."""
    from test_onnx import export

    buf = io.BytesIO()
    np.savez(buf, X=digits.X_test[:ONNX_ROWS], y=digits.y_test[:ONNX_ROWS])
    return export(trained["sgd"].model, (64,)), buf.getvalue()


def upload_on_your_model(raw: bytes, data: bytes, timeout: int):
    """A fresh session that uploads a model and its data on the Your model page."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout).run()
    at.switch_page("app_pages/your_model.py").run()
    at.file_uploader(key="byom_model").set_value(("net.onnx", raw, "application/octet-stream"))
    at.file_uploader(key="byom_data").set_value(("d.npz", data, "application/octet-stream"))
    return at.run()
