"""`dattn.export`: checkpoint -> deployable ONNX, TensorRT engine, Jetson bundle or Triton repository, verified.

The steps: check the whole request (nothing is loaded or written before it passes), load the checkpoint, trace it
to ONNX, build the graph for the precision asked (FP32, FP16, INT8), verify it against PyTorch (and by mAP with a
data yaml), then write the product. Outputs are staged beside their destinations and renamed into place only when
everything succeeded: a failure or an interruption leaves nothing behind (except the verification picture of a
failed verification, which shows why).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

from dattn.errors import ConfigError, VerificationError
from dattn.export import pipeline
from dattn.export.files import StagedOutputs
from dattn.export.metadata import dattn_metadata, ultralytics_metadata, with_metadata
from dattn.export.options import ExportOptions
from dattn.export.request import ExportRequest, check_request
from dattn.export.head import HeadInfo, sampling_sites
from dattn.export.torch_onnx import export_onnx, prepare_for_export
from dattn.runtime.heads import HEADS


def _say(message: str) -> None:
    print(f"dattn export: {message}", file=sys.stderr, flush=True)


@dataclass
class Report:
    """What the summary says: the choices, the checks and their figures, the files written."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def export(weights, options: ExportOptions | None = None, **option_values) -> Path:
    """Export a YOLO checkpoint (with or without DAttention) and return the path written.

    Options are ExportOptions' fields, given as keywords (`export("best.pt", imgsz=320, half=True)`) or as an
    ExportOptions. The main ones: format "onnx" (default; or inferred from an output ending in .engine), "engine"
    (TensorRT; for target "trt-rtx", TensorRT for RTX), "bundle" (Jetson folder), "triton" (model repository);
    half / int8: FP16 graph (or builder flag) / INT8 Q/DQ calibrated on `data` (an ultralytics data yaml or a
    folder of images). With a data yaml the mAP50-95 of FP32 and the reduced precision are compared, and INT8
    fails beyond `max_map_drop` points.
    Raises ConfigError or CheckpointError for bad input (nothing is written then) and VerificationError when the
    export disagrees with PyTorch or loses too much accuracy.
    """
    if options is not None and option_values:
        raise TypeError("export() takes an ExportOptions or option keywords, not both")
    request = check_request(weights, options or ExportOptions(**option_values))
    started = time.perf_counter()
    report = Report(warnings=list(request.warnings) + list(request.plan.warnings))
    _say(f"loading {request.weights}")
    from dattn.ultralytics.load import load

    model = load(request.weights, trust=request.trust_weights).model
    prepared, head = prepare_for_export(model, request.dynamic, request.end2end, request.imgsz, request.weights)
    raw = _trace(prepared, head, request)
    report.lines += _choices(request, raw, head, sampling_sites(prepared, _example(request)))
    graphs = _graphs(model, head, raw, request, report)
    with StagedOutputs() as staged:
        if request.verify:
            _verify(model, head, graphs, request, report, staged)
        else:
            report.lines.append("not verified (--no-verify)")
        _write_product(graphs, request, report, staged)
        written = staged.commit(*[path for path in staged.paths if path != request.picture])
        if request.picture in staged.paths:
            try:
                written += staged.commit(request.picture)
            except (ConfigError, OSError) as e:  # the picture is a by-product: say so, keep the export
                report.warnings.append(f"could not write {request.picture} ({getattr(e, 'strerror', None) or e})")
    report.lines.append("wrote " + ", ".join(str(p) for p in written))
    _summary(request, report, time.perf_counter() - started)
    return request.output


# ---- steps --------------------------------------------------------------------------------------


def _example(request: ExportRequest) -> torch.Tensor:
    return torch.zeros(request.batch, 3, *request.imgsz, device=request.device)


def _trace(prepared, head: HeadInfo, request: ExportRequest) -> onnx.ModelProto:
    plan = request.plan
    _say(f"tracing at {request.batch}x3x{request.imgsz[0]}x{request.imgsz[1]}, opset {plan.opset}"
         f"{', dynamic' if request.dynamic else ''} ({request.exporter} exporter)")
    return export_onnx(prepared.to(request.device), _example(request), plan.opset, request.dynamic, request.exporter,
                       HEADS[head.name])


