"""What a worker process runs for one task: train, sharpness, campaign, report.

Every function takes the task's inputs, its dataset and (for sharpness / campaign) the model's
checkpoint bytes (for a report: every method's, reference first), and returns JSON-friendly
data; all randomness comes from the inputs' seeds, so a task gives the same numbers in any
process, on any executor. Workers run torch on one thread (``init_worker``): the models are
small, and one thread per task is what makes the numbers independent of the number of workers.
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np

from sar_core.runtime import configure_threads


def init_worker() -> None:
    """Per-process setup: one torch intra-op thread; Ctrl-C is the driver's to handle."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_threads(1)


@lru_cache(maxsize=64)  # (dataset, seed) pairs of a study; each is small
def _data(key: str):
    import json

    from sar_core.data.datasets import load_dataset

    d = json.loads(key)
    return load_dataset(d.pop("name"), **d)


def load_data(data: dict):
    """The dataset of a task (loaded once per process)."""
    import json

    return _data(json.dumps(data, sort_keys=True))


def train_task(inputs: dict, data) -> tuple[dict, bytes]:
    """Train one model: (result, safetensors checkpoint bytes)."""
    from sar_core.data.io import checkpoint_bytes
    from sar_core.training.loop import TrainConfig, divergence_message, spec_for, train

    configure_threads(1)
    m = inputs["model"]
    widths = tuple(m["widths"]) if m["widths"] else None
    spec = spec_for(data, m["arch"], widths, m["activation"])
    cfg = TrainConfig.from_dict(inputs["config"])
    res = train(spec, data, cfg, device="cpu")
    why = divergence_message(res)
    if why is not None:
        raise ValueError(why)
    meta = res.metadata(data)
    result = {
        "clean_accuracy": res.clean_accuracy,
        "test_loss": res.history[-1]["test_loss"] if res.history else float("nan"),
        "epochs": len(res.history),
        "train_seconds": res.train_seconds,
        "n_params": int(sum(p.numel() for p in res.model.parameters())),
        "history": res.history,
        "spec": spec.to_dict(),
    }
    return result, checkpoint_bytes(res.model, spec, meta)


def _model(ckpt: bytes):
    from sar_core.data.io import load_checkpoint

    return load_checkpoint(ckpt).model


def sharpness_task(inputs: dict, data, ckpt: bytes) -> dict:
    """One sharpness measure of a model on the first ``samples`` training rows."""
    from sar_core.analysis import sharpness as S
    from sar_core.engine.evaluate import as_tensors

    configure_threads(1)
    t0 = time.perf_counter()
    model = _model(ckpt)
    n = inputs["samples"]
    X, y = as_tensors(data.X_train[:n], data.y_train[:n], "cpu")
    measure, rho, seed = inputs["measure"], inputs["rho"], inputs["seed"]
    if measure in ("sam", "asam"):
        value = S.sam_sharpness(model, X, y, rho=rho, adaptive=measure == "asam")
    elif measure == "avg":
        value = S.average_sharpness(model, X, y, rho=rho, seed=seed)["mean"]
    elif measure == "lambda_max":
        value = S.hessian_eigenvalues(model, X, y, k=1, seed=seed)[0]
    else:
        value = S.hessian_trace(model, X, y, seed=seed)["mean"]
    return {"measure": measure, "value": float(value), "seconds": time.perf_counter() - t0}


def campaign_task(inputs: dict, data, ckpt: bytes) -> dict:
    """Monte Carlo campaign of one model at one fault point: summary and per-trial outcomes."""
    from sar_core.analysis.campaign import run_campaign
    from sar_core.faults.model import FaultModel

    configure_threads(1)
    t0 = time.perf_counter()
    fm = FaultModel.from_dict(inputs["fault"])
    res = run_campaign(
        _model(ckpt), data.X_test, data.y_test, fm, trials=inputs["trials"], seed=inputs["seed"]
    )
    s = res.summary()
    keep = ("clean_accuracy", "deployed_accuracy", "mean_accuracy", "std", "ci95", "trials")
    out = {k: s[k] for k in keep}
    out.update({k: s[k] for k in ("mean_flips", "mean_changed_bits", "n_sites") if k in s})
    out["n_test"] = int(len(data.y_test))
    out["accuracy"] = [float(a) for a in res.accuracy]
    out["loss"] = [float(v) for v in res.loss]
    out["flips"] = [int(f) for f in np.asarray(res.flips).tolist()]
    out["seconds"] = time.perf_counter() - t0
    return out


def report_task(inputs: dict, data, ckpts) -> dict:
    """The double-win report (``sar_core.experiments.report``) on every method's model of one
    task and seed at one fault point; the reference's model comes first (the report pairs every
    model against its first). Trials and seed are the spec's campaign trials and run seed's."""
    from sar_core.data.io import load_checkpoint
    from sar_core.experiments.report import AttackSettings, ReportOptions, double_win_report
    from sar_core.faults.model import FaultModel

    configure_threads(1)
    t0 = time.perf_counter()
    settings, names = inputs["report"], list(inputs["methods"])
    opts = ReportOptions(
        trials=inputs["trials"],
        seed=inputs["seed"],
        attack=AttackSettings(**settings["attack"]),
        mitigations=tuple(settings["mitigations"]),
        base=None if settings["base"] is None else names.index(settings["base"]),
    )
    cks = [load_checkpoint(b) for b in ckpts]
    fm = FaultModel.from_dict(inputs["fault"])
    rep = double_win_report(cks, fm, opts, data=data, names=names)
    rep["seconds"] = time.perf_counter() - t0
    return rep


def run_task(kind: str, inputs: dict, ckpt, data=None):
    """Dispatch one task (the local pool's entry point; the dataset is loaded here if not given).

    ``ckpt``: the model's checkpoint bytes; for a report, the list of every method's."""
    data = data if data is not None else load_data(inputs["data"])
    if kind == "train":
        return train_task(inputs, data)
    if kind == "sharpness":
        return sharpness_task(inputs, data, ckpt), None
    if kind == "report":
        return report_task(inputs, data, ckpt), None
    return campaign_task(inputs, data, ckpt), None
