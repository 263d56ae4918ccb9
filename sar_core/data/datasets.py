"""Bundled datasets (no downloads), deterministic stratified splits, validated CSV upload.

sklearn and mnist1d are imported inside the functions that use them, so light commands that only
need the names (``DATASETS``) or the ``Dataset`` type do not pay for their import.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from sar_core import limits
from sar_core.names import DATASETS
from sar_core.validate import check_choice, check_float, check_int


@dataclass(frozen=True)
class Dataset:
    """A standardised train/test split. X: (N, D) float32, y: (N,) int64."""

    name: str
    X_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    X_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    n_classes: int
    image_shape: tuple[int, ...] | None = None  # (C, H, W) images / (C, L) signals, flattened
    seed: int = 0

    @property
    def n_features(self) -> int:
        """Number of input features D."""
        return int(self.X_train.shape[1])

    def describe(self) -> dict:
        """Small JSON-friendly summary (stored in checkpoints)."""
        return {
            "name": self.name,
            "n_train": int(len(self.y_train)),
            "n_test": int(len(self.y_test)),
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "image_shape": list(self.image_shape) if self.image_shape else None,
            "seed": self.seed,
        }


@lru_cache(maxsize=1)
def mnist1d_raw() -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D (Greydanus 2020), 5000 x 40 signals, 10 classes, generated locally and cached.

    Calls the ``mnist1d`` package's own generator ``make_dataset`` with its default arguments
    (``get_dataset_args()``, generator seed 42): never its download path (``get_dataset``), no
    network, no pickle written. The package seeds NumPy's and ``random``'s global generators, so
    both states are saved and restored around the call. Train and test rows are pooled; our own
    stratified split by seed follows. Returned arrays are read-only (the cache is shared).
    """
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    X = np.concatenate([d["x"], d["x_test"]]).astype(np.float64)  # (5000, 40)
    y = np.concatenate([d["y"], d["y_test"]]).astype(np.int64)  # (5000,)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def _raw(name: str, seed: int, n_samples: int) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    from sklearn import datasets as skd

    if name == "mnist1d":
        X, y = mnist1d_raw()
        return X, y, (1, 40)  # one channel, 40 time steps
    if name == "digits":
        d = skd.load_digits()
        return d.data, d.target, (1, 8, 8)
    if name == "moons":
        X, y = skd.make_moons(n_samples=n_samples, noise=0.2, random_state=seed)
        return X, y, None
    if name == "circles":
        X, y = skd.make_circles(n_samples=n_samples, noise=0.1, factor=0.5, random_state=seed)
        return X, y, None
    if name == "blobs":
        X, y = skd.make_blobs(
            n_samples=n_samples, centers=4, n_features=2, cluster_std=1.5, random_state=seed
        )
        return X, y, None
    loader = {"iris": skd.load_iris, "wine": skd.load_wine, "breast_cancer": skd.load_breast_cancer}
    d = loader[name]()
    return d.data, d.target, None


def load_dataset(
    name: str, *, seed: int = 0, test_fraction: float = 0.2, n_samples: int = 1000
) -> Dataset:
    """Load a bundled dataset with a stratified split by ``seed``; standardised on train only."""
    check_choice("dataset", name, DATASETS)
    seed = check_int("seed", seed, low=0, high=2**32 - 1)
    test_fraction = check_float("test_fraction", test_fraction, low=0.05, high=0.5)
    n_samples = check_int("n_samples", n_samples, low=50, high=limits.MAX_CSV_ROWS)
    X, y, image_shape = _raw(name, seed, n_samples)
    return make_dataset(name, X, y, seed=seed, test_fraction=test_fraction, image_shape=image_shape)


def make_dataset(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    image_shape: tuple[int, ...] | None = None,
) -> Dataset:
    """Split (stratified, seeded) and standardise with train statistics; labels become 0..K-1."""
    from sklearn.model_selection import train_test_split

    X = np.asarray(X, dtype=np.float64)
    classes, y_idx = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"Invalid labels: found {len(classes)} class; need at least 2 classes")
    Xtr, Xte, ytr, yte = train_test_split(
        X, y_idx, test_size=test_fraction, random_state=seed, stratify=y_idx
    )
    mu = Xtr.mean(axis=0)
    sd = Xtr.std(axis=0)
    sd[sd == 0] = 1.0  # constant features (blank digit pixels) stay 0 after centring
    return Dataset(
        name=name,
        X_train=((Xtr - mu) / sd).astype(np.float32),
        y_train=ytr.astype(np.int64),
        X_test=((Xte - mu) / sd).astype(np.float32),
        y_test=yte.astype(np.int64),
        n_classes=int(len(classes)),
        image_shape=tuple(image_shape) if image_shape else None,
        seed=seed,
    )


