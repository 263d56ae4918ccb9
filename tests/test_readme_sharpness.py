"""The README's sharpness table is the one scripts/demo_sharpness_table.py prints from its result
files (a number that drifts from its file fails here)."""

from __future__ import annotations

import importlib.util

from conftest import ROOT


def test_readme_sharpness_table_matches_its_result_files():
    spec = importlib.util.spec_from_file_location(
        "demo_sharpness_table", ROOT / "scripts" / "demo_sharpness_table.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    table = mod.table()
    assert table.count("\n") == 7 and "vs" in table
    assert table in (ROOT / "README.md").read_text(encoding="utf-8")
