"""Raw ONNX -> deployable ONNX in FP32, FP16 or INT8: the passes, in the order that keeps each one simple.

    einsum -> LayerNorm, Mod (where the target needs them) -> GridSample form -> [FP16 conversion] -> onnxslim -> checks
    FP32 graph -> Q/DQ calibration (INT8; on the native/gather graph, the plugin node put in afterwards)

The sensitive nodes are named before the rewrites, which name the nodes they make after the node they replace:
FP16 conversion and INT8 calibration keep those in float.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx

from dattn.exporting import passes
from dattn.exporting.targets import ExportPlan
from dattn.runtime.heads import Head


def _common(raw: onnx.ModelProto, plan: ExportPlan) -> tuple[onnx.ModelProto, set[str]]:
    """einsum and LayerNorm rewritten; and the names of the sampling and normalisation nodes, taken before."""
    model = passes.decompose_einsum(raw)
    sensitive = {n.name for n in model.graph.node if n.op_type in ("GridSample", "LayerNormalization")}
    sensitive |= passes.sampling_coordinate_nodes(model)
    if plan.decompose_layer_norm:
        model = passes.decompose_layer_norm(model)
    return (passes.decompose_mod(model) if plan.decompose_mod else model), sensitive


def _named_after(model: onnx.ModelProto, names: set[str]) -> list[str]:
    """The nodes of `model` named in `names`, or made by a rewrite of one of them."""
    return [n.name for n in model.graph.node if n.name in names or any(n.name.startswith(name + "/") for name in names)]


def _with_form(model: onnx.ModelProto, grid_sample: str) -> onnx.ModelProto:
    if grid_sample == "gather":
        return passes.grid_sample_to_gather(model)
    if grid_sample == "plugin":
        return passes.grid_sample_to_plugin(model)
    return model


def _checked(model: onnx.ModelProto, simplify: bool) -> onnx.ModelProto:
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
    model, _ = _common(raw, plan)
    return _checked(_with_form(model, plan.grid_sample), simplify)


def float16_onnx(raw: onnx.ModelProto, plan: ExportPlan, simplify: bool) -> tuple[onnx.ModelProto, Counter]:
    """The FP16 graph and the op types that still compute in FP32 (by count)."""
    model, sensitive = _common(raw, plan)
    model = _with_form(model, plan.grid_sample)
    half = passes.convert_to_float16(model, keep=_named_after(model, sensitive))
    return _checked(half, simplify), passes.float32_compute(half)


def int8_onnx(raw: onnx.ModelProto, plan: ExportPlan, simplify: bool, images: list[Path], imgsz: tuple[int, int],
              flavour: str, head_weights: str, head: Head) -> tuple[onnx.ModelProto, int]:
    """The Q/DQ graph calibrated on `images`, and how many nodes stayed in float."""
    from dattn.exporting.quantize import float_nodes, quantize_int8

    model, sensitive = _common(raw, plan)
    runnable_form = "native" if plan.grid_sample == "plugin" else plan.grid_sample  # ONNX Runtime calibrates it
    model = _checked(_with_form(model, runnable_form), simplify)
    keep = sorted(set(_named_after(model, sensitive)) | set(float_nodes(model, head_weights)))  # + stem and head
    quantized = quantize_int8(model, images, imgsz, flavour, keep, head)
    if plan.grid_sample == "plugin":
        quantized = passes.grid_sample_to_plugin(quantized)
    onnx.checker.check_model(quantized)
    return quantized, len(keep)
