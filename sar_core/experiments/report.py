"""The double-win report: per model, clean and deployed accuracy, accuracy under random faults,
flips the adversarial search needs, and the inference / training cost of getting there.

The CLI adapter is ``sar_core.cli.report`` (``python -m sar_core report ...``). The columns are
defined once, in ``sar_core.analysis.robustness`` (the dashboard's Robustness page uses the same):

``rows`` holds one row per model (in --models order): path, method, clean_accuracy,
deployed_accuracy, fault_accuracy, fault_ci95 [lo, hi], paired_difference (from the first model
of the same architecture: mean, ci95, n, verdict), attack_flips (progressive bit search on int8
until accuracy <= chance + 10 points; null when the budget ran out first), parameters,
extra_bits, extra_params, extra_ops, base_macs (structural: the model against a plain model of
its architecture), latency_ms and latency_ratio (measured, interleaved against that plain model),
and train_cost_ratio (training seconds / those of an SGD model of the same data, architecture
and epochs in the same report, from checkpoint metadata; else null). ``mitigations`` holds
optional rows for range restriction and protected bits applied to a base model, each with its
overhead and its paired difference from the base model. Models of one architecture are hit by
identical fault patterns (paired); the module imports only the standard library until
``double_win_report`` is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

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


def _model_rows(paths, cks, data, fm, opts, on_model) -> list[dict]:
    """The library's double-win rows (sar_core.analysis.robustness) plus path and attack."""
    from sar_core.analysis.robustness import double_win_rows

    rows = double_win_rows(
        cks, data.X_test, data.y_test, fm, trials=opts.trials, seed=opts.seed, on_model=on_model
    )
    out = []
    for path, ck, row in zip(paths, cks, rows):
        attack = _attack(ck.model, data, fm, opts.attack, opts.seed, opts.trials)
        flips = attack["flips"] if attack["reached"] else None
        out.append({"path": str(path), **row, "attack_flips": flips, "attack": attack})
    return out


def _range_row(ctx: _Context, base: dict, base_res) -> dict:
    import torch

    from sar_core.analysis.campaign import run_campaign
    from sar_core.analysis.mitigations import profile_bounds, range_restricted
    from sar_core.analysis.robustness import fault_columns, inference_cost
    from sar_core.faults.injector import Injector

    ck, data, fm, opts = ctx.base_ck, ctx.data, ctx.fm, ctx.opts
    # bounds profiled with the deployed weights: clean deployed predictions on the profiling
    # data are unchanged by construction
    bounds = profile_bounds(ck.model, data.X_train, Injector(ck.model, fm).deployed())
    rr = range_restricted(ck.model, bounds)
    res = run_campaign(rr, data.X_test, data.y_test, fm, trials=opts.trials, seed=opts.seed)
    attack = _attack(rr, data, fm, opts.attack, opts.seed, opts.trials)
    return {
        "mitigation": "range",
        "path": base["path"],
        "method": f"{ck.method}+range",
        **fault_columns(res, base_res),
        "attack_flips": attack["flips"] if attack["reached"] else None,
        "extra_bits": 32 * 2 * len(bounds.layers),  # float32 [low, high] per clamped layer
        **inference_cost(rr, ck.model, torch.as_tensor(data.X_test)),
        "extra_params": 0,  # the bounds are constants (counted in extra_bits), not parameters
        "train_cost_ratio": base["train_cost_ratio"],
        "bounds": bounds.to_dict(),
        "attack": attack,
    }


