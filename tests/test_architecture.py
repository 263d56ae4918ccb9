"""Architecture rules, checked on the source (AST): the library never imports streamlit, never
prints, never seeds or draws from a global RNG, never unpickles, and never uses assert for input;
pages never import torch.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest
from conftest import ROOT

LIBRARY = sorted((ROOT / "sar_core").rglob("*.py"))
PAGES = sorted((ROOT / "app_pages").glob("*.py")) if (ROOT / "app_pages").is_dir() else []
UNPICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported(tree: ast.Module) -> set[str]:
    """Top-level names of every imported module (import a.b -> a; from a.b import c -> a)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            out.add(str(node.args[0].value).split(".")[0])
    return out


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def test_the_library_sources_are_found():
    names = {p.name for p in LIBRARY}
    assert {"bits.py", "model.py", "campaign.py", "io.py", "runtime.py"} <= names
    assert (ROOT / "sar_core" / "cli" / "__init__.py").is_file()


@pytest.mark.parametrize("path", LIBRARY, ids=_rel)
def test_library_never_imports_streamlit(path):
    assert "streamlit" not in _imported(_tree(path))


def test_pages_exist():
    assert PAGES, (
        "app_pages/ holds the dashboard pages; the torch rule below must have files to check"
    )


@pytest.mark.parametrize("path", PAGES, ids=_rel)
def test_pages_never_import_torch(path):
    assert not {"torch", "torchvision"} & _imported(_tree(path))


