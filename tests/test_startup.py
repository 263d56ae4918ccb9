"""Instant start: --help, every command's --help and flip import no torch / scipy / sklearn /
pandas (checked in a fresh process); the lazy package exposes the same public names; the
light choice lists in sar_core.names equal the implementing modules' own."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

HEAVY = ("torch", "scipy", "sklearn", "pandas", "safetensors", "pyarrow")

# Runs argv through the CLI in this process, then prints which heavy modules got imported.
PROBE = """
import json, sys
from sar_core.cli import main
rc = main(sys.argv[1:])
sys.stdout.flush()
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {heavy!r})
sys.stderr.write("\\nPROBE " + json.dumps({{"rc": rc, "heavy": heavy}}) + "\\n")
"""


def _probe(*argv: str) -> tuple[dict, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = PROBE.format(heavy=set(HEAVY))
    p = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    lines = [s for s in p.stderr.splitlines() if s.startswith("PROBE ")]
    assert lines, p.stderr[-2000:]
    line = lines[-1]
    return json.loads(line[len("PROBE ") :]), p.stdout, p.stderr


def _commands() -> list[str]:
    from sar_core.cli import COMMANDS

    return list(COMMANDS)


def test_top_level_help_imports_nothing_heavy():
    res, out, _ = _probe("--help")
    assert res == {"rc": 0, "heavy": []}
    for name in _commands():
        assert name in out


@pytest.mark.parametrize("command", _commands())
def test_every_command_help_imports_nothing_heavy(command):
    res, out, _ = _probe(command, "--help")
    assert res == {"rc": 0, "heavy": []}, res
    assert f"python -m sar_core {command}" in out and "--json" in out


def test_flip_imports_only_numpy_and_matches_a_numpy_bit_view():
    import numpy as np

    res, out, _ = _probe("flip", "--format", "float32", "--value", "0.1", "--bit", "30", "--json")
    assert res == {"rc": 0, "heavy": []}, res
    want = (np.array([0.1], np.float32).view(np.uint32) ^ np.uint32(1 << 30)).view(np.float32)
    assert json.loads(out)["value_after"] == float(want[0])


def test_a_torch_command_does_import_torch():
    """The probe can fail: a command that needs torch shows it in sys.modules."""
    res, _, err = _probe("inject", "--model", "assets/digits_mlp_sgd.safetensors", "--count", "1",
                    "--trials", "1", "--quiet")  # fmt: skip
    assert res["rc"] == 0 and "torch" in res["heavy"], (res, err)


def test_import_sar_core_is_lazy_and_keeps_its_public_names():
    code = (
        "import sys, sar_core; heavy = [m for m in sys.modules if m.split('.')[0] in "
        f"{set(HEAVY)!r}]; print(heavy, sorted(sar_core.__all__) == sorted(set(dir(sar_core)) & "
        "set(sar_core.__all__)))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True)
    assert p.stdout.decode().split() == ["[]", "True"], p.stderr.decode()


def test_lazy_names_are_the_real_objects():
    import sar_core
    from sar_core.analysis.campaign import compare
    from sar_core.engine.evaluate import evaluate
    from sar_core.faults.model import FaultModel

    assert sar_core.compare is compare and sar_core.FaultModel is FaultModel
    assert sar_core.evaluate is evaluate  # the function, not the submodule of the same name
    for name in sar_core.__all__:
        assert getattr(sar_core, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sar_core.nope  # noqa: B018


def test_choice_lists_are_defined_once_in_names():
    """The implementing modules use sar_core.names' own tuples (the same objects), and no library
    module spells one of them out again."""
    import ast

    from sar_core import names
    from sar_core.data import datasets as data
    from sar_core.data import models
    from sar_core.faults import model as faults
    from sar_core.formats import bits
    from sar_core.training import config as train_config
    from sar_core.training import optim

    assert data.DATASETS is names.DATASETS and models.ARCHS is names.ARCHS
    assert train_config.METHODS is names.METHODS and train_config.TARGETED is names.TARGETED
    assert optim.GEOMETRIES is names.GEOMETRIES and optim.SAR_GEOMETRIES is names.SAR_GEOMETRIES
    assert bits.FORMAT_NAMES is names.FORMAT_NAMES
    assert faults.KINDS is names.FAULT_KINDS and faults.TARGETS is names.FAULT_TARGETS
    literal = {tuple(getattr(names, k)) for k in dir(names) if isinstance(getattr(names, k), tuple)}
    for path in sorted((ROOT / "sar_core").rglob("*.py")):
        if path.name == "names.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
                try:
                    value = ast.literal_eval(node.value)
                    hash(value)
                except (ValueError, TypeError):
                    continue
                assert not isinstance(value, tuple) or value not in literal, (
                    f"{path}:{node.lineno} repeats a sar_core.names tuple"
                )