def _protect_row(ctx: _Context, base: dict, base_res) -> dict:
    from sar_core.analysis.mitigations import extra_bits, protected_campaign
    from sar_core.analysis.robustness import fault_columns
    from sar_core.faults.model import parameter_shapes

    ck, data, fm, opts, protection = ctx.base_ck, ctx.data, ctx.fm, ctx.opts, ctx.protection
    res = protected_campaign(
        ck.model, data.X_test, data.y_test, fm, protection, trials=opts.trials, seed=opts.seed
    )
    attack, flips = None, None
    free = [b for b in range(8) if b not in protection.positions(fm.format)]
    if fm.format == "int8" and free:  # the attacker avoids bits a correcting code would undo
        attack = _attack(ck.model, data, fm, opts.attack, opts.seed, opts.trials, bits=free)
        flips = attack["flips"] if attack["reached"] else None
    return {
        "mitigation": "protect",
        "path": base["path"],
        "method": f"{ck.method}+{protection.scheme}",
        **fault_columns(res, base_res),
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


@dataclass(frozen=True)
class ReportOptions:
    """Everything a double-win report is run with besides the models and the fault model."""

    trials: int = 100  # Monte Carlo trials per model (paired within an architecture)
    seed: int = 0  # fault patterns and the attack batch
    attack: AttackSettings = AttackSettings()
    mitigations: tuple[str, ...] = ()  # rows on the base model: "range", "protect"
    base: int | None = None  # index of the mitigations' model (None: first SGD, else first)
    protection: object = None  # mitigations.Protection (None: default_protection(format))
    csv_path: str | None = None  # data of models trained on an uploaded CSV

    def checked(self, n_models: int) -> ReportOptions:
        """Validated options (ValueError naming the parameter)."""
        from sar_core.analysis.attack import check_attack_settings
        from sar_core.analysis.campaign import check_trials
        from sar_core.validate import check_choice, check_int

        for m in self.mitigations:
            check_choice("mitigations", m, MITIGATIONS)
        if self.base is not None:
            check_int("base", self.base, low=0, high=max(n_models - 1, 0))
        check_attack_settings(**self.attack.to_dict())
        return replace(
            self,
            trials=check_trials(self.trials),
            seed=check_int("seed", self.seed, low=0, high=2**63 - 1),
            mitigations=tuple(self.mitigations),
        )


@dataclass(frozen=True)
class _Context:
    """What a mitigation row needs: the base checkpoint, data, fault model, options."""

    base_ck: object
    data: object
    fm: object
    opts: ReportOptions
    protection: object


def _checkpoints(models: Sequence, csv_path, data=None, names=None):
    """Display paths, loaded models and their shared data.

    ``models``: paths or loaded models (io.Checkpoint, or io.ImportedModel with ``data``, the
    Dataset they are all evaluated on); ``names``: their display paths.
    """
    from sar_core.data.io import (
        Checkpoint,
        ImportedModel,
        check_same_data,
        dataset_of,
        load_checkpoint,
    )

    if not models:
        raise ValueError("Invalid models=[]: give at least one checkpoint")
    loaded = (Checkpoint, ImportedModel)
    paths = [m if not isinstance(m, loaded) else f"<model {i}>" for i, m in enumerate(models)]
    if names is not None:
        if len(names) != len(models):
            raise ValueError(f"Invalid names: {len(names)} names for {len(models)} models")
        paths = [str(n) for n in names]
    cks = [m if isinstance(m, loaded) else load_checkpoint(m) for m in models]
    if data is not None:  # the caller's data file: every model is evaluated on it
        return paths, cks, data
    if any(isinstance(c, ImportedModel) for c in cks):
        raise ValueError(
            "Invalid data=None: an imported model (.onnx / .pt2) needs data (--data FILE)"
        )
    check_same_data([str(p) for p in paths], cks)
    return paths, cks, dataset_of(cks[0], csv_path)


def _check_stored_codes(paths, cks, fault_model) -> None:
    """A quantized (QDQ) model takes only faults that hit its stored int8 codes."""
    for path, ck in zip(paths, cks):
        if getattr(ck.model, "quantized", None):
            from sar_core.data.onnx_fault_check import check_fault_model

            try:
                check_fault_model(ck.model, fault_model)
            except ValueError as e:
                raise ValueError(f"{path}: {e}") from None


def double_win_report(
    models: Sequence,
    fault_model,
    options: ReportOptions | None = None,
    *,
    on_model: Callable[[int, int], None] | None = None,
    data=None,
    names: Sequence[str] | None = None,
    **fields,
) -> dict:
    """The double-win table for models (paths, io.Checkpoint or io.ImportedModel objects) on one
    fault model.

    ``options`` (or its fields as keywords: trials, seed, attack, mitigations, base, protection,
    csv_path) as in ``ReportOptions``. ``data``: the Dataset every model is evaluated on (needed
    for imported models; default: the checkpoints' own split); ``names``: the rows' paths.
    ``on_model(done, total)`` reports progress.
    """
    from sar_core.analysis.campaign import run_campaign
    from sar_core.analysis.mitigations import default_protection

    if fields.get("attack") is None:
        fields.pop("attack", None)
    opts = replace(options or ReportOptions(), **fields).checked(len(models))
    paths, cks, data = _checkpoints(models, opts.csv_path, data, names)
    _check_stored_codes(paths, cks, fault_model)
    total = len(cks) + len(opts.mitigations)
    progress = None if on_model is None else (lambda done, _: on_model(done, total))
    rows = _model_rows(paths, cks, data, fault_model, opts, progress)
    sgd = next((i for i, c in enumerate(cks) if c.method == "sgd"), 0)
    b = opts.base if opts.base is not None else sgd
    extra = []
    if opts.mitigations:
        prot = opts.protection or default_protection(fault_model.format)
        ctx = _Context(cks[b], data, fault_model, opts, prot)
        base_res = run_campaign(  # the base model's own trials (pairing does not change them)
            cks[b].model, data.X_test, data.y_test, fault_model, trials=opts.trials, seed=opts.seed
        )
        for i, m in enumerate(opts.mitigations):
            make = _range_row if m == "range" else _protect_row
            extra.append(make(ctx, rows[b], base_res))
            if on_model is not None:
                on_model(len(cks) + i + 1, total)
    return {
        "rows": rows,
        "mitigations": extra,
        "mitigation_base": paths[b] if opts.mitigations else None,
        "fault_model": fault_model.to_dict(),
        "trials": opts.trials,
        "seed": opts.seed,
        "attack_settings": opts.attack.to_dict(),
        "dataset": data.describe(),
    }


def double_win_rows(models: Sequence, fault_model, *, trials: int = 100, seed: int = 0, **kw):
    """Just the per-model rows of ``double_win_report``."""
    return double_win_report(models, fault_model, trials=trials, seed=seed, **kw)["rows"]
