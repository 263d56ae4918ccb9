"""Stage 1 of the task suite, on the tuning seeds: targets fixed by rule, tuned entries chosen.

``prepare_task`` trains SGD per tuning seed, fixes each target's BER (``fix_target``: the smallest
grid BER at which SGD loses >= 5 points) and picks each tuned entry's value (``tune_task``).
"""

from __future__ import annotations

import time

import numpy as np

from sar_core.analysis.campaign import compare
from sar_core.experiments.suite_config import (
    TARGETED,
    TARGETS,
    TASKS,
    TUNED,
    WIDTHS,
    SuiteConfig,
    target_model,
)


def _load(task: str, seed: int):
    from sar_core.data.datasets import load_dataset
    from sar_core.training.loop import spec_for

    dataset, arch = TASKS[task]
    data = load_dataset(dataset, seed=seed)
    return data, spec_for(data, arch, widths=WIDTHS[arch])


def _train(task: str, seed: int, cfg: SuiteConfig, method: str, params: dict, target=None):
    """Train one model at the suite's shared settings plus ``params`` (TrainConfig fields)."""
    from sar_core.training.loop import TrainConfig, train

    data, spec = _load(task, seed)
    kw: dict = dict(method=method, epochs=cfg.epochs, lr=cfg.lr, seed=seed, **params)
    if method in TARGETED:
        kw["fault_model"] = target
    res = train(spec, data, TrainConfig(**kw), device="cpu")
    return res.model, res.clean_accuracy, data


def fix_target(task: str, cfg: SuiteConfig, sgd_models: dict, target: str) -> dict:
    """The smallest grid BER at which SGD loses >= 5 points (mean over tuning seeds)."""
    grid = cfg.f16_grid if TARGETS[target][0] == "float16" else cfg.int8_grid
    rows = []
    for ber in grid:
        losses = []
        for model, clean, data in sgd_models.values():
            fm = target_model(target, ber)
            res = compare([model], data.X_test, data.y_test, fm, trials=cfg.trials_target, seed=7)
            losses.append(100 * (clean - res["results"][0].summary()["mean_accuracy"]))
        rows.append([ber, float(np.mean(losses))])
        if rows[-1][1] >= 5:
            break
    ber, loss = rows[-1]
    return {"ber": ber, "sgd_loss_pt": loss, "in_band": 5 <= loss <= 30, "grid_losses": rows}


def tune_task(task: str, cfg: SuiteConfig, targets: dict, sgd_models: dict) -> tuple[dict, list]:
    """Choose each tuned entry's value on the tuning seeds (mean accuracy at the int8 target)."""
    fm = target_model("int8", targets["int8"]["ber"])
    selected: dict = {}
    rows: list = []
    for name in cfg.tuned:
        method, param, _ = TUNED[name]
        values = cfg.grids[name]
        scores = np.zeros(len(values))
        for seed, (_, _, data) in sgd_models.items():
            trained = [_train(task, seed, cfg, method, {param: v}, fm) for v in values]
            res = compare(
                [t[0] for t in trained],
                data.X_test,
                data.y_test,
                fm,
                trials=cfg.trials_tune,
                seed=100 + seed,
            )["results"]
            for k, (v, t, r) in enumerate(zip(values, trained, res)):
                acc = r.summary()["mean_accuracy"]
                scores[k] += acc / len(sgd_models)
                rows.append(
                    {
                        "method": name,
                        "params": {param: v},
                        "seed": seed,
                        "clean": t[1],
                        "robust": acc,
                    }
                )
        selected[name] = {param: values[int(np.argmax(scores))]}
    return selected, rows


def prepare_task(task: str, cfg: SuiteConfig) -> dict:
    """Stage 1 of a task on the tuning seeds: targets by rule, tuned entries' values."""
    t0 = time.perf_counter()
    sgd = {s: _train(task, s, cfg, "sgd", {}) for s in cfg.tuning_seeds}
    targets = {t: fix_target(task, cfg, sgd, t) for t in cfg.targets}
    selected, tuning = tune_task(task, cfg, targets, sgd)
    data = next(iter(sgd.values()))[2]
    n_test = int(len(data.y_test))
    return {
        "task": task,
        "dataset": TASKS[task][0],
        "arch": TASKS[task][1],
        "n_train": int(len(data.y_train)),
        "n_test": n_test,
        "pt_per_sample": 100.0 / n_test,
        "targets": targets,
        "selected": selected,
        "tuning": tuning,
        "seconds_tuning": time.perf_counter() - t0,
    }
