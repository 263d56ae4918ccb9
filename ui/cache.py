"""Cached loaders shared by every session: the read-only demo checkpoints and the datasets.

Demo models come from ``st.cache_resource`` (one object per process, keyed by path and file
mtime) and are never trained, switched to train mode or modified: every analysis in sar_core is
functional. Datasets come from ``st.cache_data`` (each caller gets its own copy).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from sar_core.data.datasets import DATASETS, Dataset, load_dataset
from sar_core.data.io import Checkpoint, load_checkpoint
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


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint with its raw bytes and a content digest (the cache key of its analyses)."""

    checkpoint: Checkpoint
    data: bytes
    digest: str


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


@st.cache_data(show_spinner=False, max_entries=16)
def dataset(name: str, seed: int = 0) -> Dataset:
    """A bundled dataset split (cached per name and seed)."""
    if name not in DATASETS:
        raise ValueError(
            f"Invalid dataset={name!r}: the dashboard can rebuild only the bundled datasets "
            f"({', '.join(DATASETS)}); models trained on a CSV need the CLI"
        )
    return load_dataset(name, seed=seed)
