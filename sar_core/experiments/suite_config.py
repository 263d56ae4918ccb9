"""What the task suite runs: its tasks, fault targets, BER grids, methods and their labels.

``SuiteConfig`` sizes a run (the defaults are the full run; ``quick_config`` is a smoke test);
``target_model`` turns a target name and a BER into the ``FaultModel`` it stands for.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sar_core import names

TASKS = {  # name: (dataset, arch)
    "digits_mlp": ("digits", "mlp"),
    "digits_cnn": ("digits", "cnn"),
    "mnist1d_mlp": ("mnist1d", "mlp"),
    "mnist1d_cnn1d": ("mnist1d", "cnn1d"),
    "wine_mlp": ("wine", "mlp"),
    "breast_cancer_mlp": ("breast_cancer", "mlp"),
    "moons_mlp": ("moons", "mlp"),
    "circles_mlp": ("circles", "mlp"),
}
WIDTHS = {"mlp": (128, 64), "cnn": (8, 16), "cnn1d": (16, 32)}
TARGETS = {  # target name: (format, int8 granularity)
    "int8": ("int8", "tensor"),
    "int8_channel": ("int8", "channel"),
    "float16": ("float16", "tensor"),
}
INT8_GRID = tuple(float(f"{10 ** (-3 + i / 4):.3g}") for i in range(11))  # 1e-3 .. 0.316
F16_GRID = tuple(float(f"{10 ** (-7 + i / 4):.3g}") for i in range(21))  # 1e-7 .. 1e-2
METHODS = ("sgd", "sam", "asam", "sar", "fat", "clip", "randbet", "sar_clip")  # at defaults
TARGETED = names.TARGETED  # methods that read a target fault model
TUNED = {"asam_tuned": ("asam", "rho", (0.5, 1.0, 2.0))}  # name: (method, parameter, grid)
AIMED = ("sar@int8_channel", "sar@float16")  # default SAR aimed at another target
LABELS = {
    "sam": "SAM (default rho 0.05)",
    "asam": "ASAM (default rho 0.5)",
    "asam_tuned": "ASAM (rho tuned on tuning seeds)",
    "sar": "SAR v3 (default; aimed at int8 per tensor)",
    "sar@int8_channel": "SAR v3 (default) aimed at int8 per channel",
    "sar@float16": "SAR v3 (default) aimed at float16",
    "fat": "fault-aware training (default: 0.1x the target rate)",
    "clip": "weight clipping (default: 3x each layer's initial max|w|)",
    "randbet": "RandBET (default: target rate, relative clip)",
    "sar_clip": "SAR v3 + relative clipping (default)",
}


@dataclass(frozen=True)
class SuiteConfig:
    """Size of a suite run (the defaults are the full run)."""

    tasks: tuple[str, ...] = tuple(TASKS)
    methods: tuple[str, ...] = METHODS  # held-out at library defaults; sgd first
    tuned: tuple[str, ...] = tuple(TUNED)  # entries of TUNED tuned on the tuning seeds
    aimed: tuple[str, ...] = AIMED
    targets: tuple[str, ...] = tuple(TARGETS)
    tuning_seeds: tuple[int, ...] = (0, 1)
    heldout_seeds: tuple[int, ...] = (2, 3, 4, 5, 6)
    epochs: int = 20
    lr: float = 0.05
    trials_target: int = 20  # per grid BER when fixing the targets
    trials_tune: int = 30  # per tuning seed and candidate
    trials_eval: int = 40  # per held-out seed, method and target
    grids: dict = field(default_factory=lambda: {k: v[2] for k, v in TUNED.items()})
    int8_grid: tuple[float, ...] = INT8_GRID
    f16_grid: tuple[float, ...] = F16_GRID
    quick: bool = False

    def __post_init__(self) -> None:
        if not self.methods or self.methods[0] != "sgd":
            raise ValueError(f"Invalid methods={self.methods!r}: sgd first (the reference)")
        bad = [t for t in self.tasks if t not in TASKS] + [
            t for t in self.targets if t not in TARGETS
        ]
        if bad:
            raise ValueError(f"Invalid task or target {bad[0]!r}: choose from {list(TASKS)}")
        if set(self.heldout_seeds) & set(self.tuning_seeds):
            raise ValueError(
                f"Invalid heldout_seeds={self.heldout_seeds}: they overlap the tuning seeds "
                f"{self.tuning_seeds} (results would be in-sample)"
            )

    def to_dict(self) -> dict:
        """JSON-friendly dict."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["grids"] = {m: list(v) for m, v in self.grids.items()}
        return d

    @property
    def entries(self) -> tuple[str, ...]:
        """Names of the held-out models: defaults, tuned entries, aimed SARs (on-target only)."""
        aimed = tuple(a for a in self.aimed if a.partition("@")[2] in self.targets)
        return self.methods + self.tuned + (aimed if "sar" in self.methods else ())


def quick_config() -> SuiteConfig:
    """A tiny run for smoke tests: one task, few epochs, few trials, a small grid."""
    return SuiteConfig(
        tasks=("moons_mlp",),
        methods=("sgd", "asam", "sar", "clip"),
        heldout_seeds=(2, 3),
        epochs=2,
        trials_target=3,
        trials_tune=3,
        trials_eval=4,
        grids={k: v[2][:2] for k, v in TUNED.items()},
        int8_grid=INT8_GRID[::3],
        f16_grid=F16_GRID[::4],
        quick=True,
    )


def with_overrides(cfg: SuiteConfig, **changes) -> SuiteConfig:
    """Copy of a suite config with some fields changed."""
    return replace(cfg, **changes)


def target_model(target: str, ber: float):
    """The FaultModel of a suite target at a BER (all bits of the weights)."""
    from sar_core.faults.model import FaultModel

    fmt, gran = TARGETS[target]
    return FaultModel(format=fmt, ber=ber, granularity=gran)