def _choices(request: ExportRequest, raw: onnx.ModelProto, head: HeadInfo, sites: dict[str, int]) -> list[str]:
    """The head, the sampling steps and where they sit, and the plan's reasons that concern this graph."""
    has_layer_norm = any(n.op_type == "LayerNormalization" for n in raw.graph.node)
    lines = [f"head {head.module} ({head.task}): output {HEADS[head.name].layout}, "
             + ("no NMS needed (one-to-one branch)" if head.end2end else "NMS in post-processing" if HEADS[head.name].nms
                else "no NMS needed")]
    if head.not_served:
        lines.append(f"a {head.task} model: its {head.not_served} are exported as they are, but neither verified nor "
                     "decoded by dattn; boxes, scores and classes are")
    for reason in request.plan.reasons:
        if reason.startswith("grid-sample") and not sites:
            continue
        if reason.startswith("LayerNormalization") and not has_layer_norm:
            continue
        lines.append(f"chose {reason}")
    if sites:
        written = sum(n.op_type in ("GridSample", "DAttnGridSample") for n in raw.graph.node)
        lines.append(f"{written} sampling steps written as {request.plan.grid_sample}: "
                     + ", ".join(f"{n} in {where}" for where, n in sites.items()))
    else:
        lines.append("no sampling step (no DAttention or deformable decoder) in this model")
    return lines


def _with_metadata(graph: onnx.ModelProto, model, head: HeadInfo, request: ExportRequest, precision: str) -> onnx.ModelProto:
    meta = ultralytics_metadata(model, head, request.imgsz, request.batch, request.dynamic, request.plan.opset, precision)
    meta.update(dattn_metadata(head, request.plan.grid_sample, request.plan.opset, request.plan.target.name, precision))
    return with_metadata(graph, meta)


def _graphs(model, head: HeadInfo, raw: onnx.ModelProto, request: ExportRequest, report: Report) -> dict[str, onnx.ModelProto]:
    """The deployable graphs by precision: always "fp32", plus the one asked for."""
    plan = request.plan
    ops = {n.op_type for n in raw.graph.node}
    steps = ["einsum", *([f"grid-sample {plan.grid_sample}"] if "GridSample" in ops else []),
             *(["layer-norm"] if plan.decompose_layer_norm and "LayerNormalization" in ops else []),
             *(["mod"] if plan.decompose_mod and "Mod" in ops else []),
             *(["onnxslim"] if request.simplify else [])]
    _say(f"rewriting ({', '.join(steps)})")
    graphs = {"fp32": _with_metadata(pipeline.float32_onnx(raw, plan, request.simplify), model, head, request, "fp32")}
    if request.precision == "fp16" and (request.format != "engine" or _builds_strongly_typed_only(request)):
        _say("converting to FP16")
        half, kept = pipeline.float16_onnx(raw, plan, request.simplify)
        graphs["fp16"] = _with_metadata(half, model, head, request, "fp16")
        report.lines.append("FP16: computing in FP32 still: " + ", ".join(f"{op} x{n}" for op, n in sorted(kept.items())))
    if request.precision == "int8":
        flavour = _int8_flavour(request)
        _say(f"calibrating INT8 ({flavour} flavour) on {len(request.dataset.calibration)} images from {request.dataset.source}")
        head_weights = f"model.{len(model.model) - 1}."  # the Detect head's parameters
        quantized, kept = pipeline.int8_onnx(raw, plan, request.simplify, request.dataset.calibration, request.imgsz,
                                             flavour, head_weights, HEADS[head.name])
        graphs["int8"] = _with_metadata(quantized, model, head, request, "int8")
        report.lines.append(f"INT8 ({flavour} flavour, Q/DQ): {kept} nodes left in float (stem, detection head, sampling)")
    return graphs


def _builds_strongly_typed_only(request: ExportRequest) -> bool:
    """TensorRT 11.x and RTX build FP16 from an FP16 ONNX; 8.x-10.x from the FP32 one with a builder flag."""
    from dattn.export.tensorrt import builds_strongly_typed_only
    from dattn.runtime.tensorrt_runner import import_tensorrt

    return builds_strongly_typed_only(import_tensorrt(request.tensorrt_module))


