"""`report` command: the double-win table (``sar_core.experiments.report``).

python -m sar_core report --models F1 F2 ... --format F --bits B --ber P --trials T --seed S
    [--mitigations range,protect --base F] [--data FILE [--trust-pt2]] --json

Imported models (.onnx, or .pt2 with --trust-pt2) are evaluated on --data FILE, loaded as every
campaign command loads them (``sar_core.cli.common.load_with_data``).
"""

from __future__ import annotations

import argparse
import contextlib

from sar_core.cli.common import data_args
from sar_core.experiments.report import AttackSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of the report command (standard library only: --help stays fast)."""
    p.add_argument(
        "--models", nargs="+", required=True, help="checkpoints (.safetensors), .onnx, .pt2"
    )
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
    data_args(p)
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
    from sar_core.analysis.mitigations import Protection, default_protection
    from sar_core.faults.model import FaultModel

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
    from sar_core.analysis.attack import check_attack_settings

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
    from sar_core.cli.common import Progress, load_with_data
    from sar_core.experiments.report import ReportOptions, double_win_report

    fm, trials, seed, attack, mits, prot = _settings(a)
    base = None
    if a.base is not None:
        if a.base not in a.models:
            raise ValueError(f"Invalid base={a.base!r}: must be one of the --models paths")
        base = a.models.index(a.base)
    options = ReportOptions(
        trials=trials, seed=seed, attack=attack, mitigations=mits, base=base, protection=prot,
        csv_path=a.csv,
    ).checked(len(a.models))  # fmt: skip
    # checkpoints, imported models and --data / --csv: loaded as every campaign command does
    models, data = load_with_data(a, list(a.models))
    bar = Progress(len(a.models) + len(mits), "report", bool(getattr(a, "quiet", True)))
    return double_win_report(
        models, fm, options, data=data, names=list(a.models),
        on_model=lambda done, _total: bar(done),
    )  # fmt: skip
