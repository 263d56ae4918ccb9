"""Cached loaders shared by every session: the read-only demo checkpoints and the datasets.

Demo models come from ``st.cache_resource`` (one object per process, keyed by path and file
mtime) and are never trained, switched to train mode or modified: every analysis in sar_core is
functional. Datasets come from ``st.cache_data`` (each caller gets its own copy).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import streamlit as st

from sar_core.data.datasets import DATASETS, Dataset, load_dataset
from sar_core.data.io import Checkpoint, ImportedModel, load_checkpoint
from sar_core.runtime import configure_threads


@st.cache_resource(show_spinner=False)
def threads() -> int:
    """torch's thread count for this server process, set once (sar_core.runtime: default 1,
    $SAR_NUM_THREADS): the models are tiny, and one thread is 10-20x faster on a small shared
    CPU than threads fighting over busy cores."""
    return configure_threads()


threads()

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"


USER_DATA_KEY = "sar_user_data"  # session_state: "upload:<digest>" -> Dataset (this user's data)
UPLOAD_PREFIX = "upload:"


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A model with its raw bytes and a content digest (the cache key of its analyses).

    ``checkpoint`` is a SAR Lab checkpoint, or an imported model (``ImportedModel``: an
    uploaded .onnx) whose evaluation data is this session's uploaded dataset ``data_name``.
    """

    checkpoint: Checkpoint | ImportedModel
    data: bytes
    digest: str
    data_name: str | None = None  # "upload:<digest>" for an imported model's uploaded data


def digest_of(data: bytes) -> str:
    """Short content digest of checkpoint bytes."""
    return hashlib.sha256(data).hexdigest()[:20]


def demo_paths() -> list[Path]:
    """Bundled demo checkpoints, sorted (assets/*.safetensors)."""
    return sorted(ASSETS.glob("*.safetensors"))


@st.cache_resource(show_spinner=False, max_entries=32)
def _demo(path: str, mtime_ns: int) -> LoadedCheckpoint:
    data = Path(path).read_bytes()
    return LoadedCheckpoint(load_checkpoint(data), data, digest_of(data))


def demo_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """The shared, read-only demo checkpoint at ``path`` (reloaded when the file changes)."""
    p = Path(path)
    return _demo(str(p), p.stat().st_mtime_ns)


def add_user_data(data: Dataset, raw: bytes) -> str:
    """Keep an uploaded dataset in this session; its name ("upload:<digest>") for ``dataset``."""
    name = UPLOAD_PREFIX + digest_of(raw)
    if USER_DATA_KEY not in st.session_state:
        st.session_state[USER_DATA_KEY] = {}
    st.session_state[USER_DATA_KEY][name] = data
    return name


def dataset(name: str, seed: int = 0) -> Dataset:
    """A bundled dataset split (cached per name and seed), or this session's uploaded data."""
    if name.startswith(UPLOAD_PREFIX):
        mine = st.session_state.get(USER_DATA_KEY, {})
        if name not in mine:
            raise ValueError(
                f"Invalid dataset={name!r}: this uploaded data is not in your session any more; "
                "upload it again on the Your model page"
            )
        d = mine[name]  # a copy per caller, as st.cache_data gives for the bundled ones
        return replace(
            d, **{k: getattr(d, k).copy() for k in ("X_train", "y_train", "X_test", "y_test")}
        )
    return _bundled(name, seed)


@st.cache_data(show_spinner=False, max_entries=16)
def _bundled(name: str, seed: int = 0) -> Dataset:
    if name not in DATASETS:
        raise ValueError(
            f"Invalid dataset={name!r}: the dashboard can rebuild only the bundled datasets "
            f"({', '.join(DATASETS)}); models trained on a CSV need the CLI"
        )
    return load_dataset(name, seed=seed)
