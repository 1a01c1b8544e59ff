"""Find float64 in an ONNX graph.

Why: the TorchScript exporter turns a float64 `torch.linspace` into float64 constants and a
Cast(to=DOUBLE); the GridSample grid then becomes float64 and ONNX Runtime refuses the model
("Could not find an implementation for GridSample(16)"), and TensorRT has no float64 at all.
A deployable model must not carry any.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto

from ._graph import infer_types

_DOUBLE = TensorProto.DOUBLE


def find_float64(model: onnx.ModelProto) -> list[str]:
    """Describe every float64 tensor, initializer, Cast/CastLike-to-double node and constant attribute.

    Tensor types come from (non-strict) shape inference, so intermediate tensors count too.
    Subgraphs (If / Loop / Scan bodies) are searched as well.
    """
    found: list[str] = []
    for name, tp in infer_types(model).items():
        if tp.HasField("tensor_type") and tp.tensor_type.elem_type == _DOUBLE:
            found.append(f"tensor {name!r}")
    _search_graph(model.graph, found)
    return list(dict.fromkeys(found))  # de-duplicated, first-seen order


def assert_no_float64(model: onnx.ModelProto, show: int = 5) -> None:
    """Raise ValueError listing the first `show` float64 offenders, if any."""
    found = find_float64(model)
    if found:
        more = f" and {len(found) - show} more" if len(found) > show else ""
        raise ValueError(
            f"model holds {len(found)} float64 item(s): {', '.join(found[:show])}{more}. "
            "Build constants (e.g. reference grids) in the input's dtype, e.g. torch.arange(..., dtype=x.dtype)."
        )


def _search_graph(graph: onnx.GraphProto, found: list[str]) -> None:
    for init in graph.initializer:
        if init.data_type == _DOUBLE:
            found.append(f"initializer {init.name!r}")
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.type.tensor_type.elem_type == _DOUBLE:
            found.append(f"tensor {vi.name!r}")
    for node in graph.node:
        label = f"{node.op_type} node {node.name or node.output[0]!r}"
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == _DOUBLE:
                found.append(f"{label} (Cast to DOUBLE)")
            elif a.type == onnx.AttributeProto.TENSOR and a.t.data_type == _DOUBLE:
                found.append(f"{label} attribute {a.name!r} (float64 constant)")
            elif a.type == onnx.AttributeProto.TENSORS and any(t.data_type == _DOUBLE for t in a.tensors):
                found.append(f"{label} attribute {a.name!r} (float64 constants)")
            elif a.name == "dtype" and a.type == onnx.AttributeProto.INT and a.i == _DOUBLE:
                found.append(f"{label} attribute 'dtype' (DOUBLE)")
            for sub in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                _search_graph(sub, found)
