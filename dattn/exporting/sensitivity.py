"""Which quantized layers of a Q/DQ graph cost the most accuracy, and the graph with the worst of them in float.

The sensitivity scan that TensorRT users run by hand (NVIDIA ModelOpt's is the model): each quantized layer (a Conv,
ConvTranspose, MatMul or Gemm reading a DequantizeLinear) is turned back to float alone, its inputs taken from
before their QuantizeLinear and its weights from the float32 graph, and the Q/DQ graph is run on a few calibration
images. The error left where the backbone hands over to the detection head (the float tensors its convolutions
read, whatever the head) says how much that layer's quantization cost: the less error remains without it, the more
sensitive it is. Keeping the most sensitive layers in float needs no recalibration: it is graph surgery on the
Q/DQ graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from dattn.exporting.qdq import keep_float, quantized_layers
from dattn.runtime.heads import Head, network_input
from dattn.runtime.preprocess import read_image

SCAN_IMAGES = 4  # calibration images the scan runs on: enough to rank layers, few enough to run each layer fast


def head_inputs(model: onnx.ModelProto, head_nodes: list[str]) -> list[str]:
    """The tensors the head's convolutions read from outside the head: the features it decodes, for every head."""
    inside = set(head_nodes)
    outputs_inside = {out for n in model.graph.node if n.name in inside for out in n.output}
    constants = {init.name for init in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.name in inside and node.op_type == "Conv":
            found += [name for name in node.input[:1] if name not in outputs_inside and name not in constants
                      and name not in found]
    return found


def _session(model: onnx.ModelProto, outputs: list[str], uses_plugin: bool):
    """An ONNX Runtime session (CPU) of `model` that outputs `outputs` (float tensors of the graph)."""
    import onnxruntime

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in outputs)
    options = onnxruntime.SessionOptions()
    if uses_plugin:
        from dattn.plugin.ort_reference import onnxruntime_model, session_options

        options, probe = session_options(), onnxruntime_model(probe)
    return onnxruntime.InferenceSession(probe.SerializeToString(), sess_options=options,
                                        providers=["CPUExecutionProvider"])


def scan_batches(images: list[Path], imgsz: tuple[int, int], batch: int, head: Head) -> list[np.ndarray]:
    """Up to SCAN_IMAGES of `images`, each fitted as `head` expects and repeated to the export's batch size."""
    from dattn.exporting.dataset import evenly_spaced

    return [np.repeat(network_input(head, read_image(p), imgsz)[None], batch, axis=0)
            for p in evenly_spaced(images, SCAN_IMAGES)]


def _outputs(model: onnx.ModelProto, names: list[str], batches: list[np.ndarray],
             uses_plugin: bool) -> list[list[np.ndarray]]:
    """What `model` computes at the tensors `names`, for each batch."""
    session = _session(model, names, uses_plugin)
    input_name = session.get_inputs()[0].name
    return [session.run(names, {input_name: batch}) for batch in batches]


def relative_error(outputs: list[list[np.ndarray]], reference: list[list[np.ndarray]]) -> float:
    """The mean over batches and tensors of |y - y_ref| / |y_ref| (L2 norms per tensor)."""
    return float(np.mean([np.linalg.norm(got - want) / max(float(np.linalg.norm(want)), 1e-12)
                          for batch, expected in zip(outputs, reference) for got, want in zip(batch, expected)]))


def ranked_layers(quantized: onnx.ModelProto, float32: onnx.ModelProto, head_nodes: list[str],
                  batches: list[np.ndarray], uses_plugin: bool = False, progress=None) -> list[tuple[str, float]]:
    """Every quantized layer with the error left at the head's inputs when it alone computes in float, most
    sensitive (least error left) first; `progress` (a tqdm bar or None) advances once per layer."""
    names = head_inputs(float32, head_nodes)
    reference = _outputs(float32, names, batches, uses_plugin)
    errors = []
    for layer in quantized_layers(quantized):
        alone = _outputs(keep_float(quantized, float32, [layer]), names, batches, uses_plugin)
        errors.append((layer, relative_error(alone, reference)))
        if progress is not None:
            progress.update(1)
    return sorted(errors, key=lambda item: item[1])


def float_counts(layers: int) -> list[int]:
    """How many of the most sensitive layers to try in float, in turn: 1, 2, 4, ... up to half of them (beyond
    that an INT8 graph keeps little of INT8's speed, and FP16 is the better choice)."""
    limit = max(1, layers // 2)
    counts = [1]
    while counts[-1] * 2 < limit:
        counts.append(counts[-1] * 2)
    return counts + ([limit] if counts[-1] < limit else [])
