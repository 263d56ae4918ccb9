"""int8 QDQ version of net.onnx, as onnxruntime's quantizer writes it (needs onnxruntime)."""

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

X = np.load("train.npz")["X"]


class Calibration(CalibrationDataReader):
    def __init__(self):
        self.batches = iter([{"x": X[i : i + 64]} for i in range(0, 512, 64)])

    def get_next(self):
        return next(self.batches, None)


quantize_static(
    "net.onnx",
    "net_int8.onnx",
    Calibration(),
    quant_format=QuantFormat.QDQ,
    weight_type=QuantType.QInt8,
    activation_type=QuantType.QUInt8,
    per_channel=True,
)
