"""Convert a default-domain graph down to an older opset (opset 18, what torch's dynamo exporter writes, to 11-17).

Why: torch's dynamo exporter builds opset 18 and leaves lower opsets to ONNX's version converter, whose
output ONNX Runtime refuses (a Split kept its opset-18 `num_outputs`) and which cannot go below
LayerNormalization's or GridSample's first version. TensorRT 8.x needs opset 17 or lower, JetPack 4.6 13.

How: for each node, every version of its op newer than the target and not newer than the source is one
step, looked up in the tables below, newest first:
- a step that only widened the types (bfloat16, small ints) keeps the node as it is;
- a step that added an attribute keeps the node if the attribute holds its default (it is dropped),
  one that gave an attribute new values keeps it if it holds an old one;
- a step that moved an argument between attribute and input (axes, split), or that changed what the op
  means (Softmax-13 works on one axis where Softmax-11 flattens), is rewritten;
- any other step raises ValueError naming op and version.
One rule is exact only for tensors that are not empty: Reshape's allowzero=1 (torch's view) is dropped when its
shape is computed, since it differs from the older Reshape only where that shape holds a 0.
An op that does not exist at the target opset raises too, unless the caller lists it in `placeholders`:
it then stays as it is for a later pass to replace (GridSample below 16, Einsum below 12).
Only top-level default-domain nodes are converted; a graph with subgraphs or local functions is refused.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ._graph import DEFAULT_DOMAINS, NodeBuilder, attr, default_opset, infer_types, rank

# (op, version) steps whose version only widened the type constraints; checked against onnx.defs by the tests.
TYPE_ONLY = {
    **{(op, v): None for op in ("Add", "Sub", "Mul", "Div") for v in (13, 14)},
    **{(op, 13): None for op in (
        "Abs", "Cast", "Ceil", "Clip", "Concat", "Constant", "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor",
        "Gather", "GatherElements", "Gemm", "Greater", "Identity", "Less", "Log", "MatMul", "Max", "Min", "Mod", "Neg",
        "NonZero", "Pad", "Pow", "Reciprocal", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "Relu", "Reshape",
        "Shape", "Sigmoid", "Sign", "Size", "Slice", "Sqrt", "Tanh", "Tile", "Transpose", "ArgMax", "ArgMin",
        "GatherND", "ScatterElements", "ScatterND")},
    **{(op, 12): None for op in ("Clip", "Max", "Min", "MaxPool", "Pow", "ReduceMax", "ReduceMin")},
    **{(op, 14): None for op in ("Identity", "Relu", "CumSum")},
    ("Pow", 15): None,
    **{(op, 16): None for op in ("Where", "Identity", "LeakyRelu", "LessOrEqual", "GreaterOrEqual")},
}

# (op, version) -> {attribute: default} for steps that only added attributes.
ADDED_ATTRIBUTES = {
    ("ArgMax", 12): {"select_last_index": 0},
    ("ArgMin", 12): {"select_last_index": 0},
    ("GatherND", 12): {"batch_dims": 0},
    ("ScatterND", 16): {"reduction": "none"},
    ("ScatterElements", 16): {"reduction": "none"},
    ("Resize", 18): {"antialias": 0, "axes": None, "keep_aspect_ratio_policy": "stretch"},
}

# (op, version) -> (attribute, values it gained) for steps that only gave an attribute new values.
ADDED_ATTRIBUTE_VALUES = {
    ("ScatterElements", 18): ("reduction", {"max", "min"}),
    ("ScatterND", 18): ("reduction", {"max", "min"}),
}

# Steps that turned an attribute into an input (`axes` of the reductions and Unsqueeze/Squeeze, `split`).
_REDUCE_18 = ("ReduceMean", "ReduceProd", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceLogSum",
              "ReduceLogSumExp", "ReduceSumSquare")
INPUT_TO_ATTRIBUTE = {
    ("ReduceSum", 13): (1, "axes"), ("Unsqueeze", 13): (1, "axes"), ("Squeeze", 13): (1, "axes"),
    ("Split", 13): (1, "split"), **{(op, 18): (1, "axes") for op in _REDUCE_18},
}
_NOOP_WITH_EMPTY_AXES = "noop_with_empty_axes"  # the reductions' attribute that came with the axes input


def downgrade_opset(model: onnx.ModelProto, target: int, placeholders=()) -> onnx.ModelProto:
    """Return a copy of `model` whose default-domain nodes and opset import are those of opset `target`.

    `placeholders`: op types that do not exist at `target` but stay, because a later pass replaces them.
    Raises ValueError, naming the node, for anything it cannot convert exactly.
    """
    source = default_opset(model)
    if target > source:
        raise ValueError(f"downgrade_opset: the model is at opset {source}, below the target {target}")
    if model.functions or any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
                              for n in model.graph.node for a in n.attribute):
        raise ValueError("downgrade_opset: graphs with subgraphs or local functions are not supported")
    out = copy.deepcopy(model)
    if target == source:
        return out
    step = _Downgrade(out, source, target, frozenset(placeholders))
    nodes = [new for node in out.graph.node for new in step.convert(node)]
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    step.drop_unused_constants()
    for imp in out.opset_import:
        if imp.domain in DEFAULT_DOMAINS:
            imp.version = target
    return out


class _Downgrade:
    def __init__(self, model: onnx.ModelProto, source: int, target: int, placeholders: frozenset):
        self.model, self.source, self.target, self.placeholders = model, source, target, placeholders
        self.types = infer_types(model)
        self.builder = NodeBuilder(model, "downgrade")
        self.released: set[str] = set()  # constants that were inputs and became attributes
        self.constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS and attr(node, "value") is not None:
                self.constants[node.output[0]] = numpy_helper.to_array(attr(node, "value"))

    def convert(self, node: onnx.NodeProto) -> list[onnx.NodeProto]:
        if node.domain not in DEFAULT_DOMAINS:
            return [node]
        label = f"downgrade_opset: {node.op_type} node {node.name or node.output[0]!r}"
        if _since(node.op_type, self.source) is None:
            raise ValueError(f"{label}: {node.op_type} is not an opset-{self.source} op")
        if _since(node.op_type, self.target) is None:
            if node.op_type in self.placeholders:
                return [node]
            raise ValueError(f"{label}: {node.op_type} does not exist at opset {self.target}; "
                             "replace it first (e.g. decompose_layer_norm, grid_sample_to_gather)")
        before, after = [], []
        version = _since(node.op_type, self.source)
        while version > self.target:
            self._step(node, version, label, before, after)
            version = _since(node.op_type, version - 1)
        return [*before, node, *after]

    def _step(self, node, version, label, before, after) -> None:
        key = (node.op_type, version)
        if key in TYPE_ONLY:
            return
        if key in ADDED_ATTRIBUTES:
            self._drop_default_attributes(node, ADDED_ATTRIBUTES[key], version, label)
        elif key in ADDED_ATTRIBUTE_VALUES:
            name, values = ADDED_ATTRIBUTE_VALUES[key]
            if attr(node, name) in values:
                raise ValueError(f"{label}: {name}={attr(node, name)!r} needs opset {version} or later")
        elif key in INPUT_TO_ATTRIBUTE:
            self._input_to_attribute(node, *INPUT_TO_ATTRIBUTE[key], label)
        elif key == ("Reshape", 14):
            self._reshape_without_allowzero(node, label)
        elif key == ("Split", 18):
            self._split_sizes_from_num_outputs(node, label)
        elif key in {("Softmax", 13), ("LogSoftmax", 13), ("Hardmax", 13)}:
            self._softmax_on_last_axis(node, label, before, after)
        elif key == ("Resize", 13):
            self._resize_with_roi_and_scales(node)
        elif key == ("Shape", 15):
            self._shape_without_start_end(node, after)
        elif key == ("Constant", 12):
            self._constant_as_tensor(node)
        else:
            raise ValueError(f"{label}: no rule to take {node.op_type} below its opset-{version} version")

    def _drop_default_attributes(self, node, defaults: dict, version: int, label: str) -> None:
        for a in list(node.attribute):
            if a.name in defaults:
                if helper.get_attribute_value(a) not in (defaults[a.name], _encoded(defaults[a.name])):
                    raise ValueError(f"{label}: {a.name}={attr(node, a.name)!r} needs opset {version} or later")
                node.attribute.remove(a)

    def _input_to_attribute(self, node, index: int, name: str, label: str) -> None:
        if _has_attribute(node, _NOOP_WITH_EMPTY_AXES):
            if attr(node, _NOOP_WITH_EMPTY_AXES):
                raise ValueError(f"{label}: noop_with_empty_axes=1 has no older form")
            _remove_attribute(node, _NOOP_WITH_EMPTY_AXES)
        if len(node.input) <= index or not node.input[index]:
            return
        value = self.constants.get(node.input[index])
        if value is None:
            raise ValueError(f"{label}: input {name!r} is computed in the graph; an attribute needs a constant")
        self.released.add(node.input[index])
        del node.input[index:]  # `axes` / `split` is the last input of these ops
        node.attribute.append(helper.make_attribute(name, [int(v) for v in value.reshape(-1)]))

    def _reshape_without_allowzero(self, node, label: str) -> None:
        """allowzero=1 (torch's view) reads a 0 in the shape as 0, the older Reshape as 'copy that dim'."""
        if attr(node, "allowzero", 0):
            shape = self.constants.get(node.input[1])
            if shape is not None and (shape == 0).any():
                raise ValueError(f"{label}: allowzero=1 with a 0 in the shape needs opset 14 or later")
            # A computed shape holds a 0 only for an empty tensor (e.g. a batch of none), which a deployed
            # model is never given; the TorchScript exporter writes these views as allowzero=0 Reshapes too.
        _remove_attribute(node, "allowzero")

    def _split_sizes_from_num_outputs(self, node, label: str) -> None:
        if not _has_attribute(node, "num_outputs"):
            return
        count = attr(node, "num_outputs")
        _remove_attribute(node, "num_outputs")
        size = _dim(self.types, node.input[0], attr(node, "axis", 0))
        if size is None:
            raise ValueError(f"{label}: num_outputs splits an axis of unknown size; the older Split needs the sizes")
        chunk = math.ceil(size / count)  # opset 18's rule: equal chunks, the last one smaller if need be
        sizes = [chunk] * (count - 1) + [size - chunk * (count - 1)]
        name = self.builder.const(sizes, hint="split")
        self.constants[name] = np.asarray(sizes, dtype=np.int64)
        node.input.append(name)

    def _softmax_on_last_axis(self, node, label: str, before: list, after: list) -> None:
        """Opset 11 flattens the axes from `axis` on; the same as opset 13's one-axis op only on the last axis."""
        axis, r = attr(node, "axis", -1), rank(self.types, node.input[0])
        _remove_attribute(node, "axis")
        if axis == -1 or (r is not None and axis == r - 1):
            node.attribute.append(helper.make_attribute("axis", -1))
            return
        if r is None:
            raise ValueError(f"{label}: axis={axis} on an input of unknown rank")
        axis %= r
        to_last = [d for d in range(r) if d != axis] + [axis]
        back = [to_last.index(d) for d in range(r)]
        moved, result = self.builder.fresh("to_last"), self.builder.fresh("on_last")
        before.append(helper.make_node("Transpose", [node.input[0]], [moved], name=self.builder.fresh("Transpose"), perm=to_last))
        after.append(helper.make_node("Transpose", [result], [node.output[0]], name=self.builder.fresh("Transpose"), perm=back))
        node.input[0], node.output[0] = moved, result
        node.attribute.append(helper.make_attribute("axis", -1))

    def _resize_with_roi_and_scales(self, node) -> None:
        """Opset 11 requires roi and scales as inputs; an empty tensor stands for 'not given'."""
        while len(node.input) < 3:
            node.input.append("")
        for index in (1, 2):
            if not node.input[index]:
                node.input[index] = self.builder.const([], dtype=np.float32, hint="empty")

    def _shape_without_start_end(self, node, after: list) -> None:
        start, end = attr(node, "start", 0), attr(node, "end")
        _remove_attribute(node, "start")
        _remove_attribute(node, "end")
        if start == 0 and end is None:
            return
        whole = self.builder.fresh("shape")
        ends = [np.iinfo(np.int64).max if end is None else end]
        after.append(helper.make_node("Slice", [whole, self.builder.const([start]), self.builder.const(ends), self.builder.const([0])],
                                      [node.output[0]], name=self.builder.fresh("Slice")))
        node.output[0] = whole

    def _constant_as_tensor(self, node) -> None:
        """value_float(s) / value_int(s) / value_string(s) arrived at opset 12; older ones take `value`."""
        kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64, "value_ints": np.int64,
                 "value_string": object, "value_strings": object}
        for a in list(node.attribute):
            if a.name in kinds:
                value = np.asarray(helper.get_attribute_value(a), dtype=kinds[a.name])
                node.attribute.remove(a)
                node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(value)))

    def drop_unused_constants(self) -> None:
        graph = self.model.graph
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        for init in [i for i in graph.initializer if i.name in self.released and i.name not in used]:
            graph.initializer.remove(init)
        for node in [n for n in graph.node if n.op_type == "Constant" and n.output[0] in self.released and n.output[0] not in used]:
            graph.node.remove(node)


def _since(op_type: str, opset: int) -> int | None:
    """The version of `op_type` in force at `opset`, or None if the op does not exist there."""
    try:
        return onnx.defs.get_schema(op_type, opset, "").since_version
    except onnx.defs.SchemaError:
        return None


def _dim(types: dict, name: str, axis: int) -> int | None:
    t = types.get(name)
    if t is None or not t.tensor_type.HasField("shape"):
        return None
    dims = t.tensor_type.shape.dim
    d = dims[axis]
    return d.dim_value if d.HasField("dim_value") else None


def _has_attribute(node, name: str) -> bool:
    return any(a.name == name for a in node.attribute)


def _remove_attribute(node, name: str) -> None:
    for a in [a for a in node.attribute if a.name == name]:
        node.attribute.remove(a)


def _encoded(value):
    return value.encode() if isinstance(value, str) else value

