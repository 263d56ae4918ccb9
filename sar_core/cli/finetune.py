"""finetune: fine-tune the user's own model for bit-flip robustness and write it in its own format.

    python -m sar_core finetune --model net.onnx --data train.npz --method sar --epochs 3
        --out robust.onnx [--val val.npz] [--json]

The model starts from its own weights and trains with ``sar_core.training``'s optimizers and
epoch loop (same batches, same clamps, same targets as ``train``). BatchNorm statistics are
frozen: an imported ONNX graph always normalises with its stored running mean / variance (the
deployed inference graph), so fine-tuning trains the weights and BatchNorm's scale and shift
against the statistics the deployed model uses, and the running statistics are written back
unchanged. A quantized (QDQ) model trains its dequantized float weights with its activation
quantizers in the graph (straight-through rounding) and is quantized again when written
(``sar_core.data.onnx_export``). Part of TRAIN is held out (``--val-fraction``), or ``--val FILE``
is used; clean and faulty accuracy on it are measured before and after, the "after" numbers on
the file actually written (read back in).
"""

from __future__ import annotations

import argparse

from sar_core.names import FORMAT_NAMES

FINETUNE_METHODS = ("sar", "asam", "sam", "randbet", "clip", "sar_clip", "fat", "sgd")
# A trained model fine-tunes at a small rate. Training's default (0.05, from scratch) collapsed
# a trained digits CNN under SAR to 10% clean accuracy in 3 epochs; at 0.001 plain SGD kept
# 98.7% (docs/byom.md has the runs).
FINETUNE_LR = 0.001
BATCHNORM = (
    "frozen: the running mean and variance stored in the model normalise during fine-tuning "
    "(inference semantics) and are written back unchanged; BatchNorm scale and shift train"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the finetune command."""
    p.add_argument("--model", required=True, help=".onnx or SAR Lab .safetensors")
    p.add_argument("--data", required=True, help="training data: .npz (X, y) or CSV (label last)")
    p.add_argument("--val", default=None, help="validation data (default: held out from --data)")
    p.add_argument("--val-fraction", default="0.2", help="part of --data held out (no --val)")
    p.add_argument("--method", default="sar", choices=FINETUNE_METHODS)
    p.add_argument("--epochs", default="3")
    p.add_argument("--lr", default=str(FINETUNE_LR), help=f"learning rate (default {FINETUNE_LR})")
    p.add_argument("--rho", default=None)
    p.add_argument("--w-max", default=None, help="weight clamp (clip, randbet, sar_clip)")
    p.add_argument("--batch-size", default="64")
    p.add_argument("--format", default="int8", choices=FORMAT_NAMES, help="fault model format")
    p.add_argument("--ber", default="0.01", help="bit error rate of the target and the check")
    p.add_argument("--trials", default="50", help="Monte Carlo trials before and after")
    p.add_argument("--seed", default="0")
    p.add_argument("--out", required=True, help="output file, same format as --model")


def _config(a: argparse.Namespace, fm):
    from sar_core.cli.common import number, optional
    from sar_core.training.config import TARGETED, TrainConfig

    return TrainConfig(
        method=a.method,
        epochs=number("epochs", a.epochs, kind=int),
        lr=optional("lr", a.lr),
        rho=optional("rho", a.rho),
        batch_size=number("batch-size", a.batch_size, kind=int),
        **({"w_max": optional("w-max", a.w_max)} if a.w_max is not None else {}),
        fault_model=fm if a.method in TARGETED else None,
        seed=number("seed", a.seed, kind=int),
    )


def finetune_model(model, data, config, *, on_epoch=None, should_stop=None):
    """A fine-tuned copy of ``model`` (the argument is not changed) and its epoch history.

    Uses ``sar_core.training``'s optimizer and epoch loop on ``data``'s training split; the
    validation split is scored after every epoch.
    """
    import copy

    import numpy as np
    import torch

    from sar_core.engine.evaluate import as_tensors, logits_of, score_logits
    from sar_core.training import loop

    model = model.float_weights() if hasattr(model, "float_weights") else copy.deepcopy(model)
    for p in model.parameters():
        p.requires_grad_(True)
    opt = loop._optimizer(model, config)
    Xtr, ytr = as_tensors(data.X_train, data.y_train, torch.device("cpu"))
    Xv, yv = as_tensors(data.X_test, data.y_test, torch.device("cpu"))
    gen = torch.Generator().manual_seed(config.seed)
    aux = (
        loop.RandBET(model, config.target, config.seed)
        if config.method == "randbet"
        else np.random.default_rng([config.seed, 1])
    )
    # clip / randbet / sar_clip clamp to bounds taken from the starting weights, as train does
    bounds = (
        loop.clip_bounds(model, config.effective_w_max, config.w_max_rel) if config.clips else None
    )
    history = []
    for epoch in range(1, config.epochs + 1):
        rec = loop._epoch(model, opt, config, Xtr, ytr, gen, aux, should_stop, bounds)
        model.eval()
        if rec is None:
            break
        score = score_logits(logits_of(model, None, Xv), yv)  # unchecked: may have diverged
        rec = {"epoch": epoch, **rec, "val_acc": score.accuracy, "val_loss": score.loss}
        history.append(rec)
        if on_epoch is not None:
            on_epoch(dict(rec))
    return model.eval(), history


def measure(model, data, fm, *, trials: int, seed: int) -> dict:
    """Clean and faulty accuracy on the validation split (one campaign)."""
    from sar_core.analysis.campaign import run_campaign
    from sar_core.data.onnx_fault_check import check_fault_model

    check_fault_model(model, fm)
    s = run_campaign(model, data.X_test, data.y_test, fm, trials=trials, seed=seed).summary()
    return {k: s[k] for k in ("clean_accuracy", "deployed_accuracy", "mean_accuracy", "ci95")}


def write_model(loaded, model, out, meta_extra: dict) -> tuple[object, dict]:
    """Write ``model`` in ``loaded``'s format to ``out``; (the file read back, export report)."""
    from pathlib import Path

    from sar_core.data.io import ImportedModel, load_model, save_checkpoint

    if isinstance(loaded, ImportedModel):
        from sar_core.data.onnx_export import export_onnx

        raw, report = export_onnx(model, loaded.raw)
        Path(out).write_bytes(raw)
    else:
        meta = {k: v for k, v in loaded.meta.items() if k not in ("schema", "spec")}
        save_checkpoint(out, model, loaded.spec, {**meta, **meta_extra})
        report = {"written": sorted(n for n, _ in model.named_parameters())}
    return load_model(out), report


def same_graph(raw_in: bytes, raw_out: bytes) -> bool:
    """True when two ONNX files have the same operators and initializer names and shapes."""
    import onnx

    a, b = onnx.load_model_from_string(raw_in), onnx.load_model_from_string(raw_out)

    def sig(m):
        nodes = [(n.op_type, tuple(n.input), tuple(n.output)) for n in m.graph.node]
        inits = [(t.name, tuple(t.dims), t.data_type) for t in m.graph.initializer]
        return nodes, inits

    return sig(a) == sig(b)


def run(a: argparse.Namespace) -> dict:
    """Measure, fine-tune, write, read back and measure again."""
    from pathlib import Path

    from sar_core.analysis.campaign import check_trials
    from sar_core.cli.common import UsageError, number
    from sar_core.data.io import ImportedModel, load_model, model_io, model_kind
    from sar_core.data.userdata import split_user_data
    from sar_core.faults.model import FaultModel

    kind, out_kind = model_kind(a.model), model_kind(a.out)
    if kind == "pt2":
        raise UsageError(
            "Invalid model: a .pt2 program cannot be written back with new weights; export the "
            "model to ONNX (torch.onnx.export) and fine-tune the .onnx"
        )
    if out_kind != kind:
        raise UsageError(f"Invalid out={a.out!r}: write the same format as --model (.{kind})")
    if Path(a.out).resolve() == Path(a.model).resolve():
        raise UsageError(
            f"Invalid out={a.out!r}: it is --model itself; the input is never modified"
        )
    fm = FaultModel(format=a.format, ber=number("ber", a.ber))
    trials = check_trials(number("trials", a.trials, kind=int))
    seed = number("seed", a.seed, kind=int)
    config = _config(a, fm)
    loaded = load_model(a.model)
    shape, k = model_io(loaded)
    data = split_user_data(
        a.data,
        input_shape=shape,
        n_classes=k,
        val=a.val,
        val_fraction=number("val-fraction", a.val_fraction),
        seed=seed,
    )
    before = measure(loaded.model, data, fm, trials=trials, seed=seed)
    model, history = finetune_model(loaded.model, data, config)
    extra = {"method": config.method, "config": config.to_dict(), "finetuned_from": a.model}
    back, report = write_model(loaded, model, a.out, extra)
    after = measure(back.model, data, fm, trials=trials, seed=seed)
    out = {
        "model": a.model,
        "out": a.out,
        "format_written": kind,
        "method": config.method,
        "epochs": len(history),
        "train_rows": int(len(data.y_train)),
        "val_rows": int(len(data.y_test)),
        "val_source": a.val or f"held out from {a.data} ({a.val_fraction})",
        "fault_model": fm.to_dict(),
        "trials": trials,
        "before": before,
        "after": after,
        "history": history,
        "batchnorm": BATCHNORM,
        "export": report,
    }
    if isinstance(loaded, ImportedModel):
        out["same_graph"] = same_graph(loaded.raw, Path(a.out).read_bytes())
        out["quantized"] = loaded.quantized
    return out
