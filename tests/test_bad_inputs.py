"""Bad-input corpus: every rejection is a ValueError that names the parameter, the value and what
is allowed; on the CLI it is exit code 2 and exactly one stderr line, never a traceback.

Checkpoints are rejected from their header alone: a pickle renamed .safetensors is never unpickled.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ASSETS
from safetensors.torch import save as st_save

from sar_core import limits
from sar_core.analysis.campaign import compare, run_campaign
from sar_core.analysis.sweeps import sweep
from sar_core.data.datasets import load_csv, load_dataset
from sar_core.data.io import SCHEMA, load_checkpoint
from sar_core.data.models import ModelSpec, build_model
from sar_core.faults.injector import Injector
from sar_core.faults.model import FaultModel, sample_pattern
from sar_core.formats.bits import flip_value, parse_bits
from sar_core.stats.intervals import summarize
from sar_core.training.calibrate import calibrate_rho
from sar_core.training.loop import TrainConfig
from sar_core.training.optim import SAM

MLP_PATH = ASSETS / "digits_mlp_sgd.safetensors"
CNN_PATH = ASSETS / "digits_cnn_sgd.safetensors"
SHAPES = {"fc1.weight": (4, 3), "fc1.bias": (4,), "out.weight": (2, 4)}  # 20 weights
# weights (2-D parameters) of the demo MLP: its eligible sites when one bit position is chosen
N = sum(p.numel() for p in load_checkpoint(MLP_PATH).model.parameters() if p.ndim >= 2)


class _Payload:
    """Unpickling this object calls open(marker, "w"): the marker file proves unpickling happened."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _meta_json(**changes) -> str:
    meta = {
        "schema": SCHEMA,
        "method": "sgd",
        "config": {},
        "dataset": {"name": "digits", "seed": 0},
        "seed": 0,
        "metrics": {},
        "spec": ModelSpec(arch="mlp", n_features=64, n_classes=10, widths=(8,)).to_dict(),
    }
    meta.update(changes)
    return json.dumps({k: v for k, v in meta.items() if v is not None})


def _tensors(widths=(8,), dtype=torch.float32) -> dict[str, torch.Tensor]:
    spec = ModelSpec(arch="mlp", n_features=64, n_classes=10, widths=widths)
    return {k: v.to(dtype).contiguous() for k, v in build_model(spec, 0).state_dict().items()}


