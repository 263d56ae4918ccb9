"""Names the CLI and the dashboard offer as choices, importable without torch, numpy or sklearn.

Each tuple is defined here once; the modules that implement them import it from here
(``sar_core.formats.bits`` builds its ``FORMATS`` from ``FORMAT_NAMES``). Modules that still
spell a tuple out themselves (data, models, training config / optim, faults) are checked against
this one by ``tests/test_startup.py`` until they import it.
"""

DATASETS = ("digits", "moons", "circles", "blobs", "iris", "wine", "breast_cancer", "mnist1d")
ARCHS = ("mlp", "cnn", "cnn1d")  # models
METHODS = (
    "sgd",
    "adam",
    "sam",
    "asam",
    "sar",
    "fat",
    "clip",
    "randbet",
    "sar_clip",
)  # train_config
GEOMETRIES = ("plain", "elementwise", "layer")  # optim: shapes that need no fault model
SAR_GEOMETRIES = (*GEOMETRIES, "fault")  # optim: SAR v2 takes its shape from the fault model
TARGETED = (
    "sar",
    "fat",
    "randbet",
    "sar_clip",
)  # train_config: methods that read a target fault model
FORMAT_NAMES = ("float32", "float16", "bfloat16", "int8")  # bits: storage formats
GRANULARITIES = ("tensor", "channel")  # faults / bits: int8 scale per tensor or per channel
FAULT_KINDS = ("flip", "stuck-at-0", "stuck-at-1")  # faults: what a hit site does
FAULT_TARGETS = ("weights", "activations")  # faults: where the faults land
