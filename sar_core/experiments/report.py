"""The double-win report: per model, clean and deployed accuracy, accuracy under random faults,
flips the adversarial search needs, and the inference / training cost of getting there.

The CLI adapter is ``sar_core.cli.report`` (``python -m sar_core report ...``).

``rows`` holds one row per model (in --models order): path, method, clean_accuracy,
deployed_accuracy, fault_accuracy, fault_ci95 [lo, hi], attack_flips (progressive bit search on
int8 until accuracy <= chance + 10 points; null when the budget ran out first), extra_bits,
extra_params, extra_ops (structural: the model against a plain model of its architecture),
latency_ratio (measured inference time / a plain model of the same architecture), and
train_cost_ratio (training seconds / those of an SGD model of the same data and architecture in
the same report, from checkpoint metadata; else null). ``mitigations`` holds optional rows for
range restriction and protected bits applied to a base model, each with its overhead.
Models of one architecture are hit by identical fault patterns (paired); the module imports
only the standard library until ``run``/``double_win_report`` are called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

MITIGATIONS = ("range", "protect")


@dataclass(frozen=True)
class AttackSettings:
    """Progressive bit search settings used for every row (see sar_core.analysis.attack)."""

    target_accuracy: float | None = None  # None: 1/K + 0.10
    max_flips: int = 1000
    batch_size: int = 128  # attack batch, drawn from the training split with the report seed
    candidates: int = 1  # exact evaluations per layer and iteration (Rakin et al.: 1)

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return dict(self.__dict__)


def _attack(model, data, fm, settings: AttackSettings, seed: int, trials: int, bits=None) -> dict:
    from sar_core.analysis.attack import progressive_bit_search, random_flip_baseline

    r = progressive_bit_search(
        model,
        data.X_train,
        data.y_train,
        data.X_test,
        data.y_test,
        target_accuracy=settings.target_accuracy,
        max_flips=settings.max_flips,
        batch_size=settings.batch_size,
        candidates=settings.candidates,
        bits=bits,
        granularity=fm.granularity,
        seed=seed,
    )
    out = {k: v for k, v in r.to_dict().items() if k not in ("sites", "loss", "fault_model")}
    if r.flips:
        rand = random_flip_baseline(
            model, data.X_test, data.y_test, r.flips, trials=trials, seed=seed, bits=bits,
            granularity=fm.granularity,
        )  # fmt: skip
        out["random_same_flips"] = {k: rand[k] for k in ("mean_accuracy", "ci95", "trials")}
    return out


def _width(fmt: str) -> int:
    from sar_core.formats.bits import get_format

    return get_format(fmt).width


def _plain_twin(ck):
    """A plain model of the checkpoint's architecture holding its weights (the cost reference)."""
    from sar_core.data.models import build_model

    twin = build_model(ck.spec, 0)
    twin.load_state_dict(ck.model.state_dict())
    return twin.eval()


def _overhead(model, reference, n_features: int, X) -> dict:
    """Extra parameters/ops against the reference architecture, and the measured latency ratio."""
    import torch

    from sar_core.analysis.mitigations import inference_ops, latency_ratio
    from sar_core.data.models import n_parameters

    ops, ref_ops = inference_ops(model, n_features), inference_ops(reference, n_features)
    with torch.no_grad():
        lat = latency_ratio(lambda: model(X), lambda: reference(X))
    return {
        "extra_params": n_parameters(model) - n_parameters(reference),
        "extra_ops": ops["macs"] + ops["clamp_ops"] - ref_ops["macs"] - ref_ops["clamp_ops"],
        "base_macs": ref_ops["macs"],
        "latency_ratio": lat,
    }


def _train_cost_ratio(ck, cks) -> float | None:
    def key(c):
        cfg = c.meta.get("config", {})
        d = c.meta["dataset"]
        return (d.get("name"), d.get("seed"), c.spec.to_dict().__repr__(), cfg.get("epochs"))

    sgd = [c for c in cks if c.method == "sgd" and key(c) == key(ck)]
    mine = ck.meta.get("metrics", {}).get("train_seconds")
    base = sgd[0].meta.get("metrics", {}).get("train_seconds") if sgd else None
    if not isinstance(mine, (int, float)) or not isinstance(base, (int, float)) or base <= 0:
        return None
    return float(mine) / float(base)


