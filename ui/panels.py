"""The "Your models" panel: this session's models with download / remove, and the uploader."""

from __future__ import annotations

import re

import pandas as pd
import streamlit as st

from sar_core import limits
from ui import registry

UPLOAD_STATE = "sar_upload_status"  # session_state: uploader file_id -> ("ok" | "error", text)


def handle_upload(raw: bytes, filename: str) -> tuple[str, str]:
    """Register uploaded checkpoint bytes: ("ok", model name), ("same", name of the identical
    model already loaded) or ("error", the library's message)."""
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
    up = st.file_uploader(
        "Upload a SAR Lab checkpoint (.safetensors)",
        type=["safetensors"],
        key=key,
        max_upload_size=max(1, limits.MAX_UPLOAD_BYTES // (1024 * 1024)),
        help="Files downloaded from this page (or saved by `python -m sar_core train`).",
    )
    if up is None:
        return
    status = st.session_state.setdefault(UPLOAD_STATE, {})
    if up.file_id not in status:  # handle each uploaded file once, remember the outcome
        status[up.file_id] = handle_upload(up.getvalue(), up.name)
    kind, text = status[up.file_id]
    if kind == "ok":
        st.success(f"Loaded **{text}**; it is now selectable on every page.")
    elif kind == "same":
        st.info(f"This file is already loaded as **{text}**.")
    else:
        st.error(f"Could not load {up.name}: {text}", icon=":material/error:")


def models_panel() -> None:
    """Table of this session's models, a download button and a remove button for each."""
    mine = registry.user_entries()
    if not mine:
        st.info("No models of your own yet: train some above or upload a checkpoint.")
        return
    st.dataframe(
        pd.DataFrame([e.describe() for e in mine.values()]),
        hide_index=True,
        key="my_models_table",
        column_config={
            "clean accuracy": st.column_config.NumberColumn(format="percent"),
        },
    )
    for i, (name, e) in enumerate(list(mine.items())):
        c1, c2, c3 = st.columns([4, 2, 1], vertical_alignment="center")
        c1.markdown(f"**{name}**")
        c2.download_button(
            "Download .safetensors",
            e.loaded.data,
            file_name=f"{file_slug(name)}.safetensors",
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