def _int8_flavour(request: ExportRequest) -> str:
    """TensorRT needs symmetric int8; ONNX Runtime on x86 runs uint8 activations fastest."""
    return "onnxruntime" if request.plan.target.name == "ort" and request.format in ("onnx", "triton") else "tensorrt"


def _verify(model, head: HeadInfo, graphs: dict, request: ExportRequest, report: Report, staged: StagedOutputs) -> None:
    """Each graph against PyTorch at its precision's tolerance, as the head lays out its output; mAP side by side
    with a data yaml."""
    from dattn.export import verify as v

    layout = HEADS[head.name]
    # The reference is the model as exported (heads recompute their anchors when the input size changes): RT-DETR's
    # decoder, for one, selects its queries by another path when dynamic, which moves boxes by 0.02 px.
    reference = v.torch_runner(prepare_for_export(model, request.dynamic, request.end2end, request.imgsz,
                                                  request.weights)[0])
    extra_images = v.validation_images(request.dataset) if request.dataset is not None else []
    # The picture shows a dataset image where there is one: there the model's detections mean something.
    shown = extra_images[0].name if extra_images else v.SAMPLE_IMAGES[0]
    failures, picture = [], None
    for precision in graphs:
        _say(f"verifying the {precision.upper()} ONNX with ONNX Runtime against PyTorch")
        candidate = v.onnxruntime_runner(graphs[precision], f"the {precision.upper()} ONNX")
        results = []
        for name, inputs in v.verification_cases(request.imgsz, request.batch, request.dynamic, layout, extra_images,
                                                 precision):
            result, det_torch, det_export = v.compare(name, inputs, reference, candidate, layout, len(model.names),
                                                      request.conf, v.TOLERANCES[precision])
            results.append(result)
            _say("  " + result.line())
            if precision == request.precision and name == shown:
                picture = (inputs[0], det_torch[0], det_export[0])
        report.lines.append(f"{precision.upper()}: " + v.summary(results))
        lost = v.lost_detections(results)
        if lost and precision != "fp32":
            report.warnings.append(f"{precision.upper()}: {lost}")
        failures += [f"{precision.upper()} on {r.name}" for r in results if not r.passed]
    _write_picture(picture, model, request, report, staged)
    if failures:
        if request.picture in staged.paths:
            staged.commit(request.picture)
        raise VerificationError(f"{request.output}: not written, the export disagrees with PyTorch ({', '.join(failures)}; "
                                f"tolerances in README, see {request.picture}); --no-verify writes it anyway")
    if request.dataset is not None and request.dataset.data_yaml is not None:
        _compare_map(graphs, head, request, report)


def _write_picture(picture, model, request: ExportRequest, report: Report, staged: StagedOutputs) -> None:
    from dattn.export import verify as v

    png = v.side_by_side_png(*picture, names=dict(model.names), right_title=f"ONNX Runtime ({request.precision.upper()})")
    try:
        staged.file(request.picture, png)
    except (ConfigError, OSError) as error:  # the picture is a by-product: say so, keep the export
        report.warnings.append(f"could not write {request.picture} ({getattr(error, 'strerror', None) or error})")


def _compare_map(graphs: dict[str, onnx.ModelProto], head: HeadInfo, request: ExportRequest, report: Report) -> None:
    from dattn.export.accuracy import validation_map

    if request.plan.grid_sample == "plugin":
        report.lines.append("mAP not measured: ultralytics cannot run the plugin node")
        return
    if request.imgsz[0] != request.imgsz[1] and not request.dynamic:
        report.lines.append("mAP not measured: ultralytics' validator letterboxes to a square, this export is not square")
        return
    maps = {}
    with tempfile.TemporaryDirectory(prefix="dattn-map-") as folder:  # ultralytics' validator reads files
        for precision, graph in graphs.items():
            _say(f"measuring mAP of the {precision.upper()} ONNX on {request.dataset.data_yaml}'s val split")
            path = Path(folder) / f"{precision}.onnx"
            onnx.save(graph, str(path))
            maps[precision] = validation_map(path, request.dataset.data_yaml, request.imgsz[0], request.batch,
                                             HEADS[head.name])
    report.lines.append("mAP50-95 / mAP50 on the val split: " + ", ".join(
        f"{p.upper()} {m[0]:.1f} / {m[1]:.1f}" for p, m in maps.items()))
    if request.precision == "int8":
        drop = maps["fp32"][0] - maps["int8"][0]
        if drop > request.max_map_drop:
            raise VerificationError(f"{request.output}: not written, INT8 loses {drop:.1f} points of mAP50-95 "
                                    f"(FP32 {maps['fp32'][0]:.1f}, INT8 {maps['int8'][0]:.1f}; --max-map-drop "
                                    f"{request.max_map_drop:g}); calibrate on more images (--calib-images) or use --half")


