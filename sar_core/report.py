"""The double-win report: per model, clean and deployed accuracy, accuracy under random faults,
flips the adversarial search needs, and the inference / training cost of getting there.

    python -m sar_core report --models F1 F2 ... --format F --bits B --ber P --trials T --seed S
        [--mitigations range,protect --base F] --json

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

import argparse
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MITIGATIONS = ("range", "protect")


@dataclass(frozen=True)
class AttackSettings:
    """Progressive bit search settings used for every row (see sar_core.attack)."""

    target_accuracy: float | None = None  # None: 1/K + 0.10
    max_flips: int = 1000
    batch_size: int = 128  # attack batch, drawn from the training split with the report seed
    candidates: int = 1  # exact evaluations per layer and iteration (Rakin et al.: 1)

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        return dict(self.__dict__)


def _attack(model, data, fm, settings: AttackSettings, seed: int, trials: int, bits=None) -> dict:
    from sar_core.attack import progressive_bit_search, random_flip_baseline

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
    from sar_core.bits import get_format

    return get_format(fmt).width


def _plain_twin(ck):
    """A plain model of the checkpoint's architecture holding its weights (the cost reference)."""
    from sar_core.models import build_model

    twin = build_model(ck.spec, 0)
    twin.load_state_dict(ck.model.state_dict())
    return twin.eval()


def _overhead(model, reference, n_features: int, X) -> dict:
    """Extra parameters/ops against the reference architecture, and the measured latency ratio."""
    import torch

    from sar_core.mitigations import inference_ops, latency_ratio
    from sar_core.models import n_parameters

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
    from sar_core.faults import parameter_shapes

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

    from sar_core.campaign import paired_difference, run_campaign
    from sar_core.faults import Injector
    from sar_core.mitigations import profile_bounds, range_restricted

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
    from sar_core.campaign import paired_difference
    from sar_core.faults import parameter_shapes
    from sar_core.mitigations import extra_bits, protected_campaign

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
    from sar_core.campaign import check_trials
    from sar_core.io import Checkpoint, check_same_data, dataset_of, load_checkpoint
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
    from sar_core.attack import check_attack_settings
    from sar_core.campaign import compare
    from sar_core.mitigations import default_protection

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


# ------------------------------------------------------------------ CLI adapter ---------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the report command (standard library only: --help stays fast)."""
    p.add_argument("--models", nargs="+", required=True, help="checkpoints (.safetensors)")
    p.add_argument("--format", default="int8", help="float32 | float16 | bfloat16 | int8")
    p.add_argument("--bits", default="all", help="0-7 | 30,31 | sign | exponent | ... | all")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--ber", default=None, help="bit error rate in (0, 1] (default 0.01)")
    rate.add_argument("--count", default=None, help="exact number of flips per trial")
    p.add_argument("--granularity", default="tensor", help="int8 scale: tensor | channel")
    p.add_argument("--trials", default="100", help="Monte Carlo trials")
    p.add_argument("--seed", default="0", help="fault patterns and attack batch")
    p.add_argument("--attack-target", default=None, help="accuracy to reach (default 1/K + 0.1)")
    p.add_argument("--attack-budget", default="1000", help="most flips the attack may use")
    p.add_argument("--attack-batch", default="128", help="attack batch size (training rows)")
    p.add_argument("--attack-candidates", default="1", help="exact evaluations per layer")
    p.add_argument(
        "--mitigations", default="", help="comma-separated: range, protect (rows on --base)"
    )
    p.add_argument("--base", default=None, help="model the mitigations apply to (default: SGD)")
    p.add_argument("--protect-bits", default=None, help="protected positions (default: sign/MSB)")
    p.add_argument("--protect-scheme", default="tmr", help="tmr | secded")
    p.add_argument("--secded-block", default="64", help="data bits per SECDED codeword")
    p.add_argument("--csv", default=None, help="CSV data for models trained on an uploaded CSV")
    for flag, helptext in (("--json", "print one JSON object"), ("--quiet", "no progress bar")):
        with contextlib.suppress(argparse.ArgumentError):  # the CLI's main may add it too
            p.add_argument(flag, action="store_true", help=helptext)


def _number(name: str, text, kind=float):
    try:
        return kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"Invalid {name}={text!r}: must be {what}") from None


def _settings(a: argparse.Namespace):
    """(fault model, trials, seed, attack settings, mitigations, protection) from the options."""
    from sar_core.faults import FaultModel
    from sar_core.mitigations import Protection, default_protection

    count = _number("count", a.count, int) if a.count is not None else None
    ber = _number("ber", a.ber) if a.ber is not None else (0.01 if count is None else None)
    fm = FaultModel(format=a.format, bits=a.bits, ber=ber, count=count, granularity=a.granularity)
    target = None if a.attack_target is None else _number("attack-target", a.attack_target)
    attack = AttackSettings(
        target_accuracy=target,
        max_flips=_number("attack-budget", a.attack_budget, int),
        batch_size=_number("attack-batch", a.attack_batch, int),
        candidates=_number("attack-candidates", a.attack_candidates, int),
    )
    from sar_core.attack import check_attack_settings

    check_attack_settings(**attack.to_dict())
    mits = tuple(m.strip() for m in a.mitigations.split(",") if m.strip())
    if a.protect_bits is None:
        prot = default_protection(fm.format, a.protect_scheme)
    else:
        prot = Protection(bits=a.protect_bits, scheme=a.protect_scheme)
    prot = Protection(prot.bits, prot.scheme, _number("secded-block", a.secded_block, int))
    prot.positions(fm.format)
    trials, seed = _number("trials", a.trials, int), _number("seed", a.seed, int)
    return fm, trials, seed, attack, mits, prot


def run(a: argparse.Namespace) -> dict:
    """The report command: every option is checked before any checkpoint is loaded."""
    fm, trials, seed, attack, mits, prot = _settings(a)
    base = None
    if a.base is not None:
        if a.base not in a.models:
            raise ValueError(f"Invalid base={a.base!r}: must be one of the --models paths")
        base = a.models.index(a.base)
    on_model = None
    if not getattr(a, "quiet", True):
        try:
            from sar_core.cli.common import Progress

            bar = Progress(len(a.models) + len(mits), "report", False)
            on_model = lambda done, total: bar(done)  # noqa: E731
        except ImportError:
            pass
    return double_win_report(
        a.models, fm, trials=trials, seed=seed, attack=attack, mitigations=mits, base=base,
        protection=prot, csv_path=a.csv, on_model=on_model,
    )  # fmt: skip
