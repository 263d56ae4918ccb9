"""Bundled datasets (deterministic stratified splits, train-only standardisation) and CSV upload."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sar_core.data.datasets import DATASETS, load_csv, load_dataset


@pytest.mark.parametrize("name", DATASETS)
def test_every_bundled_dataset_loads_with_a_stratified_split(name):
    d = load_dataset(name, seed=0)
    assert d.X_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.X_train.shape[1] == d.X_test.shape[1] == d.n_features
    assert set(np.unique(d.y_train)) == set(range(d.n_classes))
    n = len(d.y_train) + len(d.y_test)
    assert len(d.y_test) == pytest.approx(0.2 * n, abs=d.n_classes + 1)
    # stratified: class proportions agree between train and test
    ptr = np.bincount(d.y_train, minlength=d.n_classes) / len(d.y_train)
    pte = np.bincount(d.y_test, minlength=d.n_classes) / len(d.y_test)
    assert np.max(np.abs(ptr - pte)) < 0.05
    # standardised with train statistics only
    assert np.allclose(d.X_train.mean(axis=0), 0, atol=1e-4)
    assert np.all(np.isfinite(d.X_test))


def test_digits_is_sklearn_digits_with_image_shape(digits):
    raw = load_digits()
    assert digits.image_shape == (1, 8, 8) and digits.n_classes == 10
    assert len(digits.y_train) + len(digits.y_test) == len(raw.target)
    assert sorted(np.concatenate([digits.y_train, digits.y_test]).tolist()) == sorted(
        raw.target.tolist()
    )
    assert digits.describe() == {
        "name": "digits",
        "n_train": len(digits.y_train),
        "n_test": len(digits.y_test),
        "n_features": 64,
        "n_classes": 10,
        "image_shape": [1, 8, 8],
        "seed": 0,
    }


def test_same_seed_same_split_other_seed_other_split():
    a, b, c = (
        load_dataset("wine", seed=3),
        load_dataset("wine", seed=3),
        load_dataset("wine", seed=4),
    )
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_train, c.X_train)


def test_synthetic_datasets_depend_on_seed_and_n_samples():
    m = load_dataset("moons", seed=1, n_samples=200)
    assert len(m.y_train) + len(m.y_test) == 200 and m.n_features == 2


def _csv(rows: int = 40, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 3))
    y = (X[:, 0] > 0).astype(int)
    lines = ["a,b,c,label"] + [f"{r[0]},{r[1]},{r[2]},{t}" for r, t in zip(X, y)]
    return ("\n".join(lines) + "\n").encode()


def test_load_csv_from_bytes_and_path(tmp_path):
    raw = _csv()
    d = load_csv(raw, name="mine", seed=1)
    assert d.n_features == 3 and d.n_classes == 2 and d.name == "mine"
    p = tmp_path / "x.csv"
    p.write_bytes(raw)
    d2 = load_csv(p, name="mine", seed=1)
    assert np.array_equal(d.X_train, d2.X_train) and np.array_equal(d.y_test, d2.y_test)


def test_load_csv_label_column_and_string_labels():
    text = "label,x1,x2\n" + "".join(
        f"{'cat' if i % 2 else 'dog'},{i},{i * 0.5 + (i % 2)}\n" for i in range(30)
    )
    d = load_csv(text.encode(), label_column="label")
    assert d.n_features == 2 and d.n_classes == 2
    assert set(np.unique(d.y_train)) == {0, 1}


def test_mnist1d_is_the_packages_own_generator_split_by_seed(tmp_path, monkeypatch):
    import random

    from mnist1d.data import get_dataset_args, make_dataset
    from sklearn.model_selection import train_test_split

    monkeypatch.chdir(tmp_path)  # the package's download path would write a pickle here
    np_state, py_state = np.random.get_state(), random.getstate()
    d = load_dataset("mnist1d", seed=2)
    # global RNG states untouched (the package seeds np.random and random itself)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    assert random.getstate() == py_state
    assert list(tmp_path.iterdir()) == []  # nothing written to the working directory
    assert d.image_shape == (1, 40) and d.n_classes == 10 and d.n_features == 40
    # reference: the package's generator called directly, split and standardised by hand
    ref = make_dataset(get_dataset_args())
    X = np.concatenate([ref["x"], ref["x_test"]]).astype(np.float64)
    y = np.concatenate([ref["y"], ref["y_test"]])
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=2, stratify=y)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    np.testing.assert_allclose(d.X_train, (Xtr - mu) / sd, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.X_test, (Xte - mu) / sd, rtol=1e-5, atol=1e-5)
    assert np.array_equal(d.y_test, yte) and len(d.y_test) == 1000
    assert not np.array_equal(d.y_test, load_dataset("mnist1d", seed=3).y_test)


def test_data_module_imports_sklearn_and_mnist1d_lazily():
    import subprocess
    import sys

    code = "import sys, sar_core.data.datasets\nprint('sklearn' in sys.modules, 'mnist1d' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
