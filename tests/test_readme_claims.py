"""Every generated README block equals what scripts/results_table.py computes from its result file.

The README's suite tables, verdict counts, stated targets (met / MISSED with their numbers) and
the Double-win table sit between ``<!-- generated:NAME -->`` markers; this test fails as soon as a
number there no longer matches benchmarks/results/suite.json or double_win.json.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location(
        "results_table", ROOT / "scripts" / "results_table.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_blocks_match_their_result_files(script):
    text = (ROOT / "README.md").read_text()
    fresh = script.blocks()
    found = {m["name"] for m in script.BLOCK.finditer(text)}
    assert {"suite-protocol", "suite-int8", "suite-claims", "double-win"} <= found
    assert {"double-win-protocol", "double-win-claims"} <= found
    assert found <= set(fresh)
    assert script.readme_diff(text, fresh) == []


@pytest.mark.parametrize("block", ["suite-int8", "double-win", "double-win-claims"])
def test_a_drifted_number_is_caught(script, block):
    text = (ROOT / "README.md").read_text()
    fresh = script.blocks()
    m = next(m for m in script.BLOCK.finditer(text) if m["name"] == block)
    body = m["body"]
    i = next(k for k, ch in enumerate(body) if ch.isdigit())
    bumped = body[:i] + str((int(body[i]) + 1) % 10) + body[i + 1 :]
    drifted = text.replace(body, bumped, 1)
    assert script.readme_diff(drifted, fresh) == [block]
    assert script.readme_diff(script.rewrite(drifted, fresh), fresh) == []
