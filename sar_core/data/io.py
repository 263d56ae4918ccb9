"""Checkpoints as safetensors with validated metadata (never unpickled); results as CSV / JSON."""

from __future__ import annotations

import csv
import io
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sar_core import limits
from sar_core.validate import read_capped

if TYPE_CHECKING:
    from torch import nn

    from sar_core.data.datasets import Dataset
    from sar_core.data.models import ModelSpec

# torch, safetensors, data and models are imported inside the functions that use them: the JSON
# helpers (jsonable, dumps, rows_to_csv) serve the CLI's torch-free commands too.

SCHEMA = "sar-lab/checkpoint/1"
_REQUIRED = {
    "schema": str,
    "spec": dict,
    "method": str,
    "config": dict,
    "dataset": dict,
    "seed": int,
    "metrics": dict,
}
_MAX_HEADER = 1024 * 1024


@dataclass
class Checkpoint:
    """A model rebuilt from its spec, plus the metadata it was saved with."""

    model: nn.Module
    spec: ModelSpec
    meta: dict

    @property
    def method(self) -> str:
        """Training method recorded in the metadata."""
        return self.meta["method"]

    @property
    def label(self) -> str:
        """Label that tells variants of a method apart (saved since SAR v3; else the method)."""
        return str(self.meta.get("label") or self.meta["method"])


def jsonable(obj: Any) -> Any:
    """Recursively convert to JSON-safe types; non-finite floats become 'inf' / '-inf' / 'nan'."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    elif hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays, tensors
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    return obj


def dumps(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, non-finite floats as strings)."""
    return json.dumps(jsonable(obj), sort_keys=True, allow_nan=False)


def checkpoint_bytes(model: nn.Module, spec: ModelSpec, meta: dict) -> bytes:
    """Serialise a model and metadata (spec is added) to safetensors bytes."""
    from safetensors.torch import save as st_save

    full = {"schema": SCHEMA, **meta, "spec": spec.to_dict()}
    _validate_meta(full)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    return st_save(tensors, metadata={"sar_lab": dumps(full)})


