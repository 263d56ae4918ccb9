"""The model registry a page chooses from: shared demo models plus this user's own models.

Per-user models (trained here or uploaded) live in ``st.session_state`` only, never in a module
global, so two browser sessions never see each other's models. Every entry carries its
checkpoint bytes (for download) and a content digest (the cache key for analyses).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from sar_core.data.datasets import DATASETS, Dataset
from sar_core.data.io import (
    Checkpoint,
    ImportedModel,
    checkpoint_bytes,
    load_checkpoint,
    load_model,
)
from sar_core.data.models import layer_names, n_parameters
from sar_core.plots.style import arch_label, method_label
from sar_core.training.loop import METHODS
from ui.cache import (
    LoadedCheckpoint,
    add_user_data,
    dataset,
    demo_checkpoint,
    demo_paths,
    digest_of,
)

STATE_KEY = "sar_registry"  # session_state: name -> Entry (this user's models)


@dataclass(frozen=True)
class Entry:
    """One selectable model."""

    name: str
    source: str  # "demo" | "trained" | "uploaded"
    loaded: LoadedCheckpoint

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint (model, spec, meta)."""
        return self.loaded.checkpoint

    @property
    def model(self):
        """The model (read-only for every analysis)."""
        return self.loaded.checkpoint.model

    @property
    def method(self) -> str:
        """Training method recorded in the checkpoint."""
        return self.loaded.checkpoint.method

    @property
    def key(self) -> str:
        """Content digest: the cache key of this model's analyses."""
        return self.loaded.digest

    @property
    def imported(self) -> bool:
        """True for an uploaded model of the user's own (ONNX), evaluated on uploaded data."""
        return isinstance(self.loaded.checkpoint, ImportedModel)

    @property
    def data_key(self) -> tuple[str, int]:
        """(dataset name, split seed) the model was trained on, or its uploaded data's name."""
        if self.loaded.data_name is not None:
            return self.loaded.data_name, 0
        d = self.loaded.checkpoint.meta["dataset"]
        return str(d.get("name")), int(d.get("seed", 0))

    @property
    def arch(self) -> str:
        """Architecture name (mlp / cnn; an imported model: its format and input shape)."""
        ck = self.loaded.checkpoint
        if isinstance(ck, ImportedModel):
            return f"{ck.kind} {'x'.join(map(str, ck.input_shape))}"
        return ck.spec.arch

    @property
    def n_classes(self) -> int:
        """Number of classes the model predicts (chance accuracy is 1 / n_classes)."""
        ck = self.loaded.checkpoint
        return int(ck.n_classes if isinstance(ck, ImportedModel) else ck.spec.n_classes)

    def signature(self) -> tuple:
        """What must match for paired faults: the architecture and the parameter shapes."""
        if self.imported:
            return self.arch, tuple((n, tuple(p.shape)) for n, p in self.model.named_parameters())
        return (self.checkpoint.spec,)

    def describe(self) -> dict:
        """One table row about this model."""
        ck = self.loaded.checkpoint
        if isinstance(ck, ImportedModel):
            return {
                "model": self.name,
                "source": self.source,
                "method": f"your model ({ck.kind}{', int8 QDQ' if ck.quantized else ''})",
                "dataset": "uploaded data",
                "architecture": f"{self.arch} -> {ck.n_classes} classes",
                "parameters": n_parameters(self.model),
                "epochs": None,
                "rho": None,
                "clean accuracy": None,
            }
        meta = ck.meta
        cfg = meta.get("config", {})
        return {
            "model": self.name,
            "source": self.source,
            "method": method_label(self.method),
            "dataset": self.data_key[0],
            "architecture": f"{arch_label(self.arch)} {list(self.loaded.checkpoint.spec.widths)}",
            "parameters": n_parameters(self.model),
            "epochs": cfg.get("epochs"),
            "rho": _effective_rho(cfg),
            "clean accuracy": meta.get("metrics", {}).get("clean_accuracy"),
        }


def _effective_rho(cfg: dict) -> float | None:
    """The radius a checkpoint was trained with (a method's default when its config left rho
    unset); None for methods without one (SGD, Adam, FAT, clip, RandBET) or an unreadable config."""
    from sar_core.training.config import TrainConfig

    try:
        return TrainConfig.from_dict(cfg).effective_rho
    except (TypeError, ValueError):
        return cfg.get("rho")


def _demo_name(path: Path, ck: Checkpoint) -> str:
    d = ck.meta["dataset"].get("name", "?")
    return f"demo · {d} {arch_label(ck.spec.arch)} · {method_label(ck.method)}"


def demo_entries() -> list[Entry]:
    """The bundled demo models (shared, cached, read-only)."""
    out = []
    for p in demo_paths():
        loaded = demo_checkpoint(p)
        out.append(Entry(_demo_name(p, loaded.checkpoint), "demo", loaded))
    order = {m: i for i, m in enumerate(METHODS)}  # SGD first: the baseline of paired differences
    return sorted(out, key=lambda e: (e.data_key, e.arch != "mlp", order.get(e.method, 99)))


def user_entries() -> dict[str, Entry]:
    """This session's own models (created on first use)."""
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = {}
    return st.session_state[STATE_KEY]


