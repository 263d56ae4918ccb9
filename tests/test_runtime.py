"""Threads chosen on purpose: sar_core.runtime picks torch's intra-op thread count (1 unless
$SAR_NUM_THREADS or an explicit value says otherwise), never as an import side effect; the CLI
applies it once per torch command and takes --threads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from sar_core import runtime

MLP = str(ROOT / "assets" / "digits_mlp_sgd.safetensors")


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_one_thread_env_and_argument_override(monkeypatch):
    monkeypatch.delenv(runtime.ENV_VAR, raising=False)
    assert runtime.resolve_threads() == runtime.DEFAULT_THREADS == 1
    monkeypatch.setenv(runtime.ENV_VAR, " 3 ")
    assert runtime.resolve_threads() == 3
    assert runtime.resolve_threads(2) == 2  # an explicit value beats the environment


@pytest.mark.parametrize(
    "env, n, needle",
    [
        ("two", None, "SAR_NUM_THREADS='two'"),
        ("0", None, "SAR_NUM_THREADS=0"),
        ("", 0, "threads=0"),
        ("", True, "threads=True"),
        ("", 1.5, "threads=1.5"),
        ("", 5000, "threads=5000"),
    ],
)
def test_bad_thread_counts_name_the_source_value_and_range(monkeypatch, env, n, needle):
    monkeypatch.setenv(runtime.ENV_VAR, env)
    with pytest.raises(ValueError, match="must be an integer in \\[1, 1024\\]") as e:
        runtime.resolve_threads(n)
    assert needle in str(e.value)


def test_configure_threads_sets_torch(monkeypatch, restore_threads):
    monkeypatch.delenv(runtime.ENV_VAR, raising=False)
    assert runtime.configure_threads(2) == 2 and torch.get_num_threads() == 2
    assert runtime.configure_threads() == 1 and torch.get_num_threads() == 1


def test_importing_the_library_leaves_torch_threads_alone():
    """No module of sar_core sets threads on import (3 is nobody's default)."""
    code = (
        "import pkgutil, importlib, torch; torch.set_num_threads(3)\n"
        "import sar_core\n"
        "for m in pkgutil.walk_packages(sar_core.__path__, 'sar_core.'):\n"
        "    if m.name != 'sar_core.__main__': importlib.import_module(m.name)\n"
        "print(torch.get_num_threads())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SAR_NUM_THREADS": "2"}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert p.stdout.decode().split() == ["3"]


def test_cli_applies_threads_once_per_torch_command(cli, monkeypatch, restore_threads):
    monkeypatch.delenv(runtime.ENV_VAR, raising=False)
    base = ("inject", "--model", MLP, "--count", "1", "--trials", "1", "--quiet", "--json")
    torch.set_num_threads(3)
    assert cli(*base)[0] == 0 and torch.get_num_threads() == 1  # the default, not torch's
    assert cli(*base, "--threads", "2")[0] == 0 and torch.get_num_threads() == 2
    monkeypatch.setenv(runtime.ENV_VAR, "2")
    torch.set_num_threads(1)
    assert cli(*base)[0] == 0 and torch.get_num_threads() == 2


@pytest.mark.parametrize(
    "extra, env, needle",
    [
        (["--threads", "0"], "", "threads=0"),
        (["--threads", "many"], "", "threads='many'"),
        ([], "lots", "SAR_NUM_THREADS='lots'"),
    ],
)
def test_cli_bad_threads_exit_2_one_line(cli, monkeypatch, extra, env, needle):
    monkeypatch.setenv(runtime.ENV_VAR, env)
    rc, out, err = cli("inject", "--model", MLP, "--count", "1", "--trials", "1", *extra)
    assert (rc, out) == (2, "") and err.count("\n") == 1 and needle in err, err


def test_flip_has_no_threads_option(cli):
    rc, _, err = cli("flip", "--format", "int8", "--value", "1", "--bit", "0", "--threads", "2")
    assert rc == 2 and "unrecognized arguments: --threads 2" in err
