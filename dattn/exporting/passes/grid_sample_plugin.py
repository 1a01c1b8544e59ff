"""Replace GridSample (bilinear / linear, zeros padding) by the DAttnGridSample plugin node.

Why: TensorRT before 8.5 has no GridSample layer, and 10.x-11.1 read opset-20 `mode="linear"` as
nearest; the plugin (dattn/plugin/trt_gridsample) samples bilinearly on every TensorRT from 8.2 on.

The node follows dattn/plugin/contract.py: op type DAttnGridSample in domain "dattn" (TensorRT
>= 10.10 takes the domain as the plugin namespace), inputs X (N,C,H,W) and grid (N,Ho,Wo,2), output
Y (N,C,Ho,Wo), attributes align_corners (int), plugin_version and plugin_namespace (strings, which
the 8.x parser reads). ONNX Runtime runs it with dattn.plugin.ort_reference registered.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from dattn.plugin.contract import ALIGN_CORNERS, DOMAIN, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

from ._graph import attr, elem_type, is_op, rank, replace_nodes

# The plugin's kernel stores fp32 or fp16 and computes in fp32.
_PLUGIN_TYPES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16"}
_DOMAIN_VERSION = 1


def grid_sample_to_plugin(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy of `model` with every default-domain GridSample replaced by a DAttnGridSample node.

    Raises ValueError, naming the node, for a GridSample the plugin cannot serve: a mode other than
    bilinear/linear, padding other than zeros, an input that is not 4-D, or a dtype other than
    float32/float16 shared by X and grid.
    """
    out = replace_nodes(model, lambda node: is_op(node, "GridSample"), _plugin_node)
    if any(node.domain == DOMAIN for node in out.graph.node) and not any(
            imp.domain == DOMAIN for imp in out.opset_import):
        out.opset_import.append(helper.make_opsetid(DOMAIN, _DOMAIN_VERSION))
    return out


def _plugin_node(model: onnx.ModelProto, node: onnx.NodeProto, types: dict) -> list[onnx.NodeProto]:
    label = f"grid_sample_to_plugin: GridSample node {node.name!r}"
    mode = attr(node, "mode", "linear")  # the default is "bilinear" at opsets 16-19, "linear" from 20
    padding = attr(node, "padding_mode", "zeros")
    if mode not in ("bilinear", "linear") or padding != "zeros":
        raise ValueError(f"{label} has mode={mode!r}, padding_mode={padding!r}; "
                         "the plugin only does bilinear/linear with zeros padding")
    x, grid = node.input[0], node.input[1]
    for name in (x, grid):
        if rank(types, name) not in (None, 4):
            raise ValueError(f"{label}: input {name!r} has rank {rank(types, name)}; the plugin samples 4-D NCHW only")
    x_type, grid_type = elem_type(types, x), elem_type(types, grid)
    for name, dtype in ((x, x_type), (grid, grid_type)):
        if dtype is not None and dtype not in _PLUGIN_TYPES:
            raise ValueError(f"{label}: input {name!r} is {TensorProto.DataType.Name(dtype)}; "
                             "the plugin takes float32 or float16")
    if x_type is not None and grid_type is not None and x_type != grid_type:
        raise ValueError(f"{label}: X is {TensorProto.DataType.Name(x_type)} but grid is "
                         f"{TensorProto.DataType.Name(grid_type)}; the plugin needs both of one type")
    return [helper.make_node(
        OP_TYPE, [x, grid], list(node.output), name=node.name or None, domain=DOMAIN,
        **{ALIGN_CORNERS: int(attr(node, "align_corners", 0))},
        plugin_version=PLUGIN_VERSION, plugin_namespace=PLUGIN_NAMESPACE)]