def all_entries() -> dict[str, Entry]:
    """Demo models followed by this session's models, by name."""
    out = {e.name: e for e in demo_entries()}
    out.update(user_entries())
    return out


def unique_name(base: str) -> str:
    """``base`` or ``base (2)``, ``base (3)``... so names never collide."""
    taken = set(all_entries())
    if base not in taken:
        return base
    i = 2
    while f"{base} ({i})" in taken:
        i += 1
    return f"{base} ({i})"


def add_checkpoint(name: str, source: str, data: bytes, ck: Checkpoint) -> Entry:
    """Register a model in this session under a unique name derived from ``name``."""
    entry = Entry(unique_name(name), source, LoadedCheckpoint(ck, data, digest_of(data)))
    user_entries()[entry.name] = entry
    return entry


def add_trained(result, data: Dataset, name: str) -> Entry:
    """Register a TrainResult (model and history) as a checkpoint in this session."""
    raw = checkpoint_bytes(result.model, result.spec, result.metadata(data))
    # rebuild from the bytes so the registered model is exactly what a download contains
    return add_checkpoint(name, "trained", raw, load_checkpoint(raw))


def add_upload(raw: bytes, filename: str) -> Entry:
    """Validate uploaded checkpoint bytes and register them; ValueError when they are invalid."""
    ck = load_checkpoint(raw)  # raises ValueError with the reason
    name = ck.meta["dataset"].get("name")
    if name not in DATASETS:
        raise ValueError(
            f"Invalid checkpoint dataset={name!r}: the dashboard evaluates models on the bundled "
            f"datasets ({', '.join(DATASETS)}); use the CLI with --csv for this one"
        )
    stem = Path(filename).stem or "uploaded"
    return add_checkpoint(f"upload · {stem}", "uploaded", raw, ck)


def add_imported(model_raw: bytes, model_file: str, data_raw: bytes, data_file: str) -> Entry:
    """Register an uploaded .onnx model with its uploaded data (.npz / .csv), both validated.

    ValueError (the library's message) when either is unusable. Nothing is unpickled: ONNX is
    protobuf, .npz is read with allow_pickle=False, and .pt2 files are never accepted here.
    """
    from sar_core.data.userdata import load_user_data

    suffix = Path(model_file).suffix.lower()
    if suffix != ".onnx":
        raise ValueError(
            f"Invalid model file {model_file!r}: the dashboard imports .onnx models only "
            "(a .pt2 can run code when loaded; use the CLI with --trust-pt2 for your own files)"
        )
    imported = load_model(model_raw, kind="onnx", name=Path(model_file).stem or "model")
    data_kind = Path(data_file).suffix.lower().lstrip(".")
    data = load_user_data(
        data_raw,
        input_shape=imported.input_shape,
        n_classes=imported.n_classes,
        name=Path(data_file).stem,
        kind=data_kind if data_kind in ("npz", "csv") else None,
    )
    data_name = add_user_data(data, data_raw)
    loaded = LoadedCheckpoint(imported, model_raw, digest_of(model_raw), data_name)
    entry = Entry(unique_name(f"your model · {imported.name}"), "uploaded", loaded)
    user_entries()[entry.name] = entry
    return entry


def add_imported_result(entry: Entry, raw: bytes, label: str) -> Entry:
    """Register a fine-tuned version of an imported model (same uploaded data)."""
    imported = load_model(raw, kind="onnx", name=f"{entry.loaded.checkpoint.name}-{label}")
    loaded = LoadedCheckpoint(imported, raw, digest_of(raw), entry.loaded.data_name)
    new = Entry(unique_name(f"{entry.name} · {label}"), "fine-tuned", loaded)
    user_entries()[new.name] = new
    return new


def remove(name: str) -> None:
    """Forget one of this session's models."""
    user_entries().pop(name, None)


def get(names: Sequence[str]) -> list[Entry]:
    """Entries by name (unknown names raise ValueError)."""
    pool = all_entries()
    missing = [n for n in names if n not in pool]
    if missing:
        raise ValueError(f"Invalid model={missing[0]!r}: not in the registry of this session")
    return [pool[n] for n in names]


def check_comparable(entries: Sequence[Entry]) -> Dataset:
    """The shared test data of ``entries``; ValueError unless they share dataset and architecture.

    Paired fault campaigns need one architecture (the same fault sites) and one dataset split.
    """
    if not entries:
        raise ValueError("Choose at least one model.")
    first = entries[0]
    for e in entries[1:]:
        if e.data_key != first.data_key:
            raise ValueError(
                f"{e.name} was trained on {e.data_key[0]} (split seed {e.data_key[1]}) but "
                f"{first.name} on {first.data_key[0]} (split seed {first.data_key[1]}): compare "
                "models of one dataset, so both are tested on the same examples."
            )
        if e.signature() != first.signature():
            raise ValueError(
                f"{e.name} ({_arch_text(e)}) and {first.name} ({_arch_text(first)}) differ in "
                "architecture: compare models of one architecture, so the same faults can hit "
                "both."
            )
    return dataset(*first.data_key)


def _arch_text(e: Entry) -> str:
    return e.arch if e.imported else f"{e.arch} {list(e.checkpoint.spec.widths)}"


def layers_of(entry: Entry) -> list[str]:
    """Names of the layers that own parameters (what a fault model can target)."""
    return layer_names(entry.model)
