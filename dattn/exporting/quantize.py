"""INT8 by explicit quantization: a Q/DQ ONNX calibrated on images, with ONNX Runtime's `quantize_static`.

Q/DQ is what every TensorRT generation from 8.0 builds and what TensorRT 11 and TensorRT for RTX require (they
have no calibrator), and ONNX Runtime runs it on a CPU. Two flavours (README, "Precision"):

- "tensorrt": symmetric int8 activations and weights (zero point 0, as TensorRT requires), per-channel weights,
  biases left in float (TensorRT rejects an int32 bias DequantizeLinear), only the convolutions and matrix
  products quantized (TensorRT refuses quantized constants elsewhere), MinMax calibration;
- "onnxruntime": uint8 asymmetric activations with int8 weights, ONNX Runtime's fast path on x86 (its int8 x int8
  kernels ran slower than float32 there), every op it has integer kernels for, Percentile calibration.

Both keep in float what measurement showed quantization hurts: the first convolution (it sees the raw image), the
detection head (its convolutions and its decoding, which mixes pixels and scores in one tensor), and the sampling
step with what computes its coordinates; and what stays float reads float tensors (dattn.exporting.qdq.read_float).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from dattn.exporting.passes._graph import nodes_after
from dattn.exporting.qdq import read_float
from dattn.runtime.heads import HEADS, Head, network_input
from dattn.runtime.preprocess import read_image

FLAVOURS = ("tensorrt", "onnxruntime")
# TensorRT fuses Q/DQ into the layers that do the arithmetic and refuses quantized constants elsewhere (a scalar
# feeding Mul, say); ONNX Runtime gains from quantizing every op it has integer kernels for.
TENSORRT_QUANTIZED_OPS = ["Conv", "ConvTranspose", "MatMul", "Gemm"]



def head_nodes(model: onnx.ModelProto, head_weights: str) -> list[str]:
    """The detection head: its convolutions and everything after them. The convolutions are found by their weights'
    names, which the exporters take from the module path (e.g. "model.22."), or, where the TorchScript exporter folded
    a BatchNorm into new, anonymous weights (RT-DETR's input projections), by their node names ("/model.28/...")."""
    node_path = "/" + head_weights.rstrip(".") + "/"
    head = [n for n in model.graph.node if n.op_type == "Conv"
            and (n.input[1].startswith(head_weights) or n.name.startswith(node_path))]
    return nodes_after(model, head)


def float_nodes(model: onnx.ModelProto, head_weights: str) -> list[str]:
    """The nodes measured to suffer from quantization: the stem (the convolution that reads the image, and its
    activation) and the detection head.

    (The sampling step, which the pipeline names before its rewrite, is kept in float too.)
    """
    stem = [n for n in model.graph.node if n.op_type == "Conv" and n.input[0] == model.graph.input[0].name][:1]
    return [*nodes_after(model, stem, stop=("Conv", "MatMul", "Gemm")), *head_nodes(model, head_weights)]


def _calibration_reader(images: list[Path], input_name: str, imgsz: tuple[int, int], head: Head, progress):
    """ONNX Runtime's CalibrationDataReader over images fitted as the head expects, one at a time (bounded memory)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.start, self.end = 0, len(images)

        def __len__(self):
            return len(images)

        def set_range(self, start_index: int, end_index: int):  # quantize_static feeds one image per collect_data
            self.start, self.end = start_index, end_index

        def get_next(self):
            if self.start >= self.end:
                return None
            batch = network_input(head, read_image(images[self.start]), imgsz)[None]
            self.start += 1
            progress.update(1)
            return {input_name: batch}

    return Reader()


@contextlib.contextmanager
def _quiet():
    """quantize_static prints a line per calibration pass and logs advice on the root logger: keep the report clean."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def quantize_int8(model: onnx.ModelProto, images: list[Path], imgsz: tuple[int, int], flavour: str,
                  keep_float: list[str], head: Head = HEADS["anchors"]) -> onnx.ModelProto:
    """A Q/DQ copy of the float32 `model` calibrated on `images` (fitted to `imgsz` as `head` expects), with a
    progress bar."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from tqdm import tqdm

    if flavour not in FLAVOURS:
        raise ValueError(f"unknown INT8 flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}")
    for_tensorrt = flavour == "tensorrt"
    options = {
        "ActivationSymmetric": for_tensorrt, "WeightSymmetric": True, "QuantizeBias": False,
        "CalibStridedMinMax": 1,  # one image per pass: Percentile's histograms never hold more than one image's activations
    }
    op_types = TENSORRT_QUANTIZED_OPS if for_tensorrt else _onnxruntime_integer_ops()
    with tempfile.TemporaryDirectory(prefix="dattn-int8-") as folder, _quiet(), \
            tqdm(total=len(images), desc="calibrating INT8", unit="image", leave=False, disable=None) as progress:
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        onnx.save(model, str(source))
        quantize_static(
            str(source), str(target), _calibration_reader(images, model.graph.input[0].name, imgsz, head, progress),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8 if for_tensorrt else QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float, op_types_to_quantize=op_types,
            calibrate_method=CalibrationMethod.MinMax if for_tensorrt else CalibrationMethod.Percentile,
            extra_options=options,
        )
        quantized = onnx.load(str(target))
    # quantize_static makes every reader of a quantized tensor read its rounded copy: what stays float reads float
    kept = set(keep_float)
    return read_float(quantized, model, lambda node: node.op_type not in op_types or node.name in kept)


def _onnxruntime_integer_ops() -> list[str]:
    """Every op ONNX Runtime quantizes (what quantize_static takes for op_types_to_quantize=None)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QDQRegistry) | set(QLinearOpsRegistry))


def quantized_nodes(model: onnx.ModelProto) -> int:
    """How many QuantizeLinear nodes a graph holds (0: not quantized)."""
    return int(np.sum([n.op_type == "QuantizeLinear" for n in model.graph.node]))
