"""Raw ONNX -> deployable ONNX in FP32, FP16 or INT8: the passes, in the order that keeps each one simple.

    einsum -> LayerNorm (where the target needs it) -> [FP16 conversion] -> GridSample form -> onnxslim -> checks
    FP32 graph -> Q/DQ calibration (INT8; on the native/gather graph, the plugin node put in afterwards)

FP16 conversion comes before the GridSample rewrite so that the gather and plugin forms sample in float32.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx

from dattn.export import passes
from dattn.export.targets import ExportPlan


def _common(raw: onnx.ModelProto, plan: ExportPlan) -> onnx.ModelProto:
    model = passes.decompose_einsum(raw)
    return passes.decompose_layer_norm(model) if plan.decompose_layer_norm else model


def _finish(model: onnx.ModelProto, grid_sample: str, simplify: bool) -> onnx.ModelProto:
    if grid_sample == "gather":
        model = passes.grid_sample_to_gather(model)
    elif grid_sample == "plugin":
        model = passes.grid_sample_to_plugin(model)
    if simplify:
        model = _simplified(model)
    passes.assert_no_float64(model)
    onnx.checker.check_model(model)
    return model


def _simplified(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    model = onnxslim.slim(model)
    # onnxslim cannot type the outputs of custom ops and records them as UNDEFINED, which ORT rejects
    untyped = [vi for vi in model.graph.value_info if vi.type.tensor_type.elem_type == onnx.TensorProto.UNDEFINED]
    for vi in untyped:
        model.graph.value_info.remove(vi)
    return model


def float32_onnx(raw: onnx.ModelProto, plan: ExportPlan, simplify: bool) -> onnx.ModelProto:
    return _finish(_common(raw, plan), plan.grid_sample, simplify)


def float16_onnx(raw: onnx.ModelProto, plan: ExportPlan, simplify: bool) -> tuple[onnx.ModelProto, Counter]:
    """The FP16 graph and the op types that still compute in FP32 (by count)."""
    half = passes.convert_to_float16(_common(raw, plan))
    return _finish(half, plan.grid_sample, simplify), passes.float32_compute(half)


def int8_onnx(raw: onnx.ModelProto, plan: ExportPlan, simplify: bool, images: list[Path], imgsz: tuple[int, int],
              flavour: str, head_scope: str) -> tuple[onnx.ModelProto, int]:
    """The Q/DQ graph calibrated on `images`, and how many nodes stayed in float."""
    from dattn.export.quantize import float_nodes, quantize_int8

    base = _common(raw, plan)
    kept = set(float_nodes(base, head_scope))
    samplers = [n.name for n in base.graph.node if n.op_type == "GridSample"]
    runnable_form = "native" if plan.grid_sample == "plugin" else plan.grid_sample  # ONNX Runtime calibrates it
    model = _finish(base, runnable_form, simplify)
    # The gather form's nodes are named after the GridSample they replace.
    keep = [n.name for n in model.graph.node if n.name in kept or any(n.name.startswith(s + "/") for s in samplers)]
    quantized = quantize_int8(model, images, imgsz, flavour, keep)
    if plan.grid_sample == "plugin":
        quantized = passes.grid_sample_to_plugin(quantized)
    onnx.checker.check_model(quantized)
    return quantized, len(keep)
