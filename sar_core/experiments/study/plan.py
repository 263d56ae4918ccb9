"""Expand a study spec into tasks with a dependency graph; each task is named by a content hash.

Four kinds of task: ``train`` (one model: task x method x seed), ``sharpness`` (one number per
model), ``campaign`` (one model at one fault point; trial t uses the pattern of seed
[campaign seed, t], so every model of an architecture sees the same faults and paired
differences are formed afterwards from the per-trial accuracies) and, when the spec has a
``[report]`` table, ``report`` (the double-win report of all methods of a task and seed at one
fault point: ``sar_core.experiments.report.double_win_report``). A sharpness or campaign task
depends on its model's train task, a report task on the train tasks of every method. The key of
a task is the sha256 of everything that fixes its result: its inputs, its dependencies' keys, and
a fingerprint of the library code (every numeric room of sar_core, the study worker; for a
report task also sar_core/experiments/report.py) and of the torch and numpy versions. Two
studies that share a task share its cached result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from sar_core.experiments.study.spec import FaultPoint, StudySpec

SCHEMA = "sar-lab/study/1"
# the code a task's numbers depend on: every top-level module of sar_core (a change to any of
# them invalidates the cache: safe rather than clever) and the study worker


def content_hash(obj: dict) -> str:
    """sha256 of canonical JSON (sorted keys, non-finite floats as strings)."""
    from sar_core.data.io import dumps

    return hashlib.sha256(dumps(obj).encode()).hexdigest()


def code_version() -> str:
    """Fingerprint of the numeric library code and of torch / numpy versions."""
    import numpy
    import torch

    root = Path(__file__).resolve().parents[2]  # sar_core/
    h = hashlib.sha256(f"{SCHEMA} torch {torch.__version__} numpy {numpy.__version__}".encode())
    # every numeric room (the CLI, the plots and the study machinery itself change no number)
    skip = ("cli", "plots", "experiments")
    files = [p for p in sorted(root.rglob("*.py")) if p.relative_to(root).parts[0] not in skip]
    for p in [*files, root / "experiments" / "study" / "worker.py"]:
        h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


REPORT_CODE = "experiments/report.py"  # a report task's code besides code_version's


def report_code_version() -> str:
    """Fingerprint of the report module (a report task's key adds it to code_version)."""
    root = Path(__file__).resolve().parents[2]
    return hashlib.sha256((root / REPORT_CODE).read_bytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Task:
    """One unit of work: ``inputs`` fix its result, ``deps`` are train-task keys it needs."""

    key: str
    kind: str  # train | sharpness | campaign | report
    label: str
    inputs: dict = field(repr=False)
    deps: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelRef:
    """Where a trained model sits in the study grid."""

    task: str
    seed: int
    method: str
    key: str  # train task
    sharpness_key: str | None


@dataclass(frozen=True)
class CampaignRef:
    """One model at one fault point."""

    task: str
    seed: int
    method: str
    point: FaultPoint
    key: str  # campaign task
    model_key: str


@dataclass(frozen=True)
class ReportRef:
    """The double-win report of every method of a task and seed at one fault point."""

    task: str
    seed: int
    point: FaultPoint
    key: str  # report task
    model_keys: tuple[str, ...]  # train tasks: the reference method's, then spec method order


@dataclass
class Plan:
    """All tasks of a study (trains first), and the grid positions of models and campaigns."""

    spec: StudySpec
    code: str
    tasks: dict[str, Task] = field(default_factory=dict)
    models: list[ModelRef] = field(default_factory=list)
    campaigns: list[CampaignRef] = field(default_factory=list)
    reports: list[ReportRef] = field(default_factory=list)

    def add(self, kind: str, label: str, inputs: dict, deps: tuple[str, ...] = ()) -> str:
        """Add a task (once per key) and return its key."""
        key = content_hash({"schema": SCHEMA, "code": self.code, "kind": kind, **inputs})
        self.tasks.setdefault(key, Task(key, kind, label, inputs, deps))
        return key

    def count(self, kind: str) -> int:
        """Number of distinct tasks of a kind."""
        return sum(t.kind == kind for t in self.tasks.values())

    def ordered(self) -> list[Task]:
        """Tasks in an order where every dependency comes first."""
        rank = {"train": 0, "sharpness": 1, "campaign": 2, "report": 3}
        return sorted(self.tasks.values(), key=lambda t: rank[t.kind])


def data_inputs(task, seed: int) -> dict:
    """load_dataset arguments of a task at a seed (the split seed is the run seed)."""
    return {"name": task.dataset, "seed": seed, **task.data}


def train_config(cfg: dict, seed: int) -> dict:
    """TrainConfig.to_dict() of a method's settings at a seed (effective values filled in)."""
    from sar_core.faults.model import FaultModel
    from sar_core.training.loop import TrainConfig

    d = {**cfg, "seed": seed}
    if d.get("fault_model") is not None:
        d["fault_model"] = FaultModel.from_dict(d["fault_model"])
    return TrainConfig(**d).to_dict()


def campaign_seed(spec: StudySpec, seed: int) -> int:
    """Campaign seed of the models of run seed ``seed``."""
    return spec.campaign_seed + (seed if spec.add_run_seed else 0)


def make_plan(spec: StudySpec) -> Plan:
    """Expand a spec: train tasks, then sharpness and campaign tasks that depend on them."""
    plan = Plan(spec=spec, code=code_version())
    sh = spec.sharpness
    for t in spec.tasks:
        model = {"arch": t.arch, "widths": list(t.widths or []) or None, "activation": t.activation}
        for seed in spec.seeds:
            data = data_inputs(t, seed)
            for m in spec.methods:
                config = train_config(t.configs[m], seed)
                tk = plan.add(
                    "train",
                    f"train {t.name} seed {seed} {m}",
                    {"data": data, "model": model, "config": config},
                )
                sk = None
                if sh["measure"] != "none":
                    sk = plan.add(
                        "sharpness",
                        f"sharpness {t.name} seed {seed} {m}",
                        {"model": tk, "data": data, **sh, "seed": seed},
                        (tk,),
                    )
                plan.models.append(ModelRef(t.name, seed, m, tk, sk))
                for p in t.faults:
                    inputs = {
                        "model": tk,
                        "data": data,
                        "fault": p.fault,
                        "trials": spec.trials,
                        "seed": campaign_seed(spec, seed),
                    }
                    label = f"campaign {t.name} seed {seed} {m} {p.setting} {p.label}"
                    ck = plan.add("campaign", label, inputs, (tk,))
                    plan.campaigns.append(CampaignRef(t.name, seed, m, p, ck, tk))
            if spec.report is not None:
                _add_reports(plan, t, seed, data)
    return plan


def _add_reports(plan: Plan, t, seed: int, data: dict) -> None:
    """One report task per fault point of a task at a seed, over every method's model."""
    spec = plan.spec
    models = {m.method: m.key for m in plan.models if m.task == t.name and m.seed == seed}
    # the report pairs every model against its first: the reference
    names = [spec.reference] + [m for m in spec.methods if m != spec.reference]
    keys = tuple(models[n] for n in names)
    code = report_code_version()
    for p in t.faults:
        inputs = {
            "models": list(keys),
            "methods": names,
            "data": data,
            "fault": p.fault,
            "trials": spec.trials,
            "seed": campaign_seed(spec, seed),
            "report": spec.report,
            "report_code": code,
        }
        label = f"report {t.name} seed {seed} {p.setting} {p.label}"
        key = plan.add("report", label, inputs, keys)
        plan.reports.append(ReportRef(t.name, seed, p, key, keys))


def describe(plan: Plan) -> dict:
    """Counts of the plan (JSON-friendly)."""
    return {
        "tasks": len(plan.tasks),
        **{kind: plan.count(kind) for kind in ("train", "sharpness", "campaign", "report")},
        "code_version": plan.code,
    }


def canonical(obj) -> str:
    """The JSON text hashed for a task (for debugging a cache miss)."""
    from sar_core.data.io import jsonable

    return json.dumps(jsonable(obj), sort_keys=True)
