"""The study directory: task results stored under their content hash, written atomically.

Layout of DIR::

    cache/<kind>/<key>.json        one finished task: {"key", "kind", "label", "inputs", "result"}
    checkpoints/<key>.safetensors  the model of a finished train task
    completions.log                one line "<kind> <key> <run id>" per task stored
    runs.jsonl                     one line per `study run`: command, executor, versions, times
    spec.toml                      the spec of the last run

A result file appears only complete (temporary file, fsync, rename), and a train task's
checkpoint is stored before its result, so a task whose result file exists is finished, and a
run killed at any instant leaves only finished tasks behind. Only the driver writes here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from sar_core.experiments.study.plan import Task

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def numbers(v):
    """A stored value with its non-finite floats back as floats (JSON keeps them as strings)."""
    if isinstance(v, str) and v in ("nan", "inf", "-inf"):
        return float(v)
    if isinstance(v, list):
        return [numbers(x) for x in v]
    if isinstance(v, dict):
        return {k: numbers(x) for k, x in v.items()}
    return v


class Store:
    """Content-addressed results of one study directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(
                f"Invalid out={str(root)!r}: cannot create it ({e.strerror})"
            ) from None
        if not self.root.is_dir():
            raise ValueError(f"Invalid out={str(root)!r}: not a directory")

    def result_path(self, kind: str, key: str) -> Path:
        """Where a task's result lives."""
        return self.root / "cache" / kind / f"{key}.json"

    def checkpoint_path(self, key: str) -> Path:
        """Where a train task's model lives."""
        return self.root / "checkpoints" / f"{key}.safetensors"

    def has(self, task: Task) -> bool:
        """Whether the task has finished (its result is stored)."""
        return self.result_path(task.kind, task.key).is_file()

    def load(self, task: Task) -> dict:
        """The stored result of a finished task."""
        return json.loads(self.result_path(task.kind, task.key).read_text())["result"]

    def read_checkpoint(self, key: str) -> bytes:
        """Checkpoint bytes of a finished train task."""
        return self.checkpoint_path(key).read_bytes()

    def save(self, task: Task, result: dict, checkpoint: bytes | None, run_id: str) -> None:
        """Store a finished task (checkpoint first, then the result), then log the completion."""
        from sar_core.data.io import dumps

        if checkpoint is not None:
            atomic_write(self.checkpoint_path(task.key), checkpoint)
        record = {
            "key": task.key,
            "kind": task.kind,
            "label": task.label,
            "inputs": task.inputs,
            "result": result,
        }
        atomic_write(self.result_path(task.kind, task.key), dumps(record).encode())
        with open(self.root / "completions.log", "a", encoding="utf-8") as f:
            f.write(f"{task.kind} {task.key} {run_id}\n")

    def completions(self) -> list[tuple[str, str, str]]:
        """(kind, key, run id) of every task stored, in order (a task stored twice shows twice)."""
        p = self.root / "completions.log"
        if not p.is_file():
            return []
        lines = p.read_text(encoding="utf-8").splitlines()
        return [tuple(line.split()) for line in lines if len(line.split()) == 3]  # type: ignore[misc]

    def append_run(self, record: dict) -> None:
        """Record one invocation (the report lists the exact commands)."""
        from sar_core.data.io import dumps

        with open(self.root / "runs.jsonl", "a", encoding="utf-8") as f:
            f.write(dumps(record) + "\n")

    def runs(self) -> list[dict]:
        """Every recorded invocation."""
        p = self.root / "runs.jsonl"
        if not p.is_file():
            return []
        out = []
        for line in p.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: skip it
                continue
        return out