def _write_product(graphs: dict, request: ExportRequest, report: Report, staged: StagedOutputs) -> None:
    if request.format == "onnx":
        staged.file(request.output, graphs[request.precision].SerializeToString())
    elif request.format == "engine":
        staged.file(request.output, _engine(graphs, request, report))
        if request.keep_onnx:
            kept = request.output.with_suffix(".onnx")
            staged.file(kept, _engine_graph(graphs, request).SerializeToString())
            report.lines.append(f"the ONNX the engine was built from: {kept}")
        else:
            report.lines.append("the ONNX the engine was built from is not kept (--keep-onnx keeps it)")
    elif request.format == "triton":
        _write_triton(graphs, request, report, staged)
    elif request.format == "bundle":
        _write_bundle(graphs, request, report, staged)


def _write_bundle(graphs: dict, request: ExportRequest, report: Report, staged: StagedOutputs) -> None:
    from dattn.export.bundle import stage_bundle

    _say(f"writing the Jetson bundle {request.output}")
    stage_bundle(staged, request.output, graphs["fp32"], graphs.get("int8"), graphs.get("fp16"), precision=request.precision)
    report.lines.append(f"bundle: {', '.join(f'{p.upper()} ONNX' for p in graphs)}, build_engine.sh builds the "
                        f"{request.precision.upper()} engine on the device (see its README.md)")


def _write_triton(graphs: dict, request: ExportRequest, report: Report, staged: StagedOutputs) -> None:
    from dattn.export.triton import stage_triton_repository

    engine = _engine(graphs, request, report) if request.tensorrt_module is not None else None
    _say(f"writing the Triton model repository {request.output}")
    stage_triton_repository(staged, request.output, graphs[request.precision], engine, name=request.serving["name"],
                            queue_delay_us=request.serving["queue_delay_us"], instances=request.serving["instances"],
                            conf=request.conf)
    name = request.serving["name"]
    report.lines.append(f"Triton repository: model {name} ({'tensorrt_plan' if engine else 'onnxruntime_onnx'}) and "
                        f"{name}_ensemble (its README.md and client.py say how to serve and query it)")


def _engine_graph(graphs: dict, request: ExportRequest) -> onnx.ModelProto:
    return graphs.get(request.precision, graphs["fp32"])  # no FP16 graph where a builder flag makes FP16


def _engine(graphs: dict, request: ExportRequest, report: Report) -> bytes:
    """The engine file's bytes (ultralytics header + plan, or the bare plan)."""
    from dattn.export.tensorrt import MODULES, build_serialized_engine, dynamic_profile, engine_file, engine_metadata

    graph = _engine_graph(graphs, request)
    profile = dynamic_profile(request.batch, request.imgsz, request.min_imgsz, request.max_imgsz) if request.dynamic else None
    metadata = engine_metadata(graph)
    if profile is not None:
        metadata["dattn_profile"] = profile.as_metadata()
    _say(f"building the {request.precision.upper()} engine with {MODULES[request.tensorrt_module]} (this takes a while)")
    plan = build_serialized_engine(graph, request.precision, profile, request.plan.grid_sample == "plugin",
                                   request.tensorrt_module, request.sm)
    form = "bare TensorRT plan (--raw-engine)" if request.raw_engine else "ultralytics header + plan"
    report.lines.append(f"engine: {form}" + (f", profile {profile.as_metadata()}" if profile else ", static shapes"))
    return engine_file(plan, metadata, request.raw_engine)


def _summary(request: ExportRequest, report: Report, seconds: float) -> None:
    target = request.plan.target
    _say(f"done in {seconds:.1f} s: {request.format}, {request.precision.upper()}, for {target.name} ({target.description})")
    for line in report.lines:
        _say("  " + line)
    for warning in report.warnings:
        _say("  WARNING: " + warning)
