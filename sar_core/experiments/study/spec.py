"""Study spec: a TOML file parsed (stdlib tomllib) into validated frozen dataclasses.

Every table accepts a fixed set of keys; an unknown key is a ValueError naming the key and where
it was found. Training settings map onto ``TrainConfig`` fields and fault settings onto
``FaultModel`` fields, both read from the dataclasses, so a field the library gains is accepted
here without a change. The reference of every key is docs/studies.md.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser as the tomli package
    import tomli as tomllib  # type: ignore[no-redef]

from sar_core import limits
from sar_core.experiments.study.spec_tables import (
    campaign_table,
    execution_table,
    report_table,
    sharpness_table,
    where_keys,
    wrap,
)
from sar_core.validate import check_choice, check_int

TOP_KEYS = (
    "name",
    "description",
    "seeds",
    "train",
    "methods",
    "tasks",
    "faults",
    "campaign",
    "sharpness",
    "report",
    "execution",
)
TASK_KEYS = (
    "name",
    "dataset",
    "arch",
    "widths",
    "activation",
    "data",
    "train",
    "methods",
    "faults",
)
MAX_SEEDS = 100


@dataclass(frozen=True)
class FaultPoint:
    """One fault model of a fault setting; ``level`` is the swept value (x of the BER curve)."""

    setting: str  # name of the fault setting
    level_key: str  # swept field ("ber", "count", ...) or the rate field of a single point
    level: float  # the swept value; its index when the swept values are not numbers
    label: str  # the swept value as text
    fault: dict  # FaultModel.to_dict()


@dataclass(frozen=True)
class MethodSpec:
    """A named training method: TrainConfig fields (seed excluded: it comes from ``seeds``)."""

    name: str
    config: dict


@dataclass(frozen=True)
class TaskSpec:
    """A dataset and an architecture; per-task training overrides and fault settings."""

    name: str
    dataset: str
    arch: str
    widths: tuple[int, ...] | None
    activation: str
    data: dict  # load_dataset keyword arguments (the split seed is the run seed)
    configs: dict  # method name -> TrainConfig fields after every override (seed excluded)
    faults: tuple[FaultPoint, ...]


@dataclass(frozen=True)
class StudySpec:
    """A validated study: tasks x methods x seeds, then campaigns at every fault point."""

    name: str
    description: str
    seeds: tuple[int, ...]
    methods: tuple[str, ...]  # method names in spec order; the first is the default reference
    tasks: tuple[TaskSpec, ...]
    trials: int
    campaign_seed: int
    add_run_seed: bool  # campaign seed of run seed s: campaign_seed + s (else campaign_seed)
    reference: str
    sharpness: dict  # measure, rho, samples
    report: dict | None  # the double-win report per task, seed and fault point (None: none)
    cpus_per_task: float
    max_retries: int
    text: str  # the TOML source, shown in the report


def _train_fields() -> tuple[str, ...]:
    from sar_core.training.loop import TrainConfig

    return tuple(f.name for f in fields(TrainConfig) if f.name != "seed")


def _train_overrides(table: Any, where: str, *, method_allowed: bool) -> dict:
    allowed = [k for k in _train_fields() if method_allowed or k != "method"]
    out = dict(where_keys(table, allowed, where))
    if out.get("fault_model") is not None:
        from sar_core.faults.model import FaultModel

        fm = wrap(f"{where}.fault_model", FaultModel.from_dict, _fault_table(out["fault_model"]))
        out["fault_model"] = fm.to_dict()
    return out


def check_config(cfg: dict, where: str) -> None:
    """Build the TrainConfig of merged settings once, so a bad value fails here, named."""
    from sar_core.faults.model import FaultModel
    from sar_core.training.loop import TrainConfig

    full = {**cfg, "seed": 0}
    if full.get("fault_model") is not None:
        full["fault_model"] = FaultModel.from_dict(full["fault_model"])
    wrap(where, lambda d: TrainConfig(**d), full)


def _fault_table(t: Any) -> dict:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in dict(t).items()}


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 80:
        raise ValueError(f"Invalid {where}={value!r}: must be a non-empty string of <= 80 chars")
    return value.strip()


def _seeds(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"Invalid seeds={value!r}: give a non-empty list of integers, e.g. [0, 1]")
    if len(value) > MAX_SEEDS:
        raise ValueError(f"Invalid seeds: {len(value)} seeds; at most {MAX_SEEDS}")
    seeds = tuple(check_int("seeds[i]", s, low=0, high=2**32 - 1) for s in value)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"Invalid seeds={list(seeds)}: seeds must be distinct")
    return seeds


def _methods(value: Any) -> list[MethodSpec]:
    if not isinstance(value, list) or not value:
        raise ValueError("Invalid methods: give at least one [[methods]] table with a 'method'")
    out = []
    for i, t in enumerate(value):
        where = f"methods[{i}]"
        t = dict(where_keys(t, ("name", *_train_fields()), where))
        if "method" not in t:
            raise ValueError(f"Invalid {where}: missing key 'method' (sgd, adam, sam, ...)")
        name = _name(t.pop("name", t["method"]), f"{where}.name")
        out.append(MethodSpec(name, _train_overrides(t, where, method_allowed=True)))
    names = [m.name for m in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"Invalid methods: name {sorted(dup)[0]!r} used twice; set 'name'")
    return out


def _level(value: Any, j: int) -> tuple[float, str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), f"{value:g}"
    return float(j), str(value)


def _fault_points(t: Any, where: str) -> list[FaultPoint]:
    from sar_core.faults.model import FaultModel

    allowed = ("name", "sweep", *[f.name for f in fields(FaultModel)])
    t = dict(where_keys(t, allowed, where))
    name = _name(t.pop("name", str(t.get("format", "float32"))), f"{where}.name")
    sweep = t.pop("sweep", None)
    base = _fault_table(t)
    if sweep is None:
        fm = wrap(where, FaultModel.from_dict, base)
        d = fm.to_dict()
        key = next((k for k in ("ber", "count") if d.get(k) is not None), "ber")
        return [FaultPoint(name, key, *_level(d.get(key), 0), d)]
    where_keys(sweep, allowed[2:], f"{where}.sweep")
    if not sweep:
        raise ValueError(f"Invalid {where}.sweep: empty; give e.g. sweep.ber = [0.01, 0.03]")
    lists = list(sweep.items())
    n = len(lists[0][1]) if isinstance(lists[0][1], list) else -1
    for k, v in lists:
        if not isinstance(v, list) or not v:
            raise ValueError(f"Invalid {where}.sweep.{k}={v!r}: empty grid; give a non-empty list")
        if len(v) != n:
            raise ValueError(f"Invalid {where}.sweep: lists of different lengths ({n}, {len(v)})")
    if n > limits.MAX_BER_POINTS:
        raise ValueError(f"Invalid {where}.sweep: {n} points; at most {limits.MAX_BER_POINTS}")
    points = []
    for j in range(n):
        point = {**base, **{k: v[j] for k, v in lists}}
        for k in ("ber", "count"):  # a swept rate replaces the base's other rate field
            if k not in sweep and k in base and any(s in ("ber", "count") for s in sweep):
                point.pop(k)
        fm = wrap(f"{where}.sweep[{j}]", FaultModel.from_dict, point)
        key = lists[0][0]
        points.append(FaultPoint(name, key, *_level(lists[0][1][j], j), fm.to_dict()))
    return points


def _faults(value: Any, where: str) -> tuple[FaultPoint, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"Invalid {where}: give at least one [[{where}]] table")
    points: list[FaultPoint] = []
    names: list[str] = []
    for i, t in enumerate(value):
        pts = _fault_points(t, f"{where}[{i}]")
        if pts[0].setting in names:
            raise ValueError(
                f"Invalid {where}[{i}].name={pts[0].setting!r}: used twice; give each setting "
                "its own name"
            )
        names.append(pts[0].setting)
        points += pts
    return tuple(points)


def _data_kwargs(t: Any, where: str) -> dict:
    from sar_core.data.datasets import load_dataset

    allowed = [
        p.name
        for p in inspect.signature(load_dataset).parameters.values()
        if p.kind is p.KEYWORD_ONLY and p.name != "seed"
    ]
    return dict(where_keys(t, allowed, where))


def _task(t: Any, i: int, methods: list[MethodSpec], train: dict, faults) -> TaskSpec:
    from sar_core.data.datasets import DATASETS
    from sar_core.data.models import ARCHS, ModelSpec

    where = f"tasks[{i}]"
    t = where_keys(t, TASK_KEYS, where)
    if "dataset" not in t:
        raise ValueError(f"Invalid {where}: missing key 'dataset' ({', '.join(DATASETS)})")
    dataset = wrap(where, check_choice, "dataset", t["dataset"], DATASETS)
    arch = wrap(where, check_choice, "arch", t.get("arch", "mlp"), ARCHS)
    widths = t.get("widths")
    if widths is not None:
        if not isinstance(widths, list):
            raise ValueError(f"Invalid {where}.widths={widths!r}: expected a list of integers")
        widths = tuple(widths)
    act = t.get("activation", "relu")
    shape = (1, 8, 8) if arch == "cnn" else None  # checks widths/activation, not the data
    dummy = dict(arch=arch, n_features=64, n_classes=10, activation=act, image_shape=shape)
    if arch in ("mlp", "cnn"):
        wrap(where, lambda d: ModelSpec(**d), {**dummy, **({"widths": widths} if widths else {})})
    name = _name(t.get("name", f"{dataset}-{arch}"), f"{where}.name")
    task_train = _train_overrides(t.get("train", {}), f"{where}.train", method_allowed=False)
    per_method = where_keys(t.get("methods", {}), [m.name for m in methods], f"{where}.methods")
    configs = {}
    for m in methods:
        over = _train_overrides(
            per_method.get(m.name, {}), f"{where}.methods.{m.name}", method_allowed=False
        )
        cfg = {**train, **task_train, **m.config, **over}
        check_config(cfg, f"{where} method {m.name!r}")
        configs[m.name] = cfg
    task_faults = _faults(t["faults"], f"{where}.faults") if "faults" in t else faults
    if task_faults is None:
        raise ValueError(f"Invalid {where}: no fault settings; add [[faults]] or tasks.faults")
    data = _data_kwargs(t.get("data", {}), f"{where}.data")
    return TaskSpec(name, dataset, arch, widths, act, data, configs, task_faults)


def parse_spec(text: str) -> StudySpec:
    """Parse and validate a study spec from TOML text; ValueError names the key and where."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"Invalid study spec: not valid TOML ({e})") from None
    where_keys(raw, TOP_KEYS, "the study spec (top level)")
    for key in ("name", "seeds", "methods", "tasks"):
        if key not in raw:
            raise ValueError(f"Invalid study spec: missing key {key!r} (see docs/studies.md)")
    name = _name(raw["name"], "name")
    seeds = _seeds(raw["seeds"])
    methods = _methods(raw["methods"])
    train = _train_overrides(raw.get("train", {}), "train", method_allowed=False)
    check_config(train, "train")
    for i, m in enumerate(methods):
        check_config({**train, **m.config}, f"methods[{i}] ({m.name})")
    faults = _faults(raw["faults"], "faults") if "faults" in raw else None
    if not isinstance(raw["tasks"], list) or not raw["tasks"]:
        raise ValueError("Invalid tasks: give at least one [[tasks]] table with a 'dataset'")
    tasks = tuple(_task(t, i, methods, train, faults) for i, t in enumerate(raw["tasks"]))
    tnames = [t.name for t in tasks]
    if len(set(tnames)) != len(tnames):
        raise ValueError(f"Invalid tasks: names {tnames} repeat; set 'name' on each task")
    mnames = tuple(m.name for m in methods)
    return StudySpec(
        name=name,
        description=str(raw.get("description", "")),
        seeds=seeds,
        methods=mnames,
        tasks=tasks,
        **campaign_table(raw.get("campaign", {}), mnames),
        sharpness=sharpness_table(raw.get("sharpness", {})),
        report=report_table(raw["report"], mnames) if "report" in raw else None,
        **execution_table(raw.get("execution", {})),
        text=text,
    )


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a study spec file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"Invalid spec path={str(path)[:200]!r}: cannot be read ({e})") from None
    return parse_spec(text)