def _groups(cks) -> list[list[int]]:
    """Indices of models with identical parameter shapes (one paired campaign each)."""
    from sar_core.faults.model import parameter_shapes

    groups: dict[str, list[int]] = {}
    for i, ck in enumerate(cks):
        groups.setdefault(repr(parameter_shapes(ck.model)), []).append(i)
    return list(groups.values())


def _row(path, ck, res, cks, data, fm, settings, trials, seed) -> dict:
    import torch

    X = torch.as_tensor(data.X_test)
    s = res.summary()
    attack = _attack(ck.model, data, fm, settings, seed, trials)
    cost = _overhead(ck.model, _plain_twin(ck), data.n_features, X)
    return {
        "path": str(path),
        "method": ck.method,
        "clean_accuracy": s["clean_accuracy"],
        "deployed_accuracy": s["deployed_accuracy"],
        "fault_accuracy": s["mean_accuracy"],
        "fault_ci95": s["ci95"],
        "attack_flips": attack["flips"] if attack["reached"] else None,
        "extra_bits": cost["extra_params"] * _width(fm.format),
        **cost,
        "train_cost_ratio": _train_cost_ratio(ck, cks),
        "attack": attack,
        "_result": res,
    }


def _range_row(base: dict, ck, data, fm, settings, trials, seed) -> dict:
    import torch

    from sar_core.analysis.campaign import paired_difference, run_campaign
    from sar_core.analysis.mitigations import profile_bounds, range_restricted
    from sar_core.faults.injector import Injector

    # bounds profiled with the deployed weights: clean deployed predictions on the profiling
    # data are unchanged by construction
    bounds = profile_bounds(ck.model, data.X_train, Injector(ck.model, fm).deployed())
    rr = range_restricted(ck.model, bounds)
    res = run_campaign(rr, data.X_test, data.y_test, fm, trials=trials, seed=seed)
    s = res.summary()
    cost = _overhead(rr, ck.model, data.n_features, torch.as_tensor(data.X_test))
    attack = _attack(rr, data, fm, settings, seed, trials)
    return {
        "mitigation": "range",
        "path": base["path"],
        "method": f"{ck.method}+range",
        "clean_accuracy": s["clean_accuracy"],
        "deployed_accuracy": s["deployed_accuracy"],
        "fault_accuracy": s["mean_accuracy"],
        "fault_ci95": s["ci95"],
        "paired_difference": paired_difference(base["_result"], res),
        "attack_flips": attack["flips"] if attack["reached"] else None,
        "extra_bits": 32 * 2 * len(bounds.layers),  # float32 [low, high] per clamped layer
        **cost,
        "extra_params": 0,  # the bounds are constants (counted in extra_bits), not parameters
        "train_cost_ratio": base["train_cost_ratio"],
        "bounds": bounds.to_dict(),
        "attack": attack,
    }


def _protect_row(base: dict, ck, data, fm, protection, settings, trials, seed) -> dict:
    from sar_core.analysis.campaign import paired_difference
    from sar_core.analysis.mitigations import extra_bits, protected_campaign
    from sar_core.faults.model import parameter_shapes

    res = protected_campaign(
        ck.model, data.X_test, data.y_test, fm, protection, trials=trials, seed=seed
    )
    s = res.summary()
    attack, flips = None, None
    free = [b for b in range(8) if b not in protection.positions(fm.format)]
    if fm.format == "int8" and free:  # the attacker avoids bits a correcting code would undo
        attack = _attack(ck.model, data, fm, settings, seed, trials, bits=free)
        flips = attack["flips"] if attack["reached"] else None
    return {
        "mitigation": "protect",
        "path": base["path"],
        "method": f"{ck.method}+{protection.scheme}",
        "clean_accuracy": s["clean_accuracy"],
        "deployed_accuracy": s["deployed_accuracy"],
        "fault_accuracy": s["mean_accuracy"],
        "fault_ci95": s["ci95"],
        "paired_difference": paired_difference(base["_result"], res),
        "attack_flips": flips,
        "extra_bits": extra_bits(parameter_shapes(ck.model), fm, protection),
        "extra_params": 0,
        "extra_ops": 0,
        "base_macs": base["base_macs"],
        "attack_note": None
        if attack
        else "the attack flips int8 bits; this protection is not int8",
        "latency_ratio": None,  # decoding happens in the memory path, not in the model
        "latency_note": "ECC/TMR decoding happens in the memory path; not measured in software",
        "train_cost_ratio": base["train_cost_ratio"],
        "protection": {**protection.to_dict(), "positions": list(protection.positions(fm.format))},
        "attack": attack,
    }


