"""Convert a float32 graph to float16, keeping the numerically sensitive parts in float32.

Why: TensorRT 11 and TensorRT for RTX build strongly typed networks only (no FP16 builder flag): FP16 means an
ONNX whose tensors are float16. The same file serves ONNX Runtime's CUDA and TensorRT execution providers.

What stays float32, with Casts around it (inputs and outputs stay float32 too):
- GridSample (in every form: native, gather, plugin) and the arithmetic that computes its sampling coordinates,
  back to the offset convolution: in float16
  a coordinate near pixel 20 is rounded to 1/64 pixel, an error of up to 1.6 % in the bilinear weights that the
  gather form computes from it;
- Softmax (attention and the head's distribution focal loss) and LayerNormalization, whose reductions lose
  precision or overflow in float16;
- Resize, whose scales ONNX Runtime requires in float32.
Keeping the head's box decoding in float32 too was measured and made boxes worse (README, "Precision"), so it is
converted with the rest.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from typing import Iterable

import onnx
from onnx import TensorProto

from dattn.plugin.contract import OP_TYPE

from ._graph import elem_type, infer_types, nodes_before, producers

FLOAT32_OPS = ("GridSample", OP_TYPE, "Softmax", "LayerNormalization", "Resize")
# Where a backward walk from a sensitive tensor stops: the layers that do the heavy lifting stay float16.
_HEAVY_OPS = {"Conv", "ConvTranspose", "MatMul", "Gemm", "Softmax", "LayerNormalization"}


def sampling_coordinate_nodes(model: onnx.ModelProto) -> set[str]:
    """The names of the nodes that compute GridSample's sampling coordinates from the offset convolution."""
    return nodes_before(model, [node.input[1] for node in model.graph.node if node.op_type == "GridSample"], _HEAVY_OPS)


def _own_constants(model: onnx.ModelProto, kept: set[str]) -> onnx.ModelProto:
    """A copy in which the kept nodes read constants of their own.

    The converter types a constant once: one shared by a float32 node and a float16 node comes out wrong for
    one of them (ONNX Runtime then refuses the graph).
    """
    out = copy.deepcopy(model)
    graph = out.graph
    initializers = {init.name: init for init in graph.initializer}
    constant_nodes = {node.output[0]: node for node in graph.node if node.op_type == "Constant"}
    consumers: dict[str, set[bool]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.name in kept or node.op_type in FLOAT32_OPS)
    shared = {name for name, sides in consumers.items() if sides == {True, False} and (name in initializers or name in constant_nodes)}
    new_nodes = []
    for node in graph.node:
        if node.name in kept:
            for i, name in enumerate(node.input):
                if name in shared:
                    copy_name = f"{name}/float32"
                    if copy_name not in initializers and name in initializers:
                        initializers[copy_name] = graph.initializer.add()
                        initializers[copy_name].CopyFrom(initializers[name])
                        initializers[copy_name].name = copy_name
                    elif copy_name not in initializers:
                        initializers[copy_name] = None  # marks the Constant node as copied
                        clone = copy.deepcopy(constant_nodes[name])
                        clone.name, clone.output[0] = f"{clone.name}/float32", copy_name
                        new_nodes.append(clone)
                    node.input[i] = copy_name
        new_nodes.append(node)
    del graph.node[:]
    graph.node.extend(new_nodes)
    return out


def convert_to_float16(model: onnx.ModelProto, keep: Iterable[str] = ()) -> onnx.ModelProto:
    """A float16 copy of `model` (float32 inputs and outputs) with the sensitive parts kept in float32.

    keep: names of further nodes to keep in float32: the nodes a rewrite made of a GridSample or a
    LayerNormalization (the gather form, the decomposed normalisation), which their op type no longer tells.
    """
    from onnxconverter_common import float16

    unnamed = [n for n in model.graph.node if not n.name]
    if unnamed:
        raise ValueError(f"convert_to_float16: {len(unnamed)} nodes have no name, so they cannot be kept in float32")
    kept = sampling_coordinate_nodes(model) | set(keep)
    model = _own_constants(model, kept)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the float32 number ... will be truncated": tiny weights, expected
        half = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=list(FLOAT32_OPS),
                                                node_block_list=sorted(kept | {n.name for n in model.graph.node if n.name.endswith("/float32")}))
    return _without_float16_round_trips(_casts_agree_with_their_outputs(half))


def _casts_agree_with_their_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """The converter retypes a Cast-to-float's output as float16 but leaves its `to` attribute, which ONNX Runtime
    refuses (dynamic graphs cast shapes to float for the head's anchors): make the attribute say float16 too."""
    half_outputs = {vi.name for vi in model.graph.value_info if vi.type.tensor_type.elem_type == TensorProto.FLOAT16}
    for node in model.graph.node:
        if node.op_type == "Cast" and node.output[0] in half_outputs:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == TensorProto.FLOAT:
                    attribute.i = TensorProto.FLOAT16
    return model


def _without_float16_round_trips(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the float32 -> float16 -> float32 Cast pairs the converter leaves between two kept nodes.

    They only round a float32 value, and on shape arithmetic (a dynamic graph's arange) TensorRT for RTX's
    builder then fails to type the Range it feeds.
    """
    types = infer_types(model)
    graph = model.graph
    producer = producers(model)
    outputs = {o.name for o in graph.output}

    def cast_to(node, dtype):
        return node.op_type == "Cast" and any(a.name == "to" and a.i == dtype for a in node.attribute)

    renamed = {}  # the second Cast's output -> the float32 tensor that went into the first
    for node in graph.node:
        first = producer.get(node.input[0]) if cast_to(node, TensorProto.FLOAT) else None
        if (first is not None and cast_to(first, TensorProto.FLOAT16) and node.output[0] not in outputs
                and elem_type(types, first.input[0]) == TensorProto.FLOAT):
            renamed[node.output[0]] = first.input[0]
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
    while True:  # the second Casts go first, then the first ones they read
        used = {name for node in graph.node for name in node.input} | outputs
        dead = [n for n in graph.node if n.op_type == "Cast" and n.output[0] not in used]
        if not dead:
            return model
        for node in dead:
            graph.node.remove(node)


def float32_compute(model: onnx.ModelProto) -> Counter:
    """Op types (and how many of each) that still compute in float32 in a converted model (Casts and Constants aside)."""
    types = infer_types(model)
    kept = Counter()
    for node in model.graph.node:
        outputs = [types.get(o) for o in node.output if o]
        if node.op_type not in ("Cast", "Constant") and any(t is not None and t.tensor_type.elem_type == TensorProto.FLOAT for t in outputs):
            kept[node.op_type] += 1
    return kept
