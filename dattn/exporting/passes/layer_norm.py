"""Rewrite LayerNormalization (opset 17+) into ReduceMean / Sub / Mul / Add / Sqrt / Div.

Why: TensorRT 8.2-8.5 (JetPack 4.6.x and 5.x) cannot parse LayerNormalization. The
decomposition follows the operator's own definition: statistics over the axes from `axis`
to the last, computed in `stash_type` (float32 by default; inputs of another float type are
cast to it and the normalised value cast back before Scale and B), Y = (X - mean) /
sqrt(var + epsilon) * Scale + B. The optional Mean and InvStdDev outputs are produced when
the graph uses them.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from ._graph import NodeBuilder, attr, elem_type, is_op, rank, replace_nodes


def decompose_layer_norm(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of `model` with every default-domain LayerNormalization decomposed."""
    return replace_nodes(model, lambda n: is_op(n, "LayerNormalization"), _rewrite)


def _rewrite(model: onnx.ModelProto, node: onnx.NodeProto, types: dict) -> list[onnx.NodeProto]:
    axis = attr(node, "axis", -1)
    epsilon = attr(node, "epsilon", 1e-5)
    stash = attr(node, "stash_type", TensorProto.FLOAT)
    x = node.input[0]
    if axis < 0:
        axes = list(range(axis, 0))
    else:
        r = rank(types, x)
        if r is None:
            raise ValueError(f"decompose_layer_norm: node {node.name!r} has axis={axis} but the rank of {x!r} is unknown")
        axes = list(range(axis, r))
    x_type = elem_type(types, x)
    if x_type is None:
        raise ValueError(f"decompose_layer_norm: node {node.name!r}: the element type of {x!r} is unknown")
    outputs = list(node.output) + [""] * (3 - len(node.output))
    b = NodeBuilder(model, node.name or "LayerNormalization")

    xs = b.cast(x, stash) if x_type != stash else x
    mean = b.reduce("ReduceMean", xs, axes, keepdims=1, out=outputs[1] or None)
    centred = b.op("Sub", xs, mean)
    variance = b.reduce("ReduceMean", b.op("Mul", centred, centred), axes, keepdims=1)
    eps = b.const(epsilon, dtype=helper.tensor_dtype_to_np_dtype(stash), hint="epsilon")
    std = b.op("Sqrt", b.op("Add", variance, eps))
    normalised = b.op("Div", centred, std)
    if outputs[2]:
        b.op("Reciprocal", std, out=outputs[2])
    if x_type != stash:
        normalised = b.cast(normalised, x_type)
    has_bias = len(node.input) > 2 and node.input[2]
    scaled = b.op("Mul", normalised, node.input[1], out=None if has_bias else outputs[0])
    if has_bias:
        b.op("Add", scaled, node.input[2], out=outputs[0])
    return b.nodes
