"""Surgery on Q/DQ graphs: which layers compute on quantized tensors, and rewiring nodes to read float ones.

ONNX Runtime's `quantize_static` gives a tensor (or a constant) one QuantizeLinear/DequantizeLinear pair and makes
every reader read the rounded copy, also the readers that were not to be quantized (a sampling step, the detection
head, a residual Add beside a quantized Conv, a constant the head shares with the backbone). These functions put
such readers back on the float values, and turn chosen layers back to float (what the sensitivity scan and the INT8
rescue do), without recalibrating: the Q/DQ nodes nothing reads any more are removed.
"""

from __future__ import annotations

import onnx

from dattn.exporting.passes._graph import producers

LAYERS = ("Conv", "ConvTranspose", "MatMul", "Gemm")  # the ops that do the arithmetic INT8 is for


def _rounded_activations(model: onnx.ModelProto) -> dict[str, tuple[str, str]]:
    """DequantizeLinear output -> (the float tensor its QuantizeLinear read, the node that made that tensor or "")."""
    producer = producers(model)
    found = {}
    for node in model.graph.node:
        quantize = producer.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if quantize is not None and quantize.op_type == "QuantizeLinear":
            source = producer.get(quantize.input[0])
            found[node.output[0]] = (quantize.input[0], source.name if source is not None else "")
    return found


def quantized_layers(model: onnx.ModelProto) -> list[str]:
    """The names of the Conv, ConvTranspose, MatMul and Gemm nodes reading a DequantizeLinear, in graph order."""
    producer = producers(model)
    return [n.name for n in model.graph.node if n.op_type in LAYERS
            and any(producer.get(name) is not None and producer[name].op_type == "DequantizeLinear" for name in n.input)]


def _without_unused(model: onnx.ModelProto) -> None:
    """Drop, in place, the nodes whose outputs nothing reads and the initializers no node reads."""
    graph = model.graph
    while True:
        read = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
        unused = [node for node in graph.node if not any(out in read for out in node.output)]
        if not unused:
            break
        for node in unused:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input}
    for init in [init for init in graph.initializer if init.name not in read]:
        graph.initializer.remove(init)


def read_float(quantized: onnx.ModelProto, float32: onnx.ModelProto, readers) -> onnx.ModelProto:
    """A copy of the Q/DQ graph in which the nodes `readers(node)` accepts (Q/DQ nodes aside) read float inputs
    where they read dequantized ones: an activation from before its QuantizeLinear, a quantized constant as the
    float32 graph has it (found through the node of the same name there: quantization keeps the names of the nodes
    it wraps)."""
    model = onnx.ModelProto()
    model.CopyFrom(quantized)
    producer = producers(model)
    constants = {init.name for init in model.graph.initializer}
    float_inputs = {n.name: n.input for n in float32.graph.node}
    float_constants = {init.name: init for init in float32.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or not readers(node):
            continue
        for index, name in enumerate(node.input):
            dequantize = producer.get(name)
            if dequantize is None or dequantize.op_type != "DequantizeLinear":
                continue
            source = producer.get(dequantize.input[0])
            if source is not None and source.op_type == "QuantizeLinear":
                node.input[index] = source.input[0]
            elif dequantize.input[0] in constants and node.name in float_inputs:
                original = float_inputs[node.name][index]
                if original in float_constants and original not in constants:
                    model.graph.initializer.append(float_constants[original])
                    constants.add(original)
                node.input[index] = original
    _without_unused(model)
    return model


def keep_float(quantized: onnx.ModelProto, float32: onnx.ModelProto, layers: list[str]) -> onnx.ModelProto:
    """A copy of the Q/DQ graph in which `layers` compute in float: they read float inputs (read_float), and their
    outputs are no longer rounded for the nodes that read them."""
    wanted = set(layers)
    model = read_float(quantized, float32, lambda node: node.name in wanted)
    rounded = _rounded_activations(model)
    for node in model.graph.node:
        node.input[:] = [rounded[name][0] if name in rounded and rounded[name][1] in wanted else name
                         for name in node.input]
    _without_unused(model)
    return model
