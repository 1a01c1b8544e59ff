"""`dattn.export`: checkpoint -> deployable ONNX (verified against PyTorch), or a TensorRT engine."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import onnx
import torch

from dattn.errors import ConfigError, VerificationError
from dattn.export import passes
from dattn.export.files import staged_beside, write_atomically
from dattn.export.metadata import dattn_metadata, ultralytics_metadata, with_metadata
from dattn.export.targets import DEFAULT_EXPORTER, ExportPlan, plan_export
from dattn.export.torch_onnx import export_onnx, prepare_for_export

FORMATS = ("onnx", "engine")
VERIFY_RTOL = 1e-3  # raw-output error allowed, relative to the output's scale


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def normalize_imgsz(imgsz) -> tuple[int, int]:
    sizes = [imgsz] * 2 if isinstance(imgsz, int) else list(imgsz)
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or any(not isinstance(s, int) or s < 32 or s % 32 for s in sizes):
        raise ConfigError(f"--imgsz must be one or two multiples of 32 (the model's stride), got {imgsz}")
    return sizes[0], sizes[1]


def resolve_output(weights: Path, output: str | Path | None, suffix: str) -> Path:
    """Where to write: `output`, or the weights' name with `suffix`; never the weights themselves."""
    path = Path(output) if output else weights.with_suffix(suffix)
    if path.exists() and path.resolve() == weights.resolve():
        raise ConfigError(f"{path}: refusing to overwrite the input weights; pass another --output")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; pass a file path to --output")
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"{path}: cannot be written, folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{path}: cannot be written, folder {folder} is not writable")
    return path


def deployable_onnx(raw: onnx.ModelProto, plan: ExportPlan, simplify: bool) -> onnx.ModelProto:
    """The passes, in order: einsum, LayerNorm (if the target needs it), GridSample form, cleanup."""
    model = passes.decompose_einsum(raw)
    if plan.decompose_layer_norm:
        model = passes.decompose_layer_norm(model)
    if plan.grid_sample == "gather":
        model = passes.grid_sample_to_gather(model)
    elif plan.grid_sample == "plugin":
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


def _load_model(weights: Path):
    from dattn.ultralytics.load import load

    return load(weights).model


def export(
    weights: str | Path,
    format: str = "onnx",
    imgsz=640,
    batch: int = 1,
    dynamic: bool = False,
    opset: int | None = None,
    grid_sample: str = "auto",
    target: str = "ort",
    simplify: bool = True,
    verify: bool = True,
    output: str | Path | None = None,
    device: str = "cpu",
    conf: float = 0.25,
    exporter: str = DEFAULT_EXPORTER,
) -> Path:
    """Export a YOLO checkpoint (with or without DAttention) and return the path written.

    format "onnx" writes a deployable ONNX for `target` and, with `verify`, checks it against PyTorch
    with ONNX Runtime; "engine" also builds a TensorRT engine from it (needs the `tensorrt` package).
    Raises ConfigError or CheckpointError for bad input (nothing is written then) and
    VerificationError when ONNX Runtime disagrees with PyTorch. `exporter` picks torch's ONNX exporter:
    "dynamo" (torch.export-based) or "torchscript" (deprecated by torch).
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    size = normalize_imgsz(imgsz)
    plan = plan_export(target, opset, grid_sample)
    weights = Path(weights)
    onnx_path = resolve_output(weights, output if format == "onnx" else None, ".onnx")
    engine_path = resolve_output(weights, output, ".engine") if format == "engine" else None
    if format == "engine":
        from dattn.export.tensorrt import check_tensorrt_available

        check_tensorrt_available()

    started = time.perf_counter()
    _say(f"dattn export: loading {weights}")
    model = _load_model(weights)
    _say(f"dattn export: tracing at {batch}x3x{size[0]}x{size[1]}, opset {plan.opset}{', dynamic' if dynamic else ''}, {exporter} exporter")
    example = torch.zeros(batch, 3, *size, device=device)
    raw = export_onnx(prepare_for_export(model, dynamic).to(device), example, plan.opset, dynamic, exporter)
    _say(f"dattn export: rewriting (einsum, grid-sample {plan.grid_sample}{', layer-norm' if plan.decompose_layer_norm else ''}"
         f"{', onnxslim' if simplify else ''})")
    deployable = deployable_onnx(raw, plan, simplify)
    metadata = {**ultralytics_metadata(model, size, batch, dynamic, plan.opset), **dattn_metadata(plan.grid_sample, plan.opset, plan.target.name)}
    deployable = with_metadata(deployable, metadata)

    report = None
    if verify:
        report = _verify_then_write(model, deployable, onnx_path, plan, size, batch, dynamic, conf)
    else:
        write_atomically(onnx_path, deployable.SerializeToString())
    result = onnx_path
    if format == "engine":
        from dattn.export.tensorrt import build_engine

        _say(f"dattn export: building TensorRT engine {engine_path}")
        build_engine(onnx_path, engine_path, uses_plugin=plan.grid_sample == "plugin")
        result = engine_path
    _summary(plan, onnx_path, deployable, report, time.perf_counter() - started)
    return result


def _verify_then_write(model, deployable, onnx_path, plan, size, batch, dynamic, conf):
    with staged_beside(onnx_path, deployable.SerializeToString()) as staged:
        return _verify(model, staged, onnx_path, plan, size, batch, dynamic, conf)


def _verify(model, staged: Path, onnx_path: Path, plan, size, batch, dynamic, conf):
    """Compare the staged ONNX with PyTorch; raise VerificationError (the ONNX is then not written)."""
    from dattn.export import verify as v

    _say("dattn export: verifying with ONNX Runtime against PyTorch")
    reference = v.torch_runner(prepare_for_export(model, dynamic=True))  # dynamic: Detect recomputes anchors per shape
    candidate = v.onnxruntime_runner(staged, uses_plugin=plan.grid_sample == "plugin")
    results, picture = [], None
    for name, inputs in v.verification_cases(size, batch, dynamic):
        result, det_torch, det_onnx = v.compare(name, inputs, reference, candidate, conf)
        results.append(result)
        _say("  " + result.line())
        if picture is None and name in v.SAMPLE_IMAGES:
            picture = (inputs[0], det_torch[0], det_onnx[0])
    png = onnx_path.with_name(onnx_path.stem + "_verify.png")
    v.side_by_side_png(png, *picture, names=dict(model.names))
    failed = [r for r in results if not r.passed(VERIFY_RTOL)]
    if failed:
        raise VerificationError(
            f"{onnx_path}: not written, ONNX Runtime disagrees with PyTorch on {', '.join(r.name for r in failed)} "
            f"(tolerance {VERIFY_RTOL:g} relative; see {png}); --no-verify writes it anyway"
        )
    return results


def _summary(plan: ExportPlan, path: Path, model: onnx.ModelProto, report, seconds: float) -> None:
    ops = sorted({n.op_type for n in model.graph.node if n.op_type in {"GridSample", "LayerNormalization", "Einsum"} or n.domain})
    _say(f"dattn export: done in {seconds:.1f} s for target {plan.target.name} ({plan.target.description})")
    for reason in plan.reasons:
        _say(f"  chose {reason}")
    for warning in plan.warnings:
        _say(f"  WARNING: {warning}")
    _say(f"  notable ops: {', '.join(ops) or 'none'}; no Einsum, no float64")
    if report is not None:
        worst = max(r.max_rel for r in report)
        _say(f"  verified on {len(report)} inputs: worst relative error {worst:.1e}, detections identical")
    else:
        _say("  not verified (--no-verify)")