def load_csv(
    source: str | Path | bytes,
    *,
    label_column: str | None = None,
    name: str = "csv",
    seed: int = 0,
    test_fraction: float = 0.2,
) -> Dataset:
    """Dataset from a CSV: numeric feature columns plus one label column (default: the last).

    Size, column, row and class caps apply; NaN, non-numeric features and single-class labels
    are rejected with a ValueError naming the problem.
    """
    import pandas as pd

    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
    else:
        p = Path(source)
        try:
            exists = p.is_file()
        except OSError as e:
            raise ValueError(f"Invalid csv path={str(source)[:200]!r}: {e.strerror}") from None
        if not exists:
            raise ValueError(f"Invalid csv path={str(source)[:200]!r}: no such file")
        if p.stat().st_size > limits.MAX_CSV_BYTES:
            raise ValueError(
                f"Invalid csv size={p.stat().st_size} bytes: the cap is {limits.MAX_CSV_BYTES} bytes"
            )
        raw = p.read_bytes()
    if len(raw) > limits.MAX_CSV_BYTES:
        raise ValueError(
            f"Invalid csv size={len(raw)} bytes: the cap is {limits.MAX_CSV_BYTES} bytes"
        )
    if not raw.strip():
        raise ValueError("Invalid csv: the file is empty; expected a header and numeric rows")
    try:
        # Pass 1, structure only: with header=None a row longer than the header line is a
        # ParserError (with a header, pandas would silently turn surplus fields into an index).
        pd.read_csv(io.BytesIO(raw), header=None, dtype=str, keep_default_na=False)
        df = pd.read_csv(io.BytesIO(raw))
    except pd.errors.ParserError as e:
        detail = " ".join(str(e).split())
        hint = "; every row needs one value per header column" if "fields in line" in detail else ""
        raise ValueError(f"Invalid csv: could not parse ({detail}){hint}") from None
    except Exception as e:  # pandas raises many parser error types
        raise ValueError(f"Invalid csv: could not parse ({type(e).__name__}: {e})") from None
    if df.shape[1] > limits.MAX_CSV_COLUMNS:
        raise ValueError(
            f"Invalid csv columns={df.shape[1]}: the cap is {limits.MAX_CSV_COLUMNS} columns"
        )
    if df.shape[1] < 2:
        raise ValueError(f"Invalid csv columns={df.shape[1]}: need at least 1 feature and 1 label")
    if len(df) > limits.MAX_CSV_ROWS:
        raise ValueError(f"Invalid csv rows={len(df)}: the cap is {limits.MAX_CSV_ROWS} rows")
    if len(df) < 10:
        raise ValueError(f"Invalid csv rows={len(df)}: need at least 10 rows")
    label = label_column if label_column is not None else df.columns[-1]
    check_choice("label_column", label, list(df.columns))
    features = df.drop(columns=[label])
    bad = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if bad:
        col = features[bad[0]]
        where = np.flatnonzero(
            (pd.to_numeric(col, errors="coerce").isna() & col.notna()).to_numpy()
        )
        shown = (
            f" value {col.iloc[where[0]]!r} in data row {where[0] + 1}"
            if len(where)
            else " a value"
        )
        raise ValueError(
            f"Invalid csv feature column {bad[0]!r}:{shown} is not numeric; every feature "
            "value must be a number (only the label column may hold text)"
        )
    if features.isna().any().any() or df[label].isna().any():
        col = next(c for c in df.columns if df[c].isna().any())
        row = int(df[col].isna().to_numpy().argmax()) + 1
        raise ValueError(
            f"Invalid csv column {col!r}: missing/NaN value in data row {row}; every cell must "
            "hold a value (fill or drop incomplete rows)"
        )
    X = features.to_numpy(dtype=np.float64)
    if not np.isfinite(X).all():
        r, c = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(
            f"Invalid csv column {features.columns[c]!r}: value {X[r, c]} in data row {r + 1}; "
            "features must be finite numbers"
        )
    y = df[label].to_numpy()
    n_classes = len(np.unique(y))
    if n_classes < 2:
        raise ValueError(f"Invalid csv label column {label!r}: found {n_classes} class; need >= 2")
    if n_classes > limits.MAX_CLASSES:
        raise ValueError(f"Invalid csv classes={n_classes}: the cap is {limits.MAX_CLASSES}")
    counts = np.unique(y, return_counts=True)[1]
    if counts.min() < 2:
        raise ValueError(
            f"Invalid csv label column {label!r}: every class needs at least 2 rows for a "
            "stratified split"
        )
    return make_dataset(name, X, y, seed=seed, test_fraction=test_fraction)