def _inputs(models, trials, seed, mitigations, base, csv_path):
    """Validated trials and seed, display paths, loaded checkpoints, and their shared data."""
    from sar_core.analysis.campaign import check_trials
    from sar_core.data.io import Checkpoint, check_same_data, dataset_of, load_checkpoint
    from sar_core.validate import check_choice, check_int

    trials = check_trials(trials)
    seed = check_int("seed", seed, low=0, high=2**63 - 1)
    for m in mitigations:
        check_choice("mitigations", m, MITIGATIONS)
    if not models:
        raise ValueError("Invalid models=[]: give at least one checkpoint")
    paths = [m if not isinstance(m, Checkpoint) else f"<model {i}>" for i, m in enumerate(models)]
    cks = [m if isinstance(m, Checkpoint) else load_checkpoint(m) for m in models]
    if base is not None:
        check_int("base", base, low=0, high=len(cks) - 1)
    check_same_data([str(p) for p in paths], cks)
    return trials, seed, paths, cks, dataset_of(cks[0], csv_path)


def double_win_report(
    models: Sequence,
    fault_model,
    *,
    trials: int = 100,
    seed: int = 0,
    attack: AttackSettings | None = None,
    mitigations: Sequence[str] = (),
    base: int | None = None,
    protection=None,
    csv_path: str | None = None,
    on_model: Callable[[int, int], None] | None = None,
) -> dict:
    """The double-win table for checkpoints (paths or io.Checkpoint objects) on one fault model.

    ``base`` indexes the model the mitigations are applied to (default: the first SGD model,
    else the first model); ``protection`` defaults to mitigations.default_protection(format).
    ``on_model(done, total)`` reports progress.
    """
    from sar_core.analysis.attack import check_attack_settings
    from sar_core.analysis.campaign import compare
    from sar_core.analysis.mitigations import default_protection

    settings = attack or AttackSettings()
    check_attack_settings(**settings.to_dict())
    trials, seed, paths, cks, data = _inputs(models, trials, seed, mitigations, base, csv_path)
    rows: list[dict] = [{} for _ in cks]
    done = 0
    for group in _groups(cks):
        res = compare(
            [cks[i].model for i in group], data.X_test, data.y_test, fault_model,
            trials=trials, seed=seed,
        )["results"]  # fmt: skip
        for i, r in zip(group, res):
            rows[i] = _row(paths[i], cks[i], r, cks, data, fault_model, settings, trials, seed)
            done += 1
            if on_model is not None:
                on_model(done, len(cks) + len(mitigations))
    b = base if base is not None else next((i for i, c in enumerate(cks) if c.method == "sgd"), 0)
    prot = protection or default_protection(fault_model.format)
    extra = []
    for m in mitigations:
        args = (rows[b], cks[b], data, fault_model)
        if m == "range":
            extra.append(_range_row(*args, settings, trials, seed))
        else:
            extra.append(_protect_row(*args, prot, settings, trials, seed))
        done += 1
        if on_model is not None:
            on_model(done, len(cks) + len(mitigations))
    for r in rows:
        r.pop("_result")
    return {
        "rows": rows,
        "mitigations": extra,
        "mitigation_base": paths[b] if mitigations else None,
        "fault_model": fault_model.to_dict(),
        "trials": trials,
        "seed": seed,
        "attack_settings": settings.to_dict(),
        "dataset": data.describe(),
    }


def double_win_rows(models: Sequence, fault_model, *, trials: int = 100, seed: int = 0, **kw):
    """Just the per-model rows of ``double_win_report``."""
    return double_win_report(models, fault_model, trials=trials, seed=seed, **kw)["rows"]