@pytest.mark.parametrize("path", LIBRARY, ids=_rel)
def test_library_never_unpickles(path):
    tree = _tree(path)
    assert not UNPICKLERS & _imported(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            assert name not in ("torch.load", "torch.serialization.load"), (
                f"{_rel(path)} calls {name}"
            )
            for kw in node.keywords:
                is_true = isinstance(kw.value, ast.Constant) and kw.value.value is True
                assert not (kw.arg == "allow_pickle" and is_true), (
                    f"{_rel(path)}: allow_pickle=True"
                )


@pytest.mark.parametrize("path", LIBRARY, ids=_rel)
def test_library_never_prints_or_asserts(path):
    for node in ast.walk(_tree(path)):
        assert not isinstance(node, ast.Assert), f"{_rel(path)}:{node.lineno} uses assert"
        if isinstance(node, ast.Call):
            assert _dotted(node.func) not in ("print", "logging.basicConfig"), (
                f"{_rel(path)}:{node.lineno} prints"
            )


GLOBAL_RNG = {
    "torch.manual_seed",
    "torch.seed",
    "torch.random.manual_seed",
    "torch.cuda.manual_seed",
    "torch.cuda.manual_seed_all",
    "np.random.seed",
    "numpy.random.seed",
    "random.seed",
    "torch.rand",
    "torch.randn",
    "torch.randint",
    "torch.randperm",
    "np.random.rand",
    "np.random.randn",
    "np.random.randint",
    "np.random.choice",
    "np.random.normal",
    "np.random.uniform",
    "np.random.permutation",
    "random.random",
    "random.choice",
}


def _uses_private_generator(node: ast.Call) -> bool:
    return any(kw.arg == "generator" for kw in node.keywords)


@pytest.mark.parametrize("path", LIBRARY, ids=_rel)
def test_library_uses_no_global_random_state(path):
    """Randomness is an argument: explicit generators, or a seed inside torch.random.fork_rng."""
    tree = _tree(path)
    forked: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(
            "fork_rng" in _dotted(item.context_expr.func)
            for item in node.items
            if isinstance(item.context_expr, ast.Call)
        ):
            forked |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _dotted(node.func) in GLOBAL_RNG:
            ok = id(node) in forked or _uses_private_generator(node)
            assert ok, f"{_rel(path)}:{node.lineno} uses the global RNG via {_dotted(node.func)}"
        if isinstance(node, ast.Call) and _dotted(node.func).endswith("random.default_rng"):
            assert node.args or node.keywords, f"{_rel(path)}:{node.lineno} default_rng() unseeded"


BAD_SNIPPETS = {
    "streamlit": (test_library_never_imports_streamlit, "import streamlit as st\n"),
    "streamlit_dynamic": (
        test_library_never_imports_streamlit,
        "import importlib\nst = importlib.import_module('streamlit')\n",
    ),
    "torch_in_page": (test_pages_never_import_torch, "from torch import nn\n"),
    "pickle": (test_library_never_unpickles, "import pickle\n"),
    "torch_load": (test_library_never_unpickles, "import torch\ntorch.load('m.pt')\n"),
    "allow_pickle": (
        test_library_never_unpickles,
        "import numpy as np\nnp.load('a', allow_pickle=True)\n",
    ),
    "print": (test_library_never_prints_or_asserts, "print('hello')\n"),
    "assert": (test_library_never_prints_or_asserts, "def f(x):\n    assert x > 0\n"),
    "global_seed": (
        test_library_uses_no_global_random_state,
        "import torch\ntorch.manual_seed(0)\n",
    ),
    "global_draw": (
        test_library_uses_no_global_random_state,
        "import numpy as np\nnp.random.rand(3)\n",
    ),
    "unseeded_rng": (
        test_library_uses_no_global_random_state,
        "import numpy as np\nrng = np.random.default_rng()\n",
    ),
}


@pytest.mark.parametrize("case", BAD_SNIPPETS)
def test_the_rules_catch_a_violation(tmp_path, case):
    check, source = BAD_SNIPPETS[case]
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(AssertionError):
        check(path)


def test_the_rules_accept_the_allowed_forms(tmp_path):
    path = tmp_path / "good.py"
    path.write_text(
        "import torch\nimport numpy as np\n"
        "with torch.random.fork_rng(devices=[]):\n    torch.manual_seed(0)\n"
        "g = torch.Generator().manual_seed(1)\nx = torch.randperm(4, generator=g)\n"
        "rng = np.random.default_rng(3)\n"
    )
    test_library_uses_no_global_random_state(path)
    test_library_never_prints_or_asserts(path)
    test_library_never_unpickles(path)


def test_guarantees_doc_cites_real_tests_and_the_real_caps():
    """docs/GUARANTEES.md stays true: every cited test exists, every cap matches limits.py."""
    import re

    from sar_core import limits

    doc = (ROOT / "docs" / "GUARANTEES.md").read_text(encoding="utf-8")
    refs = re.findall(r"`(tests/[\w/]+\.py)::(\w+)(?:\[([\w-]+)\])?`", doc)
    assert len(refs) >= 40
    for file, name, case in refs:
        path = ROOT / file
        assert path.is_file(), file
        tree = _tree(path)
        defined = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        assert name in defined, f"{file}::{name} is cited but not defined"
        if case:
            assert f'"{case}"' in path.read_text(encoding="utf-8"), f"{file}::{name}[{case}]"
    caps = dict(re.findall(r"\| `(MAX_\w+)`[^|]*\| (?:\d+ MiB \()?(\d+)", doc))
    public = {k: v for k, v in vars(limits).items() if k.startswith("MAX_")}
    assert set(caps) == set(public)
    for key, value in caps.items():
        assert int(value) == public[key], key


# Library modules that still set torch's threads themselves; each should call
# sar_core.runtime.configure_threads instead (reported to their owners); no file may join it.
THREADS_PENDING: set[str] = set()


def test_threads_are_set_in_one_place():
    """Only sar_core/runtime.py calls torch.set_num_threads (DESIGN rule 5), never at import."""
    callers = set()
    for path in LIBRARY:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and _dotted(node.func).endswith("set_num_threads"):
                callers.add(_rel(path))
    assert callers - THREADS_PENDING == {"sar_core/runtime.py"}
    runtime = _tree(ROOT / "sar_core" / "runtime.py")
    top_level_calls = [n for n in runtime.body if isinstance(n, ast.Expr)]
    assert all(isinstance(n.value, ast.Constant) for n in top_level_calls)  # docstring only


def test_cli_modules_import_nothing_heavy_at_module_level():
    """The command table's modules import torch & co. only inside run() (lazy start)."""
    # experiments.report imports only the standard library at module level (test_report checks it)
    light = {"sar_core.cli", "sar_core.names", "sar_core.limits", "sar_core.validate",
             "sar_core.experiments.report"}  # fmt: skip
    for path in sorted((ROOT / "sar_core" / "cli").glob("*.py")):
        for node in _tree(path).body:  # module level only
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                mods = [f"{base}.{a.name}" for a in node.names] if base == "sar_core" else [base]
            else:
                continue
            for m in mods:
                ok = not m.startswith("sar_core") or any(m.startswith(x) for x in light)
                ok = ok and m.split(".")[0] in {"sar_core", "argparse", "contextlib", "importlib",
                                                 "os", "sys", "time", "typing", "collections",
                                                 "__future__"}  # fmt: skip
                assert ok, f"{_rel(path)} imports {m} at module level"


# ---------------------------------------------------------------- the house: rooms and their order
# Each subpackage of sar_core is a room with one job; a room imports only rooms listed before it
# (DESIGN.md, "Architecture"). BASE modules are the foundation every room may use.
BASE = ("validate", "limits", "names", "runtime")
ROOMS = (
    "formats", "stats", "faults", "data", "engine", "analysis", "training", "plots",
    "experiments", "cli",
)  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sar_imports(path: Path) -> set[str]:
    """Every sar_core module a file imports, at module level or inside a function."""
    out = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("sar_core")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "sar_core":
                out |= {f"sar_core.{a.name}" for a in node.names}
            elif node.module.startswith("sar_core."):
                out.add(node.module)
    return out


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "sar_core" else None


def test_every_module_lives_in_a_room_or_the_base():
    for path in LIBRARY:
        room = _room(_module_name(path))
        assert room is None or room in ROOMS + BASE + ("__main__",), (
            f"{_rel(path)}: add its folder to ROOMS (and DESIGN.md) or move it into a room"
        )


def _upward(path: Path) -> list[str]:
    mod = _module_name(path)
    here = _room(mod)
    if here not in ROOMS:
        return []
    rank = ROOMS.index(here)
    bad = []
    for target in _sar_imports(path):
        there = _room(target)
        if there in BASE or there is None or there == here:
            continue
        if (
            there not in ROOMS or ROOMS.index(there) > rank
        ):  # a public name from sar_core itself: the package, not a room
            bad.append(target)
    return bad


@pytest.mark.parametrize("path", LIBRARY, ids=_rel)
def test_rooms_import_only_rooms_before_them(path):
    assert not _upward(path), f"{_rel(path)} imports upward: {_upward(path)}"


def test_there_is_no_import_cycle():
    """Module graph over every sar_core import (lazy ones included): no cycle."""
    known = {_module_name(p): p for p in LIBRARY}
    graph = {m: {t for t in _sar_imports(p) if t in known and t != m} for m, p in known.items()}
    graph = {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack, m, t]))
            if t not in state:
                visit(t, [*stack, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_the_room_rules_catch_violations(tmp_path, monkeypatch):
    """An upward import (faults -> analysis) is caught; a downward one is not."""
    room = ROOT / "sar_core" / "faults"
    bad = room / "_probe_upward.py"
    bad.write_text("from sar_core.analysis.campaign import compare\n")
    good = room / "_probe_down.py"
    good.write_text("from sar_core.formats.bits import flip_value\n")
    try:
        assert _upward(bad) == ["sar_core.analysis.campaign"]
        assert _upward(good) == []
    finally:
        bad.unlink()
        good.unlink()


# ---------------------------------------------------------------- module size
# STYLE.md point 1: a module that passes ~400 lines is asking to be split (one job per module).
MAX_MODULE_LINES = 400
SIZED = ("sar_core", "ui", "app_pages")


def _long_modules(paths) -> dict[str, int]:
    """{path: line count} of the files over MAX_MODULE_LINES lines."""
    counts = {_rel(p): len(p.read_text(encoding="utf-8").splitlines()) for p in paths}
    return {p: n for p, n in counts.items() if n > MAX_MODULE_LINES}


def test_no_module_passes_400_lines():
    """No .py file under sar_core/, ui/ or app_pages/ is longer than 400 lines."""
    paths = sorted(p for d in SIZED for p in (ROOT / d).rglob("*.py"))
    assert len(paths) > 50  # the folders were found
    long = _long_modules(paths)
    assert not long, (
        f"over {MAX_MODULE_LINES} lines (split by job, see STYLE.md point 1): "
        + ", ".join(f"{p} ({n})" for p, n in sorted(long.items()))
    )


def test_the_size_rule_counts_lines(tmp_path):
    """A file of 401 lines is caught, one of 400 is not."""
    ok, over = tmp_path / "ok.py", tmp_path / "over.py"
    ok.write_text("".join(f"x{i} = {i}\n" for i in range(400)))
    over.write_text("".join(f"x{i} = {i}\n" for i in range(401)))
    assert _long_modules([ok]) == {}
    assert _long_modules([over]) == {str(over): 401}
