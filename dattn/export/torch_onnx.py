"""torch.nn.Module -> raw ONNX, with the model prepared the way ultralytics prepares it for export.

Below opset 16 torch cannot export `aten::grid_sampler`; there it is written as a default-domain
GridSample placeholder that a later pass (gather or plugin) replaces before anything checks the graph.
"""

from __future__ import annotations

import copy
import io

import onnx
import torch

from dattn.export.targets import NATIVE_GRID_SAMPLE_MIN_OPSET

INPUT_NAME, OUTPUT_NAME = "images", "output0"  # ultralytics' names, which its ONNX backend expects


def _grid_sample_placeholder(g, x, grid, mode, padding_mode, align_corners):
    from torch.onnx import symbolic_helper

    mode, padding_mode = symbolic_helper._get_const(mode, "i", "mode"), symbolic_helper._get_const(padding_mode, "i", "padding_mode")
    if mode != 0 or padding_mode != 0:  # torch's enums: 0 = bilinear, 0 = zeros
        raise ValueError("only bilinear grid sampling with zeros padding can be exported below opset 16")
    align = int(symbolic_helper._get_const(align_corners, "b", "align_corners"))
    return g.op("GridSample", x, grid, mode_s="bilinear", padding_mode_s="zeros", align_corners_i=align)


def prepare_for_export(model: torch.nn.Module, dynamic: bool) -> torch.nn.Module:
    """A fused eval copy whose detection head returns one tensor, as in ultralytics' own ONNX export."""
    model = copy.deepcopy(model).float().eval()
    if hasattr(model, "fuse"):
        model = model.fuse(verbose=False)
    for p in model.parameters():
        p.requires_grad_(False)
    for m in model.modules():
        if hasattr(m, "export") and hasattr(m, "dynamic") and hasattr(m, "stride"):  # Detect and its subclasses
            m.export, m.dynamic, m.format = True, dynamic, "onnx"
    return model


def export_onnx(model: torch.nn.Module, example: torch.Tensor, opset: int, dynamic: bool) -> onnx.ModelProto:
    """Trace `model` on `example` with the TorchScript exporter and return the ONNX model."""
    dynamic_axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: {0: "batch", 2: "anchors"}} if dynamic else None
    if opset < NATIVE_GRID_SAMPLE_MIN_OPSET:
        torch.onnx.register_custom_op_symbolic("::grid_sampler", _grid_sample_placeholder, opset)
    try:
        buffer = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(
                model, (example,), buffer, opset_version=opset, dynamo=False, do_constant_folding=True,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=dynamic_axes,
            )
    finally:
        if opset < NATIVE_GRID_SAMPLE_MIN_OPSET:
            torch.onnx.unregister_custom_op_symbolic("::grid_sampler", opset)
    return onnx.load_from_string(buffer.getvalue())
