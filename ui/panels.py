"""The "Your models" panel: this session's models with download / remove, and the uploader."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from sar_core import limits
from ui import byom, registry

UPLOAD_STATE = "sar_upload_status"  # session_state: upload key -> (kind, text, file name)


def handle_upload(raw: bytes, filename: str) -> tuple[str, str]:
    """Register uploaded checkpoint bytes: ("ok", model name), ("same", name of the identical
    model already loaded) or ("error", the library's message)."""
    if filename.lower().endswith(".onnx"):
        return "error", (
            "an ONNX model is evaluated on your own data: upload it together with a data file "
            "on the Your model page"
        )
    digest = registry.digest_of(raw)
    same = next((e.name for e in registry.user_entries().values() if e.key == digest), None)
    if same is not None:
        return "same", same
    try:
        entry = registry.add_upload(raw, filename)
    except ValueError as e:
        return "error", str(e)
    return "ok", entry.name


def file_slug(name: str) -> str:
    """A file name for a model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def upload_box(*, key: str = "upload") -> None:
    """File uploader for SAR Lab checkpoints; invalid files give an st.error, nothing else.

    Call it before ``models_panel``: the upload is registered in this run, so the table below
    already lists it (drawn after it, the table was one upload behind).
    """
    mb = max(1, limits.MAX_UPLOAD_BYTES // (1024 * 1024))
    up = st.file_uploader(
        "Upload a SAR Lab checkpoint (.safetensors)",
        type=["safetensors", "onnx"],  # an .onnx gets a message naming it (not a silent refusal)
        key=key,
        # the Your model page's limit: an .onnx of any size it takes reaches the message here
        max_upload_size=max(mb, limits.MAX_MODEL_BYTES // (1024 * 1024)),
        help=f"Files downloaded from this page (or saved by `python -m sar_core train`), up to "
        f"{mb} MB. An ONNX model is measured on your own data: upload it with its data on the "
        "*Your model* page.",
    )
    if up is None:
        return
    kind, text, name = _outcome(up, lambda raw: handle_upload(raw, up.name))
    if kind == "ok":
        st.success(f"Loaded **{text}**; it is now selectable on every page.")
    elif kind == "same":
        st.info(f"This file is already loaded as **{text}**.")
    else:
        st.error(f"Could not load {name}: {text}", icon=":material/error:")


def upload_key(file_id: str, name: str, raw: bytes) -> str:
    """One key per uploaded file: its upload id, name and content (never a previous file's)."""
    return f"{file_id}|{name}|{registry.digest_of(raw)}"


def _outcome(up, handle) -> tuple[str, str, str]:
    """(kind, text, the file's name) of an upload, handled once and remembered under its own key.

    Issue 17: after a rejected upload the error named the previous file. The outcome is now
    stored with the name of the file it belongs to, keyed by upload id, name and content, so a
    message can only name the file whose outcome it reports.
    """
    raw = up.getvalue()
    key = upload_key(up.file_id, up.name, raw)
    status = st.session_state.setdefault(UPLOAD_STATE, {})
    if key not in status:
        kind, text = handle(raw)
        status[key] = (kind, text, up.name)
    return status[key]


def imported_upload_box() -> None:
    """Uploaders for an .onnx model and its data (.npz / .csv); registered once both are valid."""
    c1, c2 = st.columns(2)
    mb = max(1, limits.MAX_MODEL_BYTES // (1024 * 1024))
    model = c1.file_uploader(
        "Your model (.onnx)",
        type=["onnx"],
        key="byom_model",
        max_upload_size=mb,
        help="Exported with torch.onnx.export, tf2onnx, or quantized by onnxruntime (QDQ int8). "
        "Self-contained files only (no external data).",
    )
    data = c2.file_uploader(
        "Your data (.npz with X and y, or CSV with the label last)",
        type=["npz", "csv"],
        key="byom_data",
        max_upload_size=max(1, limits.MAX_DATA_BYTES // (1024 * 1024)),
        help="X: one row per sample, in the shape the model takes (or flattened); y: class "
        "indices 0..K-1. Used as given: no scaling.",
    )
    if model is None or data is None:
        st.info("Upload a model and a data file to measure and fine-tune your own network.")
        return

    def handle(_pair: bytes) -> tuple[str, str]:
        try:
            entry = registry.add_imported(model.getvalue(), model.name, data.getvalue(), data.name)
        except ValueError as e:
            return "error", str(e)
        return "ok", entry.name

    pair = _PairUpload(model, data)
    kind, text, name = _outcome(pair, handle)
    if kind == "ok":
        st.success(f"Loaded **{text}**; it is now selectable on every page.")
    else:
        st.error(f"Could not load {name}: {text}", icon=":material/error:")


class _PairUpload:
    """A model upload and a data upload seen as one (its outcome depends on both files)."""

    def __init__(self, model, data) -> None:
        self.model, self.data = model, data
        self.file_id = f"{model.file_id}+{data.file_id}"
        self.name = f"{model.name} with {data.name}"

    def getvalue(self) -> bytes:
        return self.model.getvalue() + b"\0" + self.data.getvalue()


CLEAN_HELP = (
    "accuracy without faults, as trained: on the dataset's test split; an uploaded ONNX model: "
    "on all rows of your data; a fine-tuned one: on the 20% held-out rows"
)


def models_frame(entries) -> pd.DataFrame:
    """One row per model as a table shows it: epochs, rho and clean accuracy as text, empty
    where a model has none (the grid draws a null cell as "None" whatever a Styler says)."""
    rows = []
    for e in entries:
        row = e.describe()
        if e.imported:  # known once measured: computed on the uploaded data (cached)
            row["clean accuracy"] = byom.clean_accuracy(e)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col, fmt in (("rho", "{:g}"), ("epochs", "{:.0f}"), ("clean accuracy", "{:.2%}")):
        frame[col] = [fmt.format(v) if v is not None and v == v else "" for v in frame[col]]
    return frame


def models_table(entries, *, key: str) -> None:
    """The model table (``models_frame``) with its column help."""
    st.dataframe(
        models_frame(entries),
        hide_index=True,
        key=key,
        column_config={
            "clean accuracy": st.column_config.TextColumn(help=CLEAN_HELP),
            "rho": st.column_config.TextColumn("ρ", help="the training radius (SAM-family)"),
        },
    )


def file_name(name: str, entry) -> str:
    """The download's file name: .onnx for an imported model, else .safetensors."""
    return f"{file_slug(name)}.{'onnx' if entry.imported else 'safetensors'}"


def models_panel() -> None:
    """Table of this session's models, a download button and a remove button for each."""
    mine = registry.user_entries()
    if not mine:
        st.info("No models of your own yet: train some above or upload a checkpoint.")
        return
    models_table(list(mine.values()), key="my_models_table")
    for i, (name, e) in enumerate(list(mine.items())):
        c1, c2, c3 = st.columns([4, 2, 1], vertical_alignment="center")
        c1.markdown(f"**{name}**")
        fname = file_name(name, e)
        c2.download_button(
            f"Download .{fname.rsplit('.', 1)[1]}",
            e.loaded.data,
            file_name=fname,
            mime="application/octet-stream",
            key=f"dl_{i}_{e.key}",
            on_click="ignore",
            icon=":material/download:",
        )
        c3.button(
            "Remove",
            key=f"rm_{i}_{e.key}",
            on_click=registry.remove,
            args=(name,),
            icon=":material/delete:",
        )
