"""The user's own data for the user's own model: ``.npz`` (X, y) or CSV, checked against the model.

Unlike ``load_csv`` (which standardises features and renumbers labels for SAR Lab's own models),
a user's data reaches the model exactly as given: X are the model's inputs, y its class indices.
Checks: size and row caps, X float (N x ...) whose per-row shape (or size) matches the model's
input, y integer labels in 0..n_classes-1, no NaN / Inf, at least 2 rows. ``.npz`` files are
read with ``allow_pickle=False``: object arrays are refused, nothing is unpickled.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import numpy as np

from sar_core import limits
from sar_core.data.datasets import Dataset
from sar_core.validate import read_capped

SUFFIXES = (".npz", ".csv")


def read_bytes(
    source: str | Path | bytes, *, what: str = "data", max_bytes: int | None = None
) -> bytes:
    """A file's bytes (or the bytes given), size cap checked first (None: MAX_DATA_BYTES)."""
    max_bytes = limits.MAX_DATA_BYTES if max_bytes is None else max_bytes
    return read_capped(source, max_bytes, path_label=what)


def _npz(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    if data[:4] != b"PK\x03\x04":  # np.load would try anything else as a pickle
        raise ValueError(
            "Invalid data: not a readable .npz file (no zip header; truncated or another format?)"
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            keys = set(z.files)
            if not {"X", "y"} <= keys:
                raise ValueError(
                    f"Invalid data: the .npz holds arrays {sorted(keys)}; it needs 'X' (inputs, "
                    "N x ...) and 'y' (integer labels, N)"
                )
            for k in ("X", "y"):  # header only: a small file may declare a huge array
                n = z.zip.getinfo(f"{k}.npy").file_size
                if n > 8 * limits.MAX_DATA_BYTES:
                    raise ValueError(f"Invalid data array {k}: {n} bytes once unpacked")
            return z["X"], z["y"]
    except ValueError as e:
        if str(e).startswith("Invalid"):
            raise
        raise ValueError(
            "Invalid data: the .npz cannot be read without unpickling (object arrays are "
            "refused); save X and y as numeric arrays"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ValueError(
            f"Invalid data: not a readable .npz file (truncated or another format?): "
            f"{type(e).__name__}"
        ) from None


def _csv(data: bytes, label_column: str | None) -> tuple[np.ndarray, np.ndarray]:
    import pandas as pd

    if len(data) > limits.MAX_CSV_BYTES:
        raise ValueError(
            f"Invalid csv size={len(data)} bytes: the cap is {limits.MAX_CSV_BYTES} bytes"
        )
    try:
        df = pd.read_csv(io.BytesIO(data))
    except Exception as e:  # pandas raises many parser error types
        raise ValueError(f"Invalid csv: could not parse ({type(e).__name__})") from None
    if df.shape[1] < 2:
        raise ValueError(f"Invalid csv columns={df.shape[1]}: need features and a label column")
    if df.shape[1] > limits.MAX_CSV_COLUMNS:
        raise ValueError(
            f"Invalid csv columns={df.shape[1]}: the cap is {limits.MAX_CSV_COLUMNS} columns"
        )
    label = df.columns[-1] if label_column is None else label_column
    if label not in df.columns:
        raise ValueError(f"Invalid label_column={label!r}: not a column of the csv")
    feats = df.drop(columns=[label])
    bad = [c for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
    if bad:
        raise ValueError(f"Invalid csv feature column {bad[0]!r}: values are not all numbers")
    return feats.to_numpy(dtype=np.float64), df[label].to_numpy()


def load_arrays(
    source: str | Path | bytes,
    *,
    kind: str,
    max_bytes: int | None = None,
    label_column: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) as stored in a ``.npz`` (kind="npz") or CSV (kind="csv"), unchecked."""
    if kind not in ("npz", "csv"):
        raise ValueError(f"Invalid data kind={kind!r}: must be one of npz, csv")
    data = read_bytes(source, max_bytes=max_bytes)
    return _npz(data) if kind == "npz" else _csv(data, label_column)


def check_arrays(
    X: np.ndarray, y: np.ndarray, *, input_shape: tuple[int, ...], n_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Validated (X (N, D) float32, y (N,) int64) for a model with this input and class count."""
    X, y = np.asarray(X), np.asarray(y)
    if X.dtype.kind not in "fiub":
        raise ValueError(f"Invalid data X: dtype {X.dtype}; expected float32 numbers")
    if X.ndim < 2:
        raise ValueError(
            f"Invalid data X: shape {X.shape}; expected (N, ...) with one row per sample"
        )
    n = X.shape[0]
    if not 2 <= n <= limits.MAX_DATA_ROWS:
        raise ValueError(f"Invalid data rows={n}: need 2 to {limits.MAX_DATA_ROWS} rows")
    d = math.prod(input_shape)
    if tuple(X.shape[1:]) != tuple(input_shape) and math.prod(X.shape[1:]) != d:
        raise ValueError(
            f"Invalid data X: shape {tuple(X.shape)}; the model takes rows of shape "
            f"{tuple(input_shape)} ({d} values), so X must be (N, {', '.join(map(str, input_shape))})"
            f" or (N, {d})"
        )
    X = X.reshape(n, d).astype(np.float32)
    bad = np.argwhere(~np.isfinite(X))
    if len(bad):
        r, c = bad[0]
        raise ValueError(
            f"Invalid data X: value {X[r, c]} in row {r}, column {c}; inputs must be finite"
        )
    if y.shape != (n,):
        raise ValueError(
            f"Invalid data y: shape {y.shape}; expected ({n},), one label per row of X"
        )
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.rint(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise ValueError(f"Invalid data y: dtype {y.dtype}; labels must be integer class indices")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= n_classes:
        v = lo if lo < 0 else hi
        raise ValueError(
            f"Invalid data y: label {v} is out of range; the model has {n_classes} outputs, so "
            f"labels must lie in 0..{n_classes - 1}"
        )
    return X, y.astype(np.int64)


def load_user_data(
    source: str | Path | bytes,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    name: str | None = None,
    kind: str | None = None,
    max_bytes: int | None = None,
) -> Dataset:
    """The whole file as an evaluation set (train and test both hold every row)."""
    X, y = _load_checked(source, input_shape, n_classes, kind, max_bytes)
    return _dataset(name or _name(source), X, y, X, y, n_classes, input_shape)


def split_user_data(
    source: str | Path | bytes,
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    val: str | Path | bytes | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    kind: str | None = None,
    val_kind: str | None = None,
    max_bytes: int | None = None,
) -> Dataset:
    """Training data with a validation split: ``val`` when given, else a seeded held-out part."""
    from sar_core.validate import check_float

    X, y = _load_checked(source, input_shape, n_classes, kind, max_bytes)
    if val is not None:
        Xv, yv = _load_checked(val, input_shape, n_classes, val_kind, max_bytes)
    else:
        frac = check_float("val_fraction", val_fraction, low=0.05, high=0.5)
        perm = np.random.default_rng(seed).permutation(len(y))
        k = max(1, int(round(frac * len(y))))
        if len(y) - k < 1:
            raise ValueError(f"Invalid data rows={len(y)}: too few to hold out a validation part")
        Xv, yv, X, y = X[perm[:k]], y[perm[:k]], X[perm[k:]], y[perm[k:]]
    return _dataset(_name(source), X, y, Xv, yv, n_classes, input_shape, seed)


def _load_checked(source, input_shape, n_classes, kind, max_bytes):
    kind = kind or _kind(source)
    X, y = load_arrays(source, kind=kind, max_bytes=max_bytes)
    return check_arrays(X, y, input_shape=input_shape, n_classes=n_classes)


def _kind(source) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "npz" if bytes(source[:2]) == b"PK" else "csv"
    suffix = Path(source).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"Invalid data path={str(source)[:200]!r}: suffix {suffix or '(none)'!r}; expected "
            f"one of {', '.join(SUFFIXES)}"
        )
    return suffix[1:]


def _name(source) -> str:
    return "data" if isinstance(source, (bytes, bytearray, memoryview)) else Path(source).stem


def _dataset(name, X, y, Xv, yv, n_classes, input_shape, seed: int = 0) -> Dataset:
    shape = tuple(input_shape) if len(input_shape) > 1 else None
    return Dataset(name, X, y, Xv, yv, n_classes=n_classes, image_shape=shape, seed=seed)
