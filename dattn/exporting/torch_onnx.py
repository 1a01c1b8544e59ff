"""torch.nn.Module -> raw ONNX at the requested opset, with the model prepared the way ultralytics prepares it.

Two exporters:
- "dynamo": torch.export's graph translated by torch.onnx (needs onnxscript). It builds opset 18 and up;
  for a lower opset the graph is built at 18 and converted by our own downgrade_opset (ONNX's version
  converter, which torch would use, writes models ONNX Runtime refuses), LayerNormalization decomposed
  below 17 as the TorchScript exporter does.
- "torchscript": the deprecated tracer (torch.jit tracing inside torch.onnx.export(dynamo=False)).

Either way, below opset 16 GridSample is written as a default-domain placeholder node that a later pass
(gather or plugin) replaces before anything checks the graph.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings

import onnx
import torch

from dattn.errors import ConfigError
from dattn.exporting import passes
from dattn.exporting.head import HeadInfo, prepare_head
from dattn.runtime.heads import HEADS, Head
from dattn.exporting.targets import DEFAULT_EXPORTER, EXPORTERS, NATIVE_GRID_SAMPLE_MIN_OPSET

INPUT_NAME, OUTPUT_NAME = "images", "output0"  # ultralytics' names, which its ONNX backend expects
DYNAMO_MIN_OPSET = 18  # below it torch.onnx falls back to ONNX's version converter
LAYER_NORM_MIN_OPSET = 17
STRIDE = 32  # the detector's largest stride: dynamic height and width are multiples of it
# What the placeholders stand for below their first opset; later passes always replace them.
_PLACEHOLDERS = ("GridSample", "Einsum")


def _grid_sample_placeholder(g, x, grid, mode, padding_mode, align_corners):
    from torch.onnx import symbolic_helper

    mode, padding_mode = symbolic_helper._get_const(mode, "i", "mode"), symbolic_helper._get_const(padding_mode, "i", "padding_mode")
    if mode != 0 or padding_mode != 0:  # torch's enums: 0 = bilinear, 0 = zeros
        raise ValueError("only bilinear grid sampling with zeros padding can be exported below opset 16")
    align = int(symbolic_helper._get_const(align_corners, "b", "align_corners"))
    return g.op("GridSample", x, grid, mode_s="bilinear", padding_mode_s="zeros", align_corners_i=align)


def prepare_for_export(model: torch.nn.Module, dynamic: bool, end2end: bool | None = None,
                       imgsz: tuple[int, int] | None = None, source="the model") -> tuple[torch.nn.Module, HeadInfo]:
    """A fused eval copy whose head, on the branch asked for, returns the one tensor ultralytics' ONNX export has;
    and what that head is (dattn.exporting.head)."""
    model = copy.deepcopy(model).float().eval()
    head = prepare_head(model, dynamic, end2end, imgsz, source)  # before fusing, which drops the branch not taken
    if hasattr(model, "fuse"):
        model = model.fuse(verbose=False)
    for p in model.parameters():
        p.requires_grad_(False)
    return model, head


def _output_axes(head: Head) -> dict[int, str]:
    """The output's dynamic axes, named as ultralytics names them: its candidates vary with the input."""
    return {0: "batch", 2: "anchors"} if head.field_axis == 1 else {0: "batch", 1: "detections"}


def export_onnx(model: torch.nn.Module, example: torch.Tensor, opset: int, dynamic: bool, exporter: str = DEFAULT_EXPORTER,
                head: Head = HEADS["anchors"]) -> onnx.ModelProto:
    """Export `model` run on `example` with `exporter` ("dynamo" or "torchscript") and return the ONNX model; `head`
    (dattn.runtime.heads) names the output's dynamic axes."""
    if exporter == "dynamo":
        return _export_dynamo(model, example, opset, dynamic, _output_axes(head))
    if exporter == "torchscript":
        return _export_torchscript(model, example, opset, dynamic, _output_axes(head))
    raise ConfigError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")


def _export_torchscript(model, example, opset, dynamic, output_axes) -> onnx.ModelProto:
    dynamic_axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"}, OUTPUT_NAME: output_axes} if dynamic else None
    if opset < NATIVE_GRID_SAMPLE_MIN_OPSET:
        torch.onnx.register_custom_op_symbolic("::grid_sampler", _grid_sample_placeholder, opset)
    try:
        buffer = io.BytesIO()
        with torch.no_grad(), _torchscript_deprecation_silenced():
            torch.onnx.export(
                model, (example,), buffer, opset_version=opset, dynamo=False, do_constant_folding=True,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=dynamic_axes,
            )
    finally:
        if opset < NATIVE_GRID_SAMPLE_MIN_OPSET:
            torch.onnx.unregister_custom_op_symbolic("::grid_sampler", opset)
    return onnx.load_from_string(buffer.getvalue())


@contextlib.contextmanager
def _torchscript_deprecation_silenced():
    # torch >= 2.9 deprecates the TorchScript exporter and its tracing; choosing it with
    # exporter="torchscript" is deliberate, so its notices would only be noise on the console.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"You are using the legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"The feature will be removed", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.trace` is deprecated", category=DeprecationWarning)
        # RT-DETR gathers its top-k queries by index (never negative); verification checks the result anyway.
        warnings.filterwarnings("ignore", message=r"Exporting aten::index operator of advanced indexing", category=UserWarning)
        yield


def _export_dynamo(model, example, opset, dynamic, output_axes) -> onnx.ModelProto:
    dynamic_shapes = None
    if dynamic:
        batch, rows, cols = torch.export.Dim("batch"), torch.export.Dim("rows"), torch.export.Dim("cols")
        dynamic_shapes = ({0: batch, 2: STRIDE * rows, 3: STRIDE * cols},)
    with torch.no_grad(), warnings.catch_warnings():
        # ultralytics' Detect caches its anchors and strides on itself while tracing; the graph recomputes them
        # from the input's shape, so torch.export's advice to make them buffers does not apply.
        warnings.filterwarnings("ignore", message=r"The tensor attributes .* were assigned during export", category=UserWarning)
        program = torch.onnx.export(
            model, (example,), dynamo=True, opset_version=max(opset, DYNAMO_MIN_OPSET), optimize=True, verbose=False,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=dynamic_shapes,
        )
    model_proto = _without_torch_metadata(program.model_proto)
    if dynamic:
        _name_dynamic_axes(model_proto, output_axes)
    if opset < DYNAMO_MIN_OPSET:
        if opset < LAYER_NORM_MIN_OPSET:
            model_proto = passes.decompose_layer_norm(model_proto)
        model_proto = passes.downgrade_opset(model_proto, opset, placeholders=_PLACEHOLDERS)
    model_proto.ir_version = onnx.helper.find_min_ir_version_for(list(model_proto.opset_import))
    return model_proto


def _without_torch_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop the per-node and per-tensor notes torch records (source lines, FX names): deployment needs none."""
    graph = model.graph
    for item in [*graph.node, *graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        del item.metadata_props[:]
    del graph.metadata_props[:]
    return model


def _name_dynamic_axes(model: onnx.ModelProto, output_axes: dict[int, str]) -> None:
    """The TorchScript exporter's names for the dynamic axes, instead of torch.export's symbols ("32*rows")."""
    for value, names in ((model.graph.input[0], {0: "batch", 2: "height", 3: "width"}), (model.graph.output[0], output_axes)):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis in names and not dim.HasField("dim_value"):
                dim.dim_param = names[axis]