def save_checkpoint(path: str | Path, model: nn.Module, spec: ModelSpec, meta: dict) -> Path:
    """Write a checkpoint file; returns its path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(checkpoint_bytes(model, spec, meta))
    return p


def _validate_meta(meta: Any) -> dict:
    if not isinstance(meta, dict):
        raise ValueError("Invalid checkpoint metadata: expected a JSON object")
    for key, typ in _REQUIRED.items():
        if key not in meta:
            raise ValueError(f"Invalid checkpoint metadata: missing key {key!r}")
        if not isinstance(meta[key], typ) or isinstance(meta[key], bool):
            raise ValueError(
                f"Invalid checkpoint metadata {key}={meta[key]!r}: expected {typ.__name__}"
            )
    if meta["schema"] != SCHEMA:
        raise ValueError(f"Invalid checkpoint schema={meta['schema']!r}: expected {SCHEMA!r}")
    ds = meta["dataset"]
    if not isinstance(ds.get("name"), str) or not ds["name"]:
        raise ValueError(
            f"Invalid checkpoint metadata dataset.name={ds.get('name')!r}: expected a non-empty string"
        )
    for key in ("seed",):
        if key in ds and (
            isinstance(ds[key], bool) or not isinstance(ds[key], int) or not 0 <= ds[key] < 2**32
        ):
            raise ValueError(
                f"Invalid checkpoint metadata dataset.{key}={ds[key]!r}: expected an integer in "
                f"[0, {2**32 - 1}]"
            )
    return meta


def read_header(data: bytes) -> tuple[dict, dict]:
    """Parse and check a safetensors header without reading tensors: (tensor entries, metadata)."""
    if len(data) < 8:
        raise ValueError(f"Invalid checkpoint: {len(data)} bytes is too short to be safetensors")
    (n,) = struct.unpack("<Q", data[:8])
    if n == 0 or n > _MAX_HEADER or 8 + n > len(data):
        raise ValueError(
            "Invalid checkpoint: not a safetensors file (bad header length); checkpoints must be "
            "saved by SAR Lab as .safetensors"
        )
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("Invalid checkpoint: the safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ValueError("Invalid checkpoint: the safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(
            "Invalid checkpoint: the safetensors __metadata__ must map names to strings"
        )
    body = len(data) - 8 - n
    for name, entry in header.items():
        offs = entry.get("data_offsets") if isinstance(entry, dict) else None
        ints = isinstance(offs, list) and all(type(o) is int for o in offs)  # not bool/float
        if not (ints and len(offs) == 2 and 0 <= offs[0] <= offs[1] <= body):
            raise ValueError(
                f"Invalid checkpoint: tensor {name!r} lies outside the file (truncated?)"
            )
    return header, meta


def load_checkpoint(
    source: str | Path | bytes, *, max_bytes: int = limits.MAX_UPLOAD_BYTES
) -> Checkpoint:
    """Load a checkpoint from a path or bytes: validate size, header, metadata and shapes, then build."""
    import torch
    from safetensors.torch import load as st_load

    from sar_core.data.models import ModelSpec, build_model

    data = read_capped(source, max_bytes, path_label="model", size_label="checkpoint")
    header, raw_meta = read_header(data)
    if "sar_lab" not in raw_meta:
        raise ValueError(
            "Invalid checkpoint metadata: no 'sar_lab' entry; not a SAR Lab checkpoint"
        )
    try:
        meta = json.loads(raw_meta["sar_lab"])
    except json.JSONDecodeError:
        raise ValueError("Invalid checkpoint metadata: 'sar_lab' is not valid JSON") from None
    meta = _validate_meta(meta)
    try:
        spec = ModelSpec.from_dict(meta["spec"])
    except TypeError as e:
        raise ValueError(f"Invalid checkpoint spec: {e}") from None
    with torch.device("meta"):  # shapes only: a tiny file may declare a huge architecture
        skeleton = build_model(spec, 0)
    expected = {k: (list(v.shape), "F32") for k, v in skeleton.state_dict().items()}
    found = {k: (e.get("shape"), e.get("dtype")) for k, e in header.items()}
    if set(found) != set(expected):
        raise ValueError(
            f"Invalid checkpoint: tensors {sorted(found)} do not match the declared "
            f"{spec.arch} architecture, which has {sorted(expected)}"
        )
    for k, (shape, dtype) in expected.items():
        if found[k] != (shape, dtype):
            raise ValueError(
                f"Invalid checkpoint: tensor {k!r} has shape {found[k][0]} {found[k][1]}, the "
                f"declared architecture needs {shape} F32"
            )
    need = 4 * sum(math.prod(shape) for shape, _ in expected.values())
    if need > len(data):
        raise ValueError(
            f"Invalid checkpoint: the declared architecture needs {need} bytes of tensors, the "
            f"file has {len(data)} (truncated?)"
        )
    try:
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"Invalid checkpoint: safetensors could not read it ({e})") from None
    for k, t in tensors.items():
        if not torch.isfinite(t).all():
            raise ValueError(f"Invalid checkpoint: tensor {k!r} holds NaN or Inf values")
    model = build_model(spec, 0)
    model.load_state_dict(tensors, strict=True)
    return Checkpoint(model=model.eval(), spec=spec, meta=meta)


def dataset_of(ck: Checkpoint, csv_path: str | None = None) -> Dataset:
    """The test split a checkpoint was trained with (rebuilt from its recorded name and seed)."""
    from sar_core.data.datasets import DATASETS, load_csv, load_dataset

    d = ck.meta["dataset"]
    name, seed = d.get("name"), int(d.get("seed", 0))
    if name in DATASETS:
        data = load_dataset(name, seed=seed)
    elif csv_path is None:
        raise ValueError(
            f"Invalid dataset={name!r} in checkpoint: pass the training CSV with --csv"
        )
    else:
        data = load_csv(csv_path, seed=seed, name=name)
    recorded = (d.get("n_features", ck.spec.n_features), d.get("n_classes", ck.spec.n_classes))
    for what, have, want in (
        ("features", data.n_features, ck.spec.n_features),
        ("classes", data.n_classes, ck.spec.n_classes),
        ("train rows", len(data.y_train), d.get("n_train", len(data.y_train))),
        ("test rows", len(data.y_test), d.get("n_test", len(data.y_test))),
    ):
        if have != want or recorded != (ck.spec.n_features, ck.spec.n_classes):
            src = f"--csv {csv_path!r}" if name not in DATASETS else f"dataset {name!r}"
            raise ValueError(
                f"Invalid data: {src} has {have} {what}, the checkpoint was trained with {want}; "
                "pass the CSV the model was trained on"
            )
    return data


def _data_key(ck: Checkpoint) -> tuple:
    d = ck.meta["dataset"]
    return (d.get("name"), d.get("seed", 0), d.get("n_train"), d.get("n_test"))


def check_same_data(paths: Sequence[str], cks: Sequence[Checkpoint]) -> None:
    """Paired comparison needs every model trained on the same dataset and split seed."""
    for path, ck in zip(paths[1:], cks[1:]):
        if _data_key(ck) != _data_key(cks[0]):
            a, b = cks[0].meta["dataset"], ck.meta["dataset"]
            raise ValueError(
                f"Invalid models: {path!r} was trained on {b.get('name')!r} (split seed "
                f"{b.get('seed')}), {paths[0]!r} on {a.get('name')!r} (split seed {a.get('seed')}); "
                "compare needs models trained on the same dataset and split"
            )


def rows_to_csv(rows: list[dict]) -> str:
    """CSV text from a list of flat dicts (columns from the first row, then any new keys)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(
            {
                k: jsonable(v) if not isinstance(v, (list, dict)) else json.dumps(jsonable(v))
                for k, v in r.items()
            }
        )
    return buf.getvalue()


