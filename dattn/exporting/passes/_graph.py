"""Small helpers shared by the ONNX rewrite passes.

The passes replace one node by a handful of new ones. `NodeBuilder` collects those
nodes with unique tensor names and hides the few ops whose signature changed between
opsets 11 and 21 (axes as attribute or as input), so each pass reads as plain math.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

DEFAULT_DOMAINS = ("", "ai.onnx")

# Reduce ops that take `axes` as an input from this opset on (ReduceSum moved earlier).
_AXES_INPUT_SINCE = {"ReduceSum": 13}
_AXES_INPUT_SINCE_OTHERS = 18


def default_opset(model: onnx.ModelProto) -> int:
    """Version of the default ("" / "ai.onnx") domain that `model` imports."""
    for imp in model.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            return imp.version
    raise ValueError("model imports no default-domain opset")


def infer_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Tensor name -> type (elem type and, where known, shape), best effort.

    Shape inference is not strict: a node it cannot type (e.g. a placeholder op that is
    not valid at the model's opset) just leaves its outputs untyped.
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # inference is only a hint here; never fail a pass on it
        inferred = model
    graph = inferred.graph
    types = {v.name: v.type for v in [*graph.input, *graph.value_info, *graph.output]}
    for init in graph.initializer:
        types.setdefault(init.name, helper.make_tensor_type_proto(init.data_type, list(init.dims)))
    return types


def elem_type(types: dict[str, onnx.TypeProto], name: str, default: int | None = None) -> int | None:
    t = types.get(name)
    if t is not None and t.HasField("tensor_type") and t.tensor_type.elem_type:
        return t.tensor_type.elem_type
    return default


def rank(types: dict[str, onnx.TypeProto], name: str) -> int | None:
    t = types.get(name)
    if t is not None and t.HasField("tensor_type") and t.tensor_type.HasField("shape"):
        return len(t.tensor_type.shape.dim)
    return None


class NodeBuilder:
    """Emits replacement nodes (and constant initializers) with names unique in the graph."""

    def __init__(self, model: onnx.ModelProto, prefix: str):
        self.opset = default_opset(model)
        self.graph = model.graph
        self.prefix = prefix
        self.nodes: list[onnx.NodeProto] = []
        self._taken = _all_names(model.graph)
        self._count = 0

    def fresh(self, hint: str = "t") -> str:
        while True:
            self._count += 1
            name = f"{self.prefix}/{hint}_{self._count}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs) -> str:
        """Append one node with a single output and return that output's name."""
        out = out or self.fresh(op_type)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=self.fresh(op_type), **attrs))
        return out

    def const(self, value, dtype=np.int64, hint: str = "c") -> str:
        name = self.fresh(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        if self.opset >= 13:
            return self.op("Unsqueeze", x, self.const(list(axes)))
        return self.op("Unsqueeze", x, axes=list(axes))

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        if self.opset >= 13:
            return self.op("Squeeze", x, self.const(list(axes)))
        return self.op("Squeeze", x, axes=list(axes))

    def reduce(self, op_type: str, x: str, axes: Sequence[int], keepdims: int = 1, out: str | None = None) -> str:
        if self.opset >= _AXES_INPUT_SINCE.get(op_type, _AXES_INPUT_SINCE_OTHERS):
            return self.op(op_type, x, self.const(list(axes)), keepdims=keepdims, out=out)
        return self.op(op_type, x, axes=list(axes), keepdims=keepdims, out=out)

    def cast(self, x: str, to: int) -> str:
        return self.op("Cast", x, to=to)

    def dims(self, shape: str, indices: Sequence[int]) -> str:
        """1-D int64 tensor holding the dims `indices` of a Shape output."""
        return self.op("Gather", shape, self.const(list(indices)), axis=0)


def _all_names(graph: onnx.GraphProto) -> set[str]:
    names = {t.name for t in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        names.add(node.name)
    return names


def replace_nodes(
    model: onnx.ModelProto,
    match: Callable[[onnx.NodeProto], bool],
    rewrite: Callable[[onnx.ModelProto, onnx.NodeProto, dict], list[onnx.NodeProto]],
) -> onnx.ModelProto:
    """Copy `model` and replace each matching top-level node by the nodes `rewrite` returns.

    The replacements go where the original node was, so the graph stays topologically
    sorted. `rewrite(model_copy, node, types)` may add initializers to the copy.
    """
    out = copy.deepcopy(model)
    if not any(match(n) for n in out.graph.node):
        return out
    types = infer_types(out)
    new_nodes: list[onnx.NodeProto] = []
    for node in out.graph.node:
        new_nodes.extend(rewrite(out, node, types) if match(node) else [node])
    del out.graph.node[:]
    out.graph.node.extend(new_nodes)
    return out


def is_op(node: onnx.NodeProto, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in DEFAULT_DOMAINS


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            value = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default



# ---- walking a graph: the one place that maps tensors to the nodes that make and read them -----------------------


def producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """Tensor name -> the node that computes it."""
    return {out: node for node in model.graph.node for out in node.output}


def consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """Tensor name -> the nodes that read it."""
    found: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def nodes_after(model: onnx.ModelProto, start: list[onnx.NodeProto], stop: Sequence[str] = ()) -> list[str]:
    """Names of `start` and of the nodes their outputs feed, up to (not into) nodes of the `stop` op types."""
    readers = consumers(model)
    found, frontier = [], list(start)
    while frontier:
        node = frontier.pop()
        if node.name in found:
            continue
        found.append(node.name)
        frontier += [r for out in node.output for r in readers.get(out, []) if r.op_type not in stop]
    return found


def nodes_before(model: onnx.ModelProto, tensors: list[str], stop: Sequence[str] = ()) -> set[str]:
    """Names of the nodes that compute `tensors`, back to (not into) nodes of the `stop` op types."""
    producer = producers(model)
    found, stack = set(), list(tensors)
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in found or node.op_type in stop:
            continue
        found.add(node.name)
        stack.extend(node.input)
    return found
