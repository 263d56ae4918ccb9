"""Studies on a real Ray cluster, reached both ways the README documents.

A head is started by ``ray start --head --block`` on free ports, with its own HOME holding a fresh
token (``ray get-auth-token --generate``: with a token in ~/.ray, which any local ``ray.init()``
leaves behind, ``ray start --head`` turns token authentication on), and stopped by the fixture.
The README's two cluster lines run as CLI subprocesses:

- ``--address auto`` on a cluster machine (same HOME: the token file is found; the same
  ``RAY_TMPDIR``: "auto" finds this head, not another Ray instance running on the machine);
- ``--address ray://HOST:PORT`` (Ray Client) and ``--address HOST:PORT`` (the GCS address) from
  "elsewhere": a HOME without a token file, the token given in ``RAY_AUTH_TOKEN`` as the README
  says.

Both must write the same tables as the local executor on the same spec.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from test_study import _same, _tables  # the study tests' table comparison, one copy

from sar_core.experiments.study.run import run_study

ROOT = Path(__file__).resolve().parents[1]
SPEC = """
name = "cluster"
seeds = [0]
[train]
epochs = 1
[[methods]]
method = "sgd"
[[tasks]]
dataset = "moons"
widths = [8]
data = { n_samples = 200 }
[[faults]]
name = "int8"
format = "int8"
sweep.ber = [0.01, 0.05]
[campaign]
trials = 6
seed = 3
[sharpness]
samples = 16
"""
N_TASKS = 1 + 1 + 2  # train, sharpness, two campaigns

pytestmark = pytest.mark.slow


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.25)
    pytest.fail(f"the Ray head did not open port {port} within {timeout} s")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RAY_AUTH") and k not in ("RAY_ADDRESS", "RAY_TMPDIR", "HOME")
    }
    env.update(HOME=str(home), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    return env


@pytest.fixture(scope="module")
def head():
    """A one-CPU Ray head on free ports, its HOME holding the token; stopped afterwards."""
    base = Path(tempfile.mkdtemp(prefix="rayt", dir="/tmp"))  # short: Ray's socket paths
    home, tmp = base / "home", base / "t"
    home.mkdir()
    tmp.mkdir()
    gcs, client, agent, metrics = _free_ports(4)
    log = base / "head.log"
    ray_cli = (sys.executable, "-m", "ray.scripts.scripts")
    subprocess.run(
        [*ray_cli, "get-auth-token", "--generate"],
        env=_env(home),
        check=True,
        capture_output=True,
        timeout=60,
    )
    cmd = [
        *(*ray_cli, "start", "--head", "--block"),
        *("--node-ip-address", "127.0.0.1", "--port", str(gcs)),
        *("--ray-client-server-port", str(client), "--dashboard-agent-listen-port", str(agent)),
        *("--metrics-export-port", str(metrics), "--num-cpus", "1"),
        *("--include-dashboard", "false", "--disable-usage-stats"),
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd,
            env=_env(home, RAY_TMPDIR=str(tmp)),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_port(gcs, proc, log)
        _wait_port(client, proc, log)
        assert "Token authentication is enabled" in log.read_text(), log.read_text()[-2000:]
        yield {
            "client": f"ray://127.0.0.1:{client}",
            "gcs": f"127.0.0.1:{gcs}",
            "home": home,
            "tmp": tmp,
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # --block: ray start stops its processes on SIGTERM
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("spec") / "cluster.toml"
    p.write_text(SPEC)
    return p


@pytest.fixture(scope="module")
def reference(spec_path, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ref")
    res = run_study(spec_path, out, executor="local", workers=1)
    assert res["failed"] == {} and res["ran"] == N_TASKS
    return _tables(out)


def _study(spec: Path, out: Path, address: str, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "sar_core", "study", "--quiet", "run", str(spec)]
    cmd += ["--out", str(out), "--executor", "ray", "--address", address]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_address_auto_on_a_cluster_machine(head, spec_path, reference, tmp_path):
    env = _env(head["home"], RAY_TMPDIR=str(head["tmp"]))
    r = _study(spec_path, tmp_path / "out", "auto", env)
    assert r.returncode == 0, r.stderr[-3000:]
    _same(reference, _tables(tmp_path / "out"))


@pytest.mark.parametrize("way", ["client", "gcs"])
def test_explicit_address_from_elsewhere_with_the_token(way, head, spec_path, reference, tmp_path):
    """ray://HOST:PORT (Ray Client) and HOST:PORT (the GCS address), token in RAY_AUTH_TOKEN."""
    elsewhere = tmp_path / "home"  # no ~/.ray/auth_token here
    elsewhere.mkdir()
    token = (head["home"] / ".ray" / "auth_token").read_text().strip()
    r = _study(spec_path, tmp_path / "out", head[way], _env(elsewhere, RAY_AUTH_TOKEN=token))
    assert r.returncode == 0, r.stderr[-3000:]
    _same(reference, _tables(tmp_path / "out"))
