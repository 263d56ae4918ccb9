"""Training configuration: the methods, their defaults, and one validated, frozen TrainConfig.

``TrainConfig`` maps one-to-one onto the CLI's and the dashboard's training settings and
serialises to JSON (``to_dict`` / ``from_dict``) for checkpoints and studies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sar_core import limits
from sar_core.faults.model import FaultModel
from sar_core.names import METHODS, TARGETED  # defined once (TARGETED: read a target fault model)
from sar_core.training.optim import (
    SAR_DEFAULT_FAULT_MEAN,
    SAR_DEFAULT_FAULT_MEAN_ALT,
    SAR_DEFAULT_FAULT_SAMPLE,
    SAR_DEFAULT_GEOMETRY,
    SAR_DEFAULT_RANGE_GRAD,
    SAR_DEFAULT_RHO,
    SAR_GEOMETRIES,
)
from sar_core.validate import check_choice, check_float, check_int

DEFAULT_RHO = {"sam": 0.05, "asam": 0.5, "sar": SAR_DEFAULT_RHO, "sar_clip": SAR_DEFAULT_RHO}
# clip / randbet / sar_clip with no w_max: scale-free, each weight tensor clamped to
# DEFAULT_W_MAX_REL x its own max|w| at initialisation (an absolute w_max, e.g. Stutz et al.'s 0.1,
# suits one architecture and wrecks another: digits CNN lost 21 clean points at 0.1)
DEFAULT_W_MAX_REL = 3.0
# fat: training BER = DEFAULT_FAT_SCALE x the target's (tuning seeds 0-1: at 1x fat collapsed on
# breast_cancer and lost 11 points on MNIST-1D CNN; 0.1x beat 0.3x on MNIST-1D MLP and digits CNN)
DEFAULT_FAT_SCALE = 0.1
# SAR with a fault-free geometry and no rho: the radius in that geometry's own units (SAR v1)
SAR_V1_RHO = {"plain": 0.05, "elementwise": 1.0, "layer": 1.0}
DEFAULT_TARGET = FaultModel(format="int8", ber=0.01)  # SAR's / FAT's fault model when none is given


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (JSON-serialisable via to_dict)."""

    method: str = "sgd"  # sgd | adam | sam | asam | sar | fat | clip | randbet | sar_clip
    epochs: int = 30
    lr: float | None = None  # None: 0.05 (SGD-based methods), 0.002 (adam)
    batch_size: int = 64
    momentum: float = 0.9
    weight_decay: float = 5e-4
    rho: float | None = None  # None: 0.05 sam, 0.5 asam, SAR preset; geometry "fault": multiplier
    geometry: str | None = None  # sar / sar_clip; None: SAR preset
    w_max: float | None = None  # clip / randbet / sar_clip: absolute clamp; None: relative
    w_max_rel: float = DEFAULT_W_MAX_REL  # used when w_max is None: x each tensor's initial max|w|
    range_grad: bool | None = None  # SAR v3 (geometry fault, int8 target): gradient into s(w)
    fault_sample: bool | None = None  # SAR v3: a sampled target fault added at the ascent point
    # SAR v3, int8 target: kappa of the expected fault E[D|w] = -p (2q + 1) s (flips shrink every
    # code by 1 - 2p on average) added at the ascent point; fault_mean_alt: 2 kappa every other
    # step, none between; None: the SAR preset (0.5, alternating)
    fault_mean: float | None = None
    fault_mean_alt: bool | None = None
    fat_scale: float = DEFAULT_FAT_SCALE  # fat trains at this x the target's BER (1x collapses)
    eta: float = 0.01  # offset in T = |w| + eta
    rho_mode: str = "fixed"  # sar: "fixed" or "calibrated" to fault_model
    calibrate_every: int = 5  # epochs between recalibrations (rho_mode="calibrated")
    rho_max: float = 2.0  # calibration cap: beyond it training collapses (benchmarks/rho_sweep.py)
    fault_model: FaultModel | None = None  # sar/fat/randbet/sar_clip target; None: int8, BER 1%
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_int("epochs", self.epochs, low=1, high=limits.MAX_EPOCHS)
        if self.lr is not None:
            check_float("lr", self.lr, low=0.0, high=10.0, low_open=True)
        check_int("batch_size", self.batch_size, low=1, high=65536)
        check_float("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        check_float("weight_decay", self.weight_decay, low=0.0, high=1.0)
        if self.rho is not None:
            check_float("rho", self.rho, low=0.0, high=100.0)
        if self.geometry is not None:
            check_choice("geometry", self.geometry, SAR_GEOMETRIES)
        if self.w_max is not None:
            check_float("w_max", self.w_max, low=0.0, high=100.0, low_open=True)
        check_float("w_max_rel", self.w_max_rel, low=0.0, high=100.0, low_open=True)
        check_float("fat_scale", self.fat_scale, low=0.0, high=1e6, low_open=True)
        if self.fault_mean is not None:
            check_float("fault_mean", self.fault_mean, low=0.0, high=1.0)
        check_float("eta", self.eta, low=0.0)
        check_choice("rho_mode", self.rho_mode, ("fixed", "calibrated"))
        check_int("calibrate_every", self.calibrate_every, low=1, high=limits.MAX_EPOCHS)
        check_float("rho_max", self.rho_max, low=0.0, high=100.0, low_open=True)
        check_int("seed", self.seed, low=0, high=2**32 - 1)
        if self.fault_model is not None and not isinstance(self.fault_model, FaultModel):
            raise ValueError(f"Invalid fault_model={self.fault_model!r}: expected a FaultModel")
        self._check_combinations()

    def _check_combinations(self) -> None:
        if self.rho_mode == "calibrated" and self.effective_geometry == "fault":
            raise ValueError(
                "Invalid rho_mode='calibrated' with geometry='fault': SAR v2 sets its radius "
                "from the fault model; use rho_mode='fixed' or geometry plain/elementwise/layer"
            )
        t = self.target
        if t is not None and t.target != "weights":
            raise ValueError(
                f"Invalid fault_model target={t.target!r}: training methods target faults in the "
                "stored weights (target='weights'); activation faults are for analysis only"
            )
        if self.effective_geometry == "fault" and t is not None:
            from sar_core.training.fault_geometry import covered_bits

            covered_bits(t)  # SAR v2's geometry: weight bit flips only (clear error otherwise)
        if self.method == "randbet" and t is not None and t.format != "int8":
            raise ValueError(
                f"Invalid fault_model format={t.format!r} for method 'randbet': random bit error "
                "training flips bits of int8-quantized weights; use format 'int8'"
            )
        if self.method == "randbet" and t is not None and t.ber is None:
            raise ValueError(
                "Invalid fault_model for method 'randbet': give a bit error rate (ber), not a count"
            )

    @property
    def effective_lr(self) -> float:
        """Learning rate actually used."""
        return self.lr if self.lr is not None else (0.002 if self.method == "adam" else 0.05)

    @property
    def effective_rho(self) -> float | None:
        """Radius used by SAM-family methods (initial value when calibrated)."""
        if self.method not in DEFAULT_RHO:
            return None
        if self.rho is not None:
            return self.rho
        geo = self.effective_geometry
        if self.method in ("sar", "sar_clip") and geo != "fault":
            return SAR_V1_RHO[geo]  # rho in the units of that geometry
        return DEFAULT_RHO[self.method]

    @property
    def effective_geometry(self) -> str | None:
        """Neighbourhood geometry of SAM-family methods."""
        if self.method in ("sar", "sar_clip"):
            if self.geometry is None and self.rho_mode == "calibrated":
                return "elementwise"  # calibration needs a fault-free geometry (SAR v1)
            return self.geometry or SAR_DEFAULT_GEOMETRY
        return {"sam": "plain", "asam": "elementwise"}.get(self.method)

    @property
    def effective_w_max(self) -> float | None:
        """Absolute weight clamp of clip / randbet / sar_clip (None: relative, or no clamp)."""
        if self.method not in ("clip", "randbet", "sar_clip"):
            return None
        return self.w_max

    @property
    def clips(self) -> bool:
        """Whether weights are clamped after each step (clip / randbet / sar_clip)."""
        return self.method in ("clip", "randbet", "sar_clip")

    @property
    def sar_v3(self) -> dict:
        """SAR v3's terms actually used: range_grad, fault_sample, fault_mean (κ), fault_mean_alt
        (off v3: False / 0)."""
        t = self.target
        on = (
            self.method in ("sar", "sar_clip")
            and self.effective_geometry == "fault"
            and t is not None
            and t.format == "int8"
        )
        rg = SAR_DEFAULT_RANGE_GRAD if self.range_grad is None else self.range_grad
        fs = SAR_DEFAULT_FAULT_SAMPLE if self.fault_sample is None else self.fault_sample
        km = SAR_DEFAULT_FAULT_MEAN if self.fault_mean is None else self.fault_mean
        alt = SAR_DEFAULT_FAULT_MEAN_ALT if self.fault_mean_alt is None else self.fault_mean_alt
        return {
            "range_grad": bool(on and rg),
            "fault_sample": bool(on and fs and t.ber is not None),
            "fault_mean": float(km) if on else 0.0,
            "fault_mean_alt": bool(on and km and alt),
        }

    @property
    def training_faults(self) -> FaultModel | None:
        """The fault model fat samples during training: the target at fat_scale x its rate."""
        t = self.target
        if self.method != "fat" or t is None or self.fat_scale == 1.0:
            return t
        if t.ber is not None:
            return t.with_rate(ber=min(1.0, t.ber * self.fat_scale))
        return t.with_rate(count=max(1, round(t.count * self.fat_scale)))

    @property
    def target(self) -> FaultModel | None:
        """Fault model SAR / FAT / RandBET train against."""
        if self.method in TARGETED:
            return self.fault_model or DEFAULT_TARGET
        return None

    @property
    def label(self) -> str:
        """Human label that tells SAR variants (and every method's settings) apart."""
        parts = []
        if self.effective_rho is not None:
            parts.append(f"rho={self.effective_rho:g}")
        if self.clips:
            parts.append(
                f"w_max={self.w_max:g}"
                if self.w_max is not None
                else f"w_max={self.w_max_rel:g}x init"
            )
        name = self.method
        if self.method in ("sar", "sar_clip"):
            v3 = self.sar_v3
            geo = self.effective_geometry
            version = "v3" if any(v3.values()) else ("v2" if geo == "fault" else "v1")
            name = f"{self.method} {version}"
            parts.insert(0, f"geometry={geo}")
            parts += [k.replace("_", " ") for k in ("range_grad", "fault_sample") if v3[k]]
            if v3["fault_mean"]:
                alt = " alt" if v3["fault_mean_alt"] else ""
                parts.append(f"fault mean {v3['fault_mean']:g}{alt}")
        t = self.target
        if t is not None:
            gran = "/channel" if t.format == "int8" and t.granularity == "channel" else ""
            rate = f"ber={t.ber:g}" if t.ber is not None else f"count={t.count}"
            parts.append(f"target {t.format}{gran} {rate}")
        return f"{name} ({', '.join(parts)})" if parts else name

    def to_dict(self) -> dict:
        """JSON-friendly dict with the effective values filled in."""
        d = asdict(self)
        d["fault_model"] = self.target.to_dict() if self.target else None
        d.update(
            lr=self.effective_lr,
            rho=self.effective_rho,
            geometry=self.effective_geometry,
            w_max=self.effective_w_max,
            **self.sar_v3,
        )
        if not self.clips:
            d.pop("w_max_rel")
        if self.method != "fat":
            d.pop("fat_scale")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of ``to_dict``."""
        allowed = set(cls.__dataclass_fields__)
        if not isinstance(d, dict) or set(d) - allowed:
            raise ValueError(f"Invalid train config {d!r}: allowed keys are {sorted(allowed)}")
        d = dict(d)
        if d.get("fault_model") is not None:
            d["fault_model"] = FaultModel.from_dict(d["fault_model"])
        return cls(**d)


def with_method(config: TrainConfig, method: str, **changes) -> TrainConfig:
    """Copy of a config for another method (everything else, seed included, kept)."""
    return replace(config, method=method, **changes)
