"""Replace Mod by Div, Mul and Sub (and a sign fix), for TensorRT before 8.5, whose ONNX parser has no Mod.

Why: the top-k of YOLO26's and YOLOv10's NMS-free heads takes each winner's class as `index % classes`, and
ultralytics' exporter drops the NMS-free branch for TensorRT < 8.5 for that reason. Rewritten, the branch that
is worth having on a Jetson (JetPack 4.6 and 5.0 have TensorRT 8.2 and 8.4) parses there too.

Mod(fmod=0), integers only, is the floor remainder (the sign of the divisor), as Python's %: where ONNX Div
truncates toward zero, r = a - (a / b) * b, then r + b where r is not 0 and its sign differs from b's.
Mod(fmod=1) (C's fmod, the sign of the dividend) is a - trunc(a / b) * b: for integers the same without the fix,
for floats with the truncation written as the floor of the magnitude.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from ._graph import NodeBuilder, attr, elem_type, is_op, replace_nodes

_NUMPY = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64,
          TensorProto.INT32: np.int32, TensorProto.INT64: np.int64}
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE)


def decompose_mod(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of `model` with every default-domain Mod written as Div, Mul and Sub."""
    return replace_nodes(model, lambda n: is_op(n, "Mod"), _rewrite)


def _rewrite(model: onnx.ModelProto, node: onnx.NodeProto, types: dict) -> list[onnx.NodeProto]:
    a, b = node.input
    dtype = elem_type(types, a) or elem_type(types, b)
    if dtype not in _NUMPY:
        raise ValueError(f"decompose_mod: Mod node {node.name!r} has inputs of type {dtype}; only float and int32/int64")
    fmod = bool(attr(node, "fmod", 0))
    builder = NodeBuilder(model, node.name or "Mod")
    quotient = builder.op("Div", a, b)
    if dtype in _FLOATS:  # ONNX allows floats with fmod=1 only: trunc(q) = sign(q) * floor(|q|)
        quotient = builder.op("Mul", builder.op("Sign", quotient), builder.op("Floor", builder.op("Abs", quotient)))
        builder.op("Sub", a, builder.op("Mul", quotient, b), out=node.output[0])
        return builder.nodes
    product = builder.op("Mul", quotient, b)  # integer Div truncates: a - product is C's remainder
    if fmod:
        builder.op("Sub", a, product, out=node.output[0])
        return builder.nodes
    remainder = builder.op("Sub", a, product)
    zero = builder.const(0, dtype=_NUMPY[dtype])
    differs = builder.op("Not", builder.op("Equal", builder.op("Less", remainder, zero), builder.op("Less", b, zero)))
    nonzero = builder.op("Not", builder.op("Equal", remainder, zero))
    builder.op("Where", builder.op("And", differs, nonzero), builder.op("Add", remainder, b), remainder, out=node.output[0])
    return builder.nodes