def _csv(rows: int = 20, cols: int = 2, classes: int = 2) -> bytes:
    head = ",".join(f"x{i}" for i in range(cols)) + ",label\n"
    body = "".join(
        ",".join(str(r + c) for c in range(cols)) + f",{r % classes}\n" for r in range(rows)
    )
    return (head + body).encode()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Bad files on disk (checkpoints and CSVs), plus the unpickling markers."""
    d = tmp_path_factory.mktemp("bad")
    good = MLP_PATH.read_bytes()
    f = {"dir": d}

    def put(name: str, data: bytes) -> None:
        f[name] = d / name
        f[name].write_bytes(data)

    put("text.safetensors", b"this is not a checkpoint, just text\n" * 4)
    put("tiny.safetensors", b"\x01\x02")
    put("truncated.safetensors", good[: len(good) // 2])
    put("truncated_header.safetensors", good[:40])
    put("no_meta.safetensors", st_save(_tensors()))
    put("missing_key.safetensors", st_save(_tensors(), {"sar_lab": _meta_json(metrics=None)}))
    put("wrong_schema.safetensors", st_save(_tensors(), {"sar_lab": _meta_json(schema="x/9")}))
    put("wrong_type.safetensors", st_save(_tensors(), {"sar_lab": _meta_json(seed="zero")}))
    put("meta_not_json.safetensors", st_save(_tensors(), {"sar_lab": "{not json"}))
    put(
        "bad_arch.safetensors",
        st_save(_tensors(), {"sar_lab": _meta_json(spec={"arch": "resnet"})}),
    )
    put("shapes.safetensors", st_save(_tensors((16,)), {"sar_lab": _meta_json()}))
    put("dtype.safetensors", st_save(_tensors(dtype=torch.float16), {"sar_lab": _meta_json()}))
    extra = {**_tensors(), "extra.weight": torch.zeros(2, 2)}
    put("extra_tensor.safetensors", st_save(extra, {"sar_lab": _meta_json()}))
    nan = _tensors()
    nan["out.bias"][3] = float("nan")
    put("nan.safetensors", st_save(nan, {"sar_lab": _meta_json()}))
    header = json.loads(good[8 : 8 + struct.unpack("<Q", good[:8])[0]])
    header["__metadata__"] = 5  # safetensors metadata must be a map of strings
    raw = json.dumps(header).encode()
    n_old = struct.unpack("<Q", good[:8])[0]
    put("meta_number.safetensors", struct.pack("<Q", len(raw)) + raw + good[8 + n_old :])
    cnn_spec = {"arch": "cnn", "widths": [8, 16], "image_shape": ["one", 8, 8]}
    put("image_text.safetensors", st_save(_tensors(), {"sar_lab": _meta_json(spec=cnn_spec)}))
    with open(d / "huge.safetensors", "wb") as fh:  # sparse: one byte over the upload cap
        fh.truncate(limits.MAX_UPLOAD_BYTES + 1)
    f["huge.safetensors"] = d / "huge.safetensors"
    # a pickle (and a torch.save zip, also pickle inside) dressed up as a checkpoint
    f["marker"] = d / "UNPICKLED"
    put("pickle.safetensors", pickle.dumps({"fc1.weight": _Payload(f["marker"])}))
    put("pickle0.safetensors", pickle.dumps({"fc1.weight": _Payload(f["marker"])}, protocol=0))
    torch.save({"fc1.weight": _Payload(f["marker"])}, d / "torch.safetensors")
    f["torch.safetensors"] = d / "torch.safetensors"
    # CSVs
    put("empty.csv", b"")
    put("blank.csv", b"\n\n  \n")
    put("text.csv", _csv().replace(b"5,6,1", b"5,six,1"))
    put("nan.csv", _csv().replace(b"7,8,1", b"7,,1"))
    put("inf.csv", _csv().replace(b"7,8,1", b"7,inf,1"))
    put("one_class.csv", _csv(classes=1))
    put("wide.csv", _csv(cols=limits.MAX_CSV_COLUMNS))
    put("huge.csv", b"x0,label\n" + b"1.000000000,0\n" * (limits.MAX_CSV_BYTES // 14 + 10))
    put("long.csv", b"x0,label\n" + b"1,0\n2,1\n" * (limits.MAX_CSV_ROWS // 2 + 1))
    put("short.csv", _csv(rows=5))
    put("many_classes.csv", _csv(rows=2 * (limits.MAX_CLASSES + 1), classes=limits.MAX_CLASSES + 1))
    put("singleton.csv", _csv(rows=20).replace(b"19,20,1", b"19,20,7"))
    put("ragged.csv", b"a,label\n" + b"".join(b"%d,7,%d\n" % (i, i % 2) for i in range(20)))
    put("broken.csv", b'a,b\n1,"2\n3,4\n')
    return f


def _demo_mlp():
    return load_checkpoint(MLP_PATH)


def _xy():
    d = load_dataset("digits")
    return d.X_test[:16], d.y_test[:16]


# (id, call(files), fragments that must all appear in the message)
# Fragments name the parameter and the value, and say what is allowed.
LIB_CASES = [
    # ---- bit error rate / flip count
    ("ber_zero", lambda f: FaultModel(ber=0), ["ber=0", "(0.0, 1.0]"]),
    ("ber_negative", lambda f: FaultModel(ber=-0.1), ["ber=-0.1", "(0.0, 1.0]"]),
    ("ber_above_one", lambda f: FaultModel(ber=1.5), ["ber=1.5", "(0.0, 1.0]"]),
    ("ber_nan", lambda f: FaultModel(ber=float("nan")), ["ber=nan", "finite", "(0.0, 1.0]"]),
    ("ber_inf", lambda f: FaultModel(ber=float("inf")), ["ber=inf", "finite"]),
    ("ber_huge_int", lambda f: FaultModel(ber=10**400), ["ber=1000", "finite", "(0.0, 1.0]"]),
    ("ber_string", lambda f: FaultModel(ber="0.1"), ["ber='0.1'", "must be a number"]),
    ("ber_bool", lambda f: FaultModel(ber=True), ["ber=True", "must be a number"]),
    (
        "rate_missing",
        lambda f: FaultModel(format="int8"),
        ["ber=None", "count=None", "exactly one"],
    ),
    ("rate_both", lambda f: FaultModel(ber=0.1, count=3), ["ber=0.1", "count=3", "exactly one"]),
    ("count_zero", lambda f: FaultModel(count=0), ["count=0", f"[1, {limits.MAX_FLIP_COUNT}]"]),
    ("count_float", lambda f: FaultModel(count=2.5), ["count=2.5", "integer"]),
    (
        "count_above_cap",
        lambda f: FaultModel(count=limits.MAX_FLIP_COUNT + 1),
        [f"count={limits.MAX_FLIP_COUNT + 1}", str(limits.MAX_FLIP_COUNT)],
    ),
    (
        "count_above_sites",
        lambda f: sample_pattern(SHAPES, FaultModel(format="int8", count=161), 0),
        ["count=161", "only 160 eligible", "count <= 160"],
    ),
    (
        "count_above_sites_campaign",
        lambda f: run_campaign(
            _demo_mlp().model, *_xy(), FaultModel(format="int8", bits=(0,), count=N + 1), trials=2
        ),
        [f"count={N + 1}", f"only {N} eligible", f"count <= {N}"],
    ),
    # ---- bit positions
    ("bit_32_float32", lambda f: FaultModel(bits=(32,), ber=0.1), ["bits=", "32", "0..31"]),
    ("bit_16_float16", lambda f: FaultModel(format="float16", bits=[16], ber=0.1), ["16", "0..15"]),
    ("bit_16_bfloat16", lambda f: parse_bits("15-16", "bfloat16"), ["bits=", "16", "0..15"]),
    ("bit_8_int8", lambda f: FaultModel(format="int8", bits=(8,), ber=0.1), ["8", "0..7"]),
    ("bit_negative", lambda f: parse_bits([-1], "int8"), ["bits=[-1]", "-1", "0..7"]),
    (
        "bits_empty_tuple",
        lambda f: FaultModel(bits=(), ber=0.1),
        ["bits=[]", "at least one", "0..31"],
    ),
    ("bits_empty_string", lambda f: parse_bits(" ", "int8"), ["bits=''", "at least one", "0..7"]),
    (
        "bits_exponent_int8",
        lambda f: FaultModel(format="int8", bits="exponent", ber=0.1),
        ["bits='exponent'", "int8", "sign, msb, lsb, all"],
    ),
    ("bits_word", lambda f: parse_bits("upper", "float32"), ["bits='upper'", "0-7", "30,31"]),
    ("bits_bad_range", lambda f: parse_bits("3-x", "int8"), ["bits='3-x'", "0..7"]),
    ("flip_bit_32", lambda f: flip_value(1.0, "float32", 32), ["bit=32", "[0, 31]"]),
    ("flip_bit_8_int8", lambda f: flip_value(1.0, "int8", 8), ["bit=8", "[0, 7]"]),
    # ---- layer selection
    ("layers_empty", lambda f: FaultModel(ber=0.1, layers=()), ["layers=[]", "at least one layer"]),
    (
        "layers_unknown",
        lambda f: Injector(_demo_mlp().model, FaultModel(ber=0.1, layers=("conv9",))),
        ["layers=['conv9']", "'conv9'", "available: fc1, fc2, out"],
    ),
    ("layers_not_names", lambda f: FaultModel(ber=0.1, layers=5), ["layers=5", "layer names"]),
    (
        "include_bias_text",
        lambda f: FaultModel(ber=0.1, include_bias="yes"),
        ["include_bias='yes'", "True or False"],
    ),
    ("widths_not_list", lambda f: ModelSpec(widths=8), ["widths=8", "list of layer widths"]),
    # ---- formats and other choices
    (
        "format_unknown",
        lambda f: FaultModel(format="float64", ber=0.1),
        ["format='float64'", "int8"],
    ),
    ("flip_format_unknown", lambda f: flip_value(1.0, "fp8", 0), ["format='fp8'", "bfloat16"]),
    (
        "granularity",
        lambda f: FaultModel(ber=0.1, granularity="row"),
        ["granularity='row'", "channel"],
    ),
    ("dataset_unknown", lambda f: load_dataset("mnist"), ["dataset='mnist'", "digits", "wine"]),
    ("arch_unknown", lambda f: ModelSpec(arch="resnet"), ["arch='resnet'", "mlp, cnn"]),
    ("activation_unknown", lambda f: ModelSpec(activation="swish"), ["activation='swish'", "relu"]),
    ("method_unknown", lambda f: TrainConfig(method="lbfgs"), ["method='lbfgs'", "sgd", "sar"]),
    (
        "geometry_unknown",
        lambda f: TrainConfig(geometry="ball"),
        ["geometry='ball'", "elementwise"],
    ),
    ("rho_mode_unknown", lambda f: TrainConfig(rho_mode="auto"), ["rho_mode='auto'", "calibrated"]),
    # ---- numbers out of range
    ("rho_negative", lambda f: TrainConfig(method="sam", rho=-0.1), ["rho=-0.1", "[0.0, 100.0]"]),
    ("rho_nan", lambda f: TrainConfig(method="sar", rho=float("nan")), ["rho=nan", "finite"]),
    (
        "sam_rho_negative",
        lambda f: SAM([torch.zeros(1, requires_grad=True)], rho=-1.0, lr=0.1),
        ["rho=-1.0", "[0.0, inf]"],
    ),
    ("epochs_zero", lambda f: TrainConfig(epochs=0), ["epochs=0", f"[1, {limits.MAX_EPOCHS}]"]),
    (
        "epochs_above_cap",
        lambda f: TrainConfig(epochs=limits.MAX_EPOCHS + 1),
        [f"epochs={limits.MAX_EPOCHS + 1}", f"[1, {limits.MAX_EPOCHS}]"],
    ),
    ("lr_zero", lambda f: TrainConfig(lr=0.0), ["lr=0.0", "(0.0, 10.0]"]),
    ("momentum_one", lambda f: TrainConfig(momentum=1.0), ["momentum=1.0", "[0.0, 1.0)"]),
    ("batch_size_zero", lambda f: TrainConfig(batch_size=0), ["batch_size=0", "[1, 65536]"]),
    ("seed_negative", lambda f: load_dataset("iris", seed=-1), ["seed=-1", "[0, 4294967295]"]),
    (
        "test_fraction",
        lambda f: load_dataset("iris", test_fraction=0.9),
        ["test_fraction=0.9", "0.5"],
    ),
    ("widths_empty", lambda f: ModelSpec(widths=()), ["widths=[]", f"1 to {limits.MAX_DEPTH}"]),
    (
        "width_above_cap",
        lambda f: ModelSpec(widths=(limits.MAX_WIDTH + 1,)),
        [f"widths[i]={limits.MAX_WIDTH + 1}", f"[1, {limits.MAX_WIDTH}]"],
    ),
    (
        "depth_above_cap",
        lambda f: ModelSpec(widths=(4,) * (limits.MAX_DEPTH + 1)),
        [
            f"widths=[{', '.join(['4'] * (limits.MAX_DEPTH + 1))}]",
            f"1 to {limits.MAX_DEPTH} hidden",
        ],
    ),
    ("cnn_without_image", lambda f: ModelSpec(arch="cnn"), ["image_shape=None", "(C, H, W)"]),
    ("flip_value_nan", lambda f: flip_value(float("nan"), "float32", 0), ["value=nan", "finite"]),
    ("flip_value_text", lambda f: flip_value("abc", "float32", 0), ["value='abc'", "number"]),
    (
        "int8_scale_zero",
        lambda f: flip_value(1.0, "int8", 0, scale=0.0),
        ["scale=0.0", "(0.0, inf]"],
    ),
    # ---- campaign sizes
    (
        "trials_zero",
        lambda f: run_campaign(_demo_mlp().model, *_xy(), FaultModel(ber=0.1), trials=0),
        ["trials=0", f"[1, {limits.MAX_TRIALS}]"],
    ),
    (
        "trials_above_cap",
        lambda f: run_campaign(
            _demo_mlp().model, *_xy(), FaultModel(ber=0.1), trials=limits.MAX_TRIALS + 1
        ),
        [f"trials={limits.MAX_TRIALS + 1}", f"[1, {limits.MAX_TRIALS}]"],
    ),
    (
        "models_empty",
        lambda f: compare([], *_xy(), FaultModel(ber=0.1)),
        ["models=[]", "at least one"],
    ),
    (
        "models_mismatched",
        lambda f: compare(
            [_demo_mlp().model, load_checkpoint(CNN_PATH).model], *_xy(), FaultModel(ber=0.1)
        ),
        ["models", "model 1", "same architecture"],
    ),
    (
        "bers_empty",
        lambda f: sweep([_demo_mlp().model], *_xy(), FaultModel(ber=0.1), bers=[]),
        ["ber list of length 0", f"1 to {limits.MAX_BER_POINTS}"],
    ),
    (
        "bers_too_many",
        lambda f: sweep(
            [_demo_mlp().model],
            *_xy(),
            FaultModel(ber=0.1),
            bers=[0.01] * (limits.MAX_BER_POINTS + 1),
        ),
        [f"length {limits.MAX_BER_POINTS + 1}", f"1 to {limits.MAX_BER_POINTS}"],
    ),
    (
        "bers_with_zero",
        lambda f: sweep([_demo_mlp().model], *_xy(), FaultModel(ber=0.1), bers=[0.01, 0.0]),
        ["ber=0.0", "(0.0, 1.0]"],
    ),
    ("summarize_empty", lambda f: summarize([]), ["values=[]", "at least one"]),
    (
        "calibrate_only_catastrophic",
        lambda f: calibrate_rho(_demo_mlp().model, *_xy(), FaultModel(bits=(30,), ber=0.1)),
        ["bits=[30]", "catastrophic", "choose other bits"],
    ),
    (
        "fault_model_dict_key",
        lambda f: FaultModel.from_dict({"format": "int8", "rate": 0.1}),
        ["fault model", "'rate'", "allowed keys"],
    ),
    # ---- checkpoints
    (
        "ckpt_missing",
        lambda f: load_checkpoint(f["dir"] / "nope.safetensors"),
        ["path=", "nope", "no such file"],
    ),
    (
        "ckpt_text",
        lambda f: load_checkpoint(f["text.safetensors"]),
        ["checkpoint", "not a safetensors"],
    ),
    (
        "ckpt_tiny",
        lambda f: load_checkpoint(f["tiny.safetensors"]),
        ["checkpoint", "2 bytes", "too short"],
    ),
    (
        "ckpt_truncated",
        lambda f: load_checkpoint(f["truncated.safetensors"]),
        ["checkpoint", "outside the file", "truncated"],
    ),
    (
        "ckpt_truncated_header",
        lambda f: load_checkpoint(f["truncated_header.safetensors"]),
        ["checkpoint", "bad header length"],
    ),
    (
        "ckpt_no_meta",
        lambda f: load_checkpoint(f["no_meta.safetensors"]),
        ["metadata", "'sar_lab'"],
    ),
    (
        "ckpt_missing_key",
        lambda f: load_checkpoint(f["missing_key.safetensors"]),
        ["metadata", "missing key 'metrics'"],
    ),
    (
        "ckpt_wrong_schema",
        lambda f: load_checkpoint(f["wrong_schema.safetensors"]),
        ["schema='x/9'", SCHEMA],
    ),
    (
        "ckpt_wrong_type",
        lambda f: load_checkpoint(f["wrong_type.safetensors"]),
        ["seed='zero'", "expected int"],
    ),
    (
        "ckpt_meta_not_json",
        lambda f: load_checkpoint(f["meta_not_json.safetensors"]),
        ["metadata", "not valid JSON"],
    ),
    (
        "ckpt_metadata_not_strings",
        lambda f: load_checkpoint(f["meta_number.safetensors"]),
        ["checkpoint", "__metadata__", "map names to strings"],
    ),
    (
        "ckpt_image_shape_text",
        lambda f: load_checkpoint(f["image_text.safetensors"]),
        ["image_shape[i]='one'", "integer in [1, "],
    ),
    (
        "ckpt_bad_arch",
        lambda f: load_checkpoint(f["bad_arch.safetensors"]),
        ["arch='resnet'", "mlp, cnn"],
    ),
    (
        "ckpt_shapes",
        lambda f: load_checkpoint(f["shapes.safetensors"]),
        ["tensor 'fc1.weight'", "[16, 64]", "needs [8, 64] F32"],
    ),
    ("ckpt_dtype", lambda f: load_checkpoint(f["dtype.safetensors"]), ["F16", "F32"]),
    (
        "ckpt_extra_tensor",
        lambda f: load_checkpoint(f["extra_tensor.safetensors"]),
        ["extra.weight", "declared mlp architecture"],
    ),
    (
        "ckpt_nan",
        lambda f: load_checkpoint(f["nan.safetensors"]),
        ["tensor 'out.bias'", "NaN or Inf"],
    ),
    (
        "ckpt_above_size_cap",
        lambda f: load_checkpoint(MLP_PATH, max_bytes=1000),
        ["checkpoint size=", "the cap is 1000"],
    ),
    (
        "ckpt_above_default_cap",
        lambda f: load_checkpoint(f["huge.safetensors"]),
        [
            f"checkpoint size={limits.MAX_UPLOAD_BYTES + 1} bytes",
            f"the cap is {limits.MAX_UPLOAD_BYTES}",
        ],
    ),
    (
        "ckpt_pickle",
        lambda f: load_checkpoint(f["pickle.safetensors"]),
        ["checkpoint", "not a safetensors"],
    ),
    (
        "ckpt_pickle_bytes",
        lambda f: load_checkpoint(f["pickle0.safetensors"].read_bytes()),
        ["not a safetensors"],
    ),
    ("ckpt_torch_save", lambda f: load_checkpoint(f["torch.safetensors"]), ["not a safetensors"]),
    # ---- CSV upload
    ("csv_empty", lambda f: load_csv(f["empty.csv"]), ["csv", "empty", "header and numeric rows"]),
    ("csv_blank", lambda f: load_csv(f["blank.csv"].read_bytes()), ["csv", "empty"]),
    (
        "csv_non_numeric",
        lambda f: load_csv(f["text.csv"]),
        ["column 'x1'", "'six'", "data row 6", "must be a number"],
    ),
    ("csv_nan", lambda f: load_csv(f["nan.csv"]), ["column 'x1'", "data row 8", "NaN"]),
    (
        "csv_inf",
        lambda f: load_csv(f["inf.csv"]),
        ["column 'x1'", "value inf", "data row 8", "finite"],
    ),
    (
        "csv_one_class",
        lambda f: load_csv(f["one_class.csv"]),
        ["label column 'label'", "1 class", ">= 2"],
    ),
    (
        "csv_too_many_columns",
        lambda f: load_csv(f["wide.csv"]),
        [f"columns={limits.MAX_CSV_COLUMNS + 1}", f"cap is {limits.MAX_CSV_COLUMNS}"],
    ),
    (
        "csv_too_large_path",
        lambda f: load_csv(f["huge.csv"]),
        ["csv size=", f"cap is {limits.MAX_CSV_BYTES}"],
    ),
    (
        "csv_too_large_bytes",
        lambda f: load_csv(f["huge.csv"].read_bytes()),
        ["csv size=", f"cap is {limits.MAX_CSV_BYTES}"],
    ),
    (
        "csv_too_many_rows",
        lambda f: load_csv(f["long.csv"]),
        [f"rows={limits.MAX_CSV_ROWS + 2}", f"cap is {limits.MAX_CSV_ROWS}"],
    ),
    ("csv_too_few_rows", lambda f: load_csv(f["short.csv"]), ["rows=5", "at least 10"]),
    (
        "csv_too_many_classes",
        lambda f: load_csv(f["many_classes.csv"]),
        [f"classes={limits.MAX_CLASSES + 1}", f"cap is {limits.MAX_CLASSES}"],
    ),
    (
        "csv_singleton_class",
        lambda f: load_csv(f["singleton.csv"]),
        ["label column 'label'", "at least 2 rows"],
    ),
    (
        "csv_unknown_label",
        lambda f: load_csv(_csv(), label_column="y"),
        ["label_column='y'", "x0, x1, label"],
    ),
    (
        "csv_more_fields_than_header",
        lambda f: load_csv(f["ragged.csv"]),
        ["csv", "Expected 2 fields in line 2, saw 3", "one value per header column"],
    ),
    ("csv_unparsable", lambda f: load_csv(f["broken.csv"]), ["csv", "could not parse"]),
    ("csv_missing_path", lambda f: load_csv(f["dir"] / "none.csv"), ["csv path=", "no such file"]),
]


@pytest.mark.parametrize("call, fragments", [pytest.param(c, fr, id=i) for i, c, fr in LIB_CASES])
def test_library_rejects_with_a_clear_message(files, call, fragments):
    with pytest.raises(ValueError) as info:
        call(files)
    msg = str(info.value)
    assert msg.startswith("Invalid "), msg
    assert "\n" not in msg
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_corpus_is_large_and_ids_are_unique():
    ids = [c[0] for c in LIB_CASES] + [c[0] for c in CLI_CASES]
    assert len(ids) == len(set(ids))
    assert len(LIB_CASES) >= 40 and len(CLI_CASES) >= 20


@pytest.mark.parametrize("name", ["pickle.safetensors", "pickle0.safetensors", "torch.safetensors"])
def test_pickles_are_rejected_without_unpickling(files, monkeypatch, name):
    marker = files["marker"]
    # the payload is live: unpickling a copy of it does create its marker
    probe = files["dir"] / "PROBE"
    pickle.loads(pickle.dumps(_Payload(probe))).close()
    assert probe.exists()
    probe.unlink()

    def forbidden(*args, **kwargs):
        raise AssertionError("the checkpoint loader tried to unpickle")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    data = files[name].read_bytes()
    for source in (files[name], data):
        with pytest.raises(ValueError, match="not a safetensors file"):
            load_checkpoint(source)
    assert not marker.exists()


def test_header_claiming_more_than_the_file_is_rejected_before_parsing():
    data = struct.pack("<Q", 10**6) + b"{}"
    with pytest.raises(ValueError, match="bad header length"):
        load_checkpoint(data)


# ---------------------------------------------------------------- CLI -------------------------

MLP = str(MLP_PATH)
INJECT = ("inject", "--model", MLP, "--trials", "2")

# (id, argv with {file} placeholders, fragments that must all appear on the one stderr line)
CLI_CASES = [
    ("cli_ber_zero", [*INJECT, "--ber", "0"], ["ber=0.0", "(0.0, 1.0]"]),
    ("cli_ber_above_one", [*INJECT, "--ber", "2"], ["ber=2.0", "(0.0, 1.0]"]),
    ("cli_ber_nan", [*INJECT, "--ber", "nan"], ["ber=nan", "finite"]),
    ("cli_ber_text", [*INJECT, "--ber", "lots"], ["ber='lots'", "must be a number"]),
    ("cli_rate_missing", list(INJECT), ["--ber", "--count", "required"]),
    (
        "cli_rate_both",
        [*INJECT, "--ber", "0.1", "--count", "2"],
        ["--count", "not allowed with", "--ber"],
    ),
    ("cli_count_zero", [*INJECT, "--count", "0"], ["count=0", "[1, "]),
    ("cli_count_text", [*INJECT, "--count", "1.5"], ["count='1.5'", "integer"]),
    (
        "cli_count_above_sites",
        [*INJECT, "--format", "int8", "--bits", "lsb", "--count", str(N + 1)],
        [f"count={N + 1}", f"only {N} eligible", f"count <= {N}"],
    ),
    ("cli_bit_outside", [*INJECT, "--ber", "0.1", "--bits", "40"], ["bits=", "40", "0..31"]),
    ("cli_bit_int8", [*INJECT, "--ber", "0.1", "--format", "int8", "--bits", "6-9"], ["9", "0..7"]),
    ("cli_bits_empty", [*INJECT, "--ber", "0.1", "--bits", ""], ["bits=''", "at least one"]),
    (
        "cli_bits_exponent_int8",
        [*INJECT, "--ber", "0.1", "--format", "int8", "--bits", "exponent"],
        ["bits='exponent'", "int8"],
    ),
    (
        "cli_layers_empty",
        [*INJECT, "--ber", "0.1", "--layers", ","],
        ["layers=','", "at least one"],
    ),
    (
        "cli_layers_unknown",
        [*INJECT, "--ber", "0.1", "--layers", "conv1"],
        ["'conv1'", "fc1, fc2, out"],
    ),
    (
        "cli_format_unknown",
        [*INJECT, "--ber", "0.1", "--format", "float64"],
        ["--format", "'float64'", "int8"],
    ),
    (
        "cli_trials_zero",
        ["inject", "--model", MLP, "--ber", "0.1", "--trials", "0"],
        ["trials=0", "[1, 2000]"],
    ),
    (
        "cli_trials_above_cap",
        ["inject", "--model", MLP, "--ber", "0.1", "--trials", "2001"],
        ["trials=2001", "[1, 2000]"],
    ),
    ("cli_seed_negative", [*INJECT, "--ber", "0.1", "--seed", "-1"], ["seed=-1", "[0, "]),
    (
        "cli_model_missing",
        ["inject", "--model", "{dir}/none.safetensors", "--ber", "0.1"],
        ["path=", "no such file"],
    ),
    (
        "cli_model_text",
        ["inject", "--model", "{text.safetensors}", "--ber", "0.1"],
        ["not a safetensors"],
    ),
    (
        "cli_model_pickle",
        ["inject", "--model", "{pickle.safetensors}", "--ber", "0.1"],
        ["not a safetensors"],
    ),
    (
        "cli_model_truncated",
        ["inject", "--model", "{truncated.safetensors}", "--count", "1"],
        ["truncated"],
    ),
    (
        "cli_model_shapes",
        ["inject", "--model", "{shapes.safetensors}", "--count", "1"],
        ["fc1.weight", "[16, 64]"],
    ),
    (
        "cli_compare_mismatched",
        ["compare", "--models", MLP, str(CNN_PATH), "--ber", "0.1", "--trials", "2"],
        ["models", "same architecture"],
    ),
    ("cli_sweep_ber_text", ["sweep", "--models", MLP, "--ber", "0.1,x"], ["ber='x'", "number"]),
    (
        "cli_sweep_ber_zero",
        ["sweep", "--models", MLP, "--ber", "0.01,0"],
        ["ber=0.0", "(0.0, 1.0]"],
    ),
    ("cli_sweep_count", ["sweep", "--models", MLP, "--count", "3"], ["ber=None", "--ber P1,P2"]),
    (
        "cli_train_dataset",
        ["train", "--dataset", "mnist", "--out", "x"],
        ["--dataset", "'mnist'", "digits"],
    ),
    ("cli_train_arch", ["train", "--arch", "resnet", "--out", "x"], ["--arch", "'resnet'", "mlp"]),
    (
        "cli_train_method",
        ["train", "--method", "lbfgs", "--out", "x"],
        ["--method", "'lbfgs'", "sar"],
    ),
    (
        "cli_train_rho",
        ["train", "--method", "sam", "--rho", "-1", "--out", "x"],
        ["rho=-1.0", "[0.0, 100.0]"],
    ),
    ("cli_train_epochs_zero", ["train", "--epochs", "0", "--out", "x"], ["epochs=0", "[1, 300]"]),
    (
        "cli_train_epochs_cap",
        ["train", "--epochs", "301", "--out", "x"],
        ["epochs=301", "[1, 300]"],
    ),
    ("cli_train_widths", ["train", "--widths", "8,0", "--out", "x"], ["widths[i]=0", "[1, 1024]"]),
    (
        "cli_train_target_ber",
        ["train", "--target-ber", "3", "--out", "x"],
        ["ber=3.0", "(0.0, 1.0]"],
    ),
    ("cli_train_no_out", ["train"], ["--out", "required"]),
    (
        "cli_train_diverges",
        ["train", "--lr", "10", "--epochs", "3", "--widths", "16", "--quiet", "--out", "x"],
        ["lr=10.0", "diverged", "smaller --lr"],
    ),
    (
        "cli_flip_bit",
        ["flip", "--format", "float16", "--value", "1", "--bit", "16"],
        ["bit=16", "[0, 15]"],
    ),
    (
        "cli_flip_value_nan",
        ["flip", "--format", "float32", "--value", "nan", "--bit", "1"],
        ["value=nan", "finite"],
    ),
    (
        "cli_flip_value_text",
        ["flip", "--format", "float32", "--value", "one", "--bit", "1"],
        ["value='one'", "number"],
    ),
    (
        "cli_flip_scale",
        ["flip", "--format", "int8", "--value", "1", "--bit", "1", "--scale", "0"],
        ["scale=0.0"],
    ),
    ("cli_unknown_command", ["explode"], ["'explode'", "choose from"]),
]


def _argv(argv: list[str], files: dict[str, Path]) -> list[str]:
    out = []
    for a in argv:
        if a.startswith("{") and "}" in a:
            key, rest = a[1:].split("}", 1)
            a = str(files[key]) + rest
        out.append(a)
    return out


@pytest.mark.parametrize("argv, fragments", [pytest.param(a, fr, id=i) for i, a, fr in CLI_CASES])
def test_cli_rejects_with_exit_2_and_one_line(cli, files, tmp_path, monkeypatch, argv, fragments):
    monkeypatch.chdir(tmp_path)  # a stray --out x would land here, not in the repository
    rc, out, err = cli(*_argv(argv, files))
    assert rc == 2, err
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith("error: ") and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not files["marker"].exists()
    assert not (tmp_path / "x").exists()


def test_bad_input_never_writes_a_checkpoint(cli, tmp_path):
    out = tmp_path / "never.safetensors"
    rc, _, _ = cli("train", "--epochs", "0", "--out", out)
    assert rc == 2 and not out.exists()


def test_numpy_scalars_are_accepted_where_numbers_are():
    fm = FaultModel(format="int8", ber=np.float32(0.25), count=None)
    assert fm.ber == 0.25
    assert FaultModel(count=np.int64(3)).count == 3
    assert flip_value(np.float64(1.0), "float32", np.int64(31)).value_after == -1.0