# --- models brought by the user (issue 19): dispatch by suffix -----------------------------------
MODEL_SUFFIXES = (".safetensors", ".onnx", ".pt2")


@dataclass
class ImportedModel:
    """A user's model (ONNX, or a trusted torch.export program) with what SAR Lab needs of it."""

    model: nn.Module  # takes flattened rows (N, D), returns logits (N, C)
    kind: str  # "onnx" | "pt2"
    input_shape: tuple[int, ...]  # one row's shape as the model takes it
    n_classes: int
    name: str
    raw: bytes | None = None  # the file's bytes (ONNX: written back with new weights)

    @property
    def quantized(self) -> bool:
        """True for a QDQ model whose weights are stored as integer codes."""
        return bool(getattr(self.model, "quantized", None))

    @property
    def method(self) -> str:
        """What the CLI lists as a model's method: the format it was imported from."""
        return self.kind

    @property
    def label(self) -> str:
        """What tells models apart in a comparison: the file's name."""
        return self.name

    @property
    def spec(self) -> None:
        """No SAR Lab ModelSpec: the architecture is the imported graph."""
        return None

    @property
    def meta(self) -> dict:
        """Checkpoint-like metadata: the format as the method, no training record."""
        return {"method": self.kind, "label": self.name, "dataset": {"name": self.name},
                "config": {}, "metrics": {}}  # fmt: skip


def model_kind(path: str | Path) -> str:
    """'safetensors' | 'onnx' | 'pt2' from a file name; ValueError for any other suffix."""
    suffix = Path(str(path)).suffix.lower()
    if suffix not in MODEL_SUFFIXES:
        raise ValueError(
            f"Invalid model path={str(path)[:200]!r}: suffix {suffix or '(none)'!r}; expected one "
            f"of {', '.join(MODEL_SUFFIXES)}"
        )
    return suffix[1:]


def load_model(
    source: str | Path | bytes,
    *,
    kind: str | None = None,
    name: str | None = None,
    trust_pt2: bool = False,
    max_bytes: int | None = None,
) -> Checkpoint | ImportedModel:
    """A SAR Lab checkpoint (.safetensors), an ONNX model (.onnx) or, trusted only, a .pt2."""
    if kind is None:
        if isinstance(source, (bytes, bytearray, memoryview)):
            raise ValueError("Invalid kind=None with bytes: say which format they hold")
        kind = model_kind(source)
    if kind == "safetensors":
        return load_checkpoint(source)
    if kind == "pt2":
        return _load_pt2(source, trust=trust_pt2, max_bytes=max_bytes)
    if kind != "onnx":
        raise ValueError(f"Invalid kind={kind!r}: must be one of safetensors, onnx, pt2")
    from sar_core.data.onnx_import import load_onnx
    from sar_core.data.onnx_read import read_model_bytes
    from sar_core.data.onnx_sequential import as_sequential

    raw = read_model_bytes(source, max_bytes)
    m = load_onnx(raw, max_bytes=max_bytes)
    label = name or ("model" if isinstance(source, (bytes, bytearray)) else Path(source).stem)
    # a plain Linear/activation chain runs as an nn.Sequential: same parameters, and SAR Lab's
    # batched evaluator and activation faults apply to it
    return ImportedModel(as_sequential(m) or m, "onnx", m.input_shape, m.n_classes, label, raw)


def _load_pt2(source, *, trust: bool, max_bytes: int | None) -> ImportedModel:
    if not trust:
        raise ValueError(
            f"Invalid model={str(source)[:200] if not isinstance(source, bytes) else 'bytes'!r}: a "
            ".pt2 file is read by torch.export.load, which can unpickle (run) code; pass "
            "trust_pt2=True (CLI: --trust-pt2) only for a file you made or trust"
        )
    from sar_core.data.exported import load_exported

    m = load_exported(source, max_bytes=max_bytes)
    label = "model" if isinstance(source, (bytes, bytearray)) else Path(source).stem
    return ImportedModel(m, "pt2", m.input_shape, m.n_classes, label, None)


def model_io(loaded: Checkpoint | ImportedModel) -> tuple[tuple[int, ...], int]:
    """(one row's input shape, number of classes) of a loaded model, for checking user data."""
    if isinstance(loaded, ImportedModel):
        return loaded.input_shape, loaded.n_classes
    spec = loaded.spec
    return (tuple(spec.image_shape) if spec.image_shape else (spec.n_features,)), spec.n_classes
