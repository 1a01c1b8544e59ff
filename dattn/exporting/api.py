"""`dattn.export(...)`: checkpoint -> deployable ONNX, TensorRT engine, Jetson bundle or Triton repository, verified.

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

import numpy as np
import onnx
import torch

from dattn.errors import ConfigError, VerificationError
from dattn.exporting import pipeline
from dattn.exporting.files import StagedOutputs
from dattn.exporting.metadata import dattn_metadata, ultralytics_metadata, with_metadata
from dattn.exporting.options import ExportOptions
from dattn.exporting.request import ExportRequest, check_request
from dattn.exporting.head import HeadInfo, sampling_sites
from dattn.exporting.torch_onnx import export_onnx, prepare_for_export
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
    folder of images). With a data yaml the mAP50-95 of FP32 and the reduced precision are compared. An INT8 graph
    that differs from PyTorch, or loses more than `max_map_drop` points, keeps its most sensitive layers in float
    (up to half of them) until it does not, or fails.
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
    sites = sampling_sites(prepared, _example(request))  # before tracing: an exporter leaves state on the head
    raw = _trace(prepared, head, request)
    report.lines += _choices(request, raw, head, sites)
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
        quantized, kept = pipeline.int8_onnx(raw, plan, request.simplify, request.dataset.calibration, request.imgsz,
                                             flavour, _head_weights(model), HEADS[head.name])
        graphs["int8"] = _with_metadata(quantized, model, head, request, "int8")
        report.lines.append(f"INT8 ({flavour} flavour, Q/DQ): {kept} nodes left in float (stem, detection head, sampling)")
    return graphs


def _head_weights(model) -> str:
    """The prefix of the head's parameter names (the last module's), which the graph's weights are named after."""
    return f"model.{len(model.model) - 1}."


def _builds_strongly_typed_only(request: ExportRequest) -> bool:
    """TensorRT 11.x and RTX build FP16 from an FP16 ONNX; 8.x-10.x from the FP32 one with a builder flag."""
    from dattn.exporting.tensorrt import builds_strongly_typed_only
    from dattn.runtime.tensorrt_runner import import_tensorrt

    return builds_strongly_typed_only(import_tensorrt(request.tensorrt_module))


def _int8_flavour(request: ExportRequest) -> str:
    """TensorRT needs symmetric int8; ONNX Runtime on x86 runs uint8 activations fastest."""
    return "onnxruntime" if request.plan.target.name == "ort" and request.format in ("onnx", "triton") else "tensorrt"


@dataclass
class _Checked:
    """One graph judged: its verification on each input, the verification picture, and its mAP where measured."""

    precision: str
    results: list
    picture: tuple | None
    map: tuple[float, float] | None = None

    @property
    def failures(self) -> list[str]:
        return [f"{self.precision.upper()} on {r.name}" for r in self.results if not r.passed]


def _verify(model, head: HeadInfo, graphs: dict, request: ExportRequest, report: Report, staged: StagedOutputs) -> None:
    """Each graph against PyTorch at its precision's tolerance, as the head lays out its output; mAP side by side
    with a data yaml. An INT8 graph that misses its gate (verification, and the mAP drop where measured) is rescued
    by keeping its most sensitive layers in float; `graphs["int8"]` is then the rescued graph."""
    from dattn.exporting import verify as v

    check = _checker(model, head, request, report)
    checked = {precision: check(precision, graph) for precision, graph in graphs.items()}
    rescue = None
    if "int8" in checked and not checked["fp32"].failures and not _int8_holds(checked, request):
        rescue = _rescued_int8(model, head, graphs, checked, check, request)
        checked["int8"] = rescue.checked
        if rescue.holds:
            graphs["int8"] = rescue.graph
    for precision, result in checked.items():
        report.lines.append(f"{precision.upper()}: " + v.summary(result.results))
        lost = v.lost_detections(result.results)
        if lost and precision != "fp32":
            report.warnings.append(f"{precision.upper()}: {lost}")
    _write_picture(checked[request.precision].picture, model, request, report, staged)
    failures = [failure for result in checked.values() for failure in result.failures]
    tried = f"; also with {rescue.describe()}" if rescue is not None else ""
    if failures:
        if request.picture in staged.paths:
            staged.commit(request.picture)
        raise VerificationError(f"{request.output}: not written, the export disagrees with PyTorch ({', '.join(failures)}"
                                f"{tried}; tolerances in README, see {request.picture}); --no-verify writes it anyway")
    maps = {precision: result.map for precision, result in checked.items() if result.map is not None}
    if maps:
        report.lines.append("mAP50-95 / mAP50 on the val split: " + ", ".join(
            f"{p.upper()} {m[0]:.1f} / {m[1]:.1f}" for p, m in maps.items()))
    if rescue is not None and rescue.holds:
        report.lines.append(rescue.summary(checked))
    if "int8" in maps and not _int8_holds(checked, request):
        drop = maps["fp32"][0] - maps["int8"][0]
        raise VerificationError(f"{request.output}: not written, INT8 loses {drop:.1f} points of mAP50-95 "
                                f"(FP32 {maps['fp32'][0]:.1f}, INT8 {maps['int8'][0]:.1f}; --max-map-drop "
                                f"{request.max_map_drop:g}){tried}; calibrate on more images (--calib-images) or use "
                                f"--half")


def _checker(model, head: HeadInfo, request: ExportRequest, report: Report):
    """check(precision, graph) -> _Checked: the graph verified against PyTorch on the verification cases and, where it
    passed and mAP can be measured, its mAP on the data yaml's val split."""
    from dattn.exporting import verify as v
    from dattn.exporting.accuracy import validation_map

    layout = HEADS[head.name]
    # The reference is the model as exported (heads recompute their anchors when the input size changes): RT-DETR's
    # decoder, for one, selects its queries by another path when dynamic, which moves boxes by 0.02 px. Memoised: a
    # rescue verifies INT8 repeatedly.
    reference = _memoised(v.torch_runner(prepare_for_export(model, request.dynamic, request.end2end, request.imgsz,
                                                            request.weights)[0]))
    extra_images = v.validation_images(request.dataset) if request.dataset is not None else []
    # The picture shows a dataset image where there is one: there the model's detections mean something.
    shown = extra_images[0].name if extra_images else v.SAMPLE_IMAGES[0]
    measures_map = _measures_map(request, report)

    def check(precision: str, graph: onnx.ModelProto) -> _Checked:
        _say(f"verifying the {precision.upper()} ONNX with ONNX Runtime against PyTorch")
        candidate = v.onnxruntime_runner(graph, f"the {precision.upper()} ONNX")
        checked = _Checked(precision, [], None)
        for name, inputs in v.verification_cases(request.imgsz, request.batch, request.dynamic, layout, extra_images,
                                                 precision):
            result, det_torch, det_export = v.compare(name, inputs, reference, candidate, layout, len(model.names),
                                                      request.conf, v.TOLERANCES[precision])
            checked.results.append(result)
            _say("  " + result.line())
            if name == shown:
                checked.picture = (inputs[0], det_torch[0], det_export[0])
        if measures_map and not checked.failures:
            _say(f"measuring mAP of the {precision.upper()} ONNX on {request.dataset.data_yaml}'s val split")
            with tempfile.TemporaryDirectory(prefix="dattn-map-") as folder:  # ultralytics' validator reads files
                path = Path(folder) / f"{precision}.onnx"
                onnx.save(graph, str(path))
                checked.map = validation_map(path, request.dataset.data_yaml, request.imgsz[0], request.batch, layout)
            _say(f"  mAP50-95 {checked.map[0]:.1f}, mAP50 {checked.map[1]:.1f}")
        return checked

    return check


def _memoised(run):
    """`run` remembering its output for each input it has seen."""
    seen = {}

    def remembered(batch: np.ndarray) -> np.ndarray:
        key = (batch.shape, batch.tobytes())
        if key not in seen:
            seen[key] = run(batch)
        return seen[key]

    return remembered


def _measures_map(request: ExportRequest, report: Report) -> bool:
    """Whether ultralytics' validator can measure this export's mAP (with a data yaml); says why not."""
    if request.dataset is None or request.dataset.data_yaml is None:
        return False
    if request.plan.grid_sample == "plugin":
        report.lines.append("mAP not measured: ultralytics cannot run the plugin node")
        return False
    if request.imgsz[0] != request.imgsz[1] and not request.dynamic:
        report.lines.append("mAP not measured: ultralytics' validator letterboxes to a square, this export is not square")
        return False
    return True


def _write_picture(picture, model, request: ExportRequest, report: Report, staged: StagedOutputs) -> None:
    from dattn.exporting import verify as v

    png = v.side_by_side_png(*picture, names=dict(model.names), right_title=f"ONNX Runtime ({request.precision.upper()})")
    try:
        staged.file(request.picture, png)
    except (ConfigError, OSError) as error:  # the picture is a by-product: say so, keep the export
        report.warnings.append(f"could not write {request.picture} ({getattr(error, 'strerror', None) or error})")


def _int8_holds(checked: dict[str, _Checked], request: ExportRequest) -> bool:
    """INT8's gate: it agrees with PyTorch on real images and, where mAP is measured, loses at most --max-map-drop."""
    fp32, int8 = checked["fp32"], checked["int8"]
    if int8.failures:
        return False
    return fp32.map is None or int8.map is None or fp32.map[0] - int8.map[0] <= request.max_map_drop


@dataclass
class _Rescue:
    """The INT8 graph with its most sensitive layers in float: the last one tried, and whether it holds."""

    graph: onnx.ModelProto
    checked: _Checked
    floated: list[str]
    layers: int
    tried: list[int]
    holds: bool
    before: _Checked

    def describe(self) -> str:
        return (f"the {len(self.floated)} most sensitive of its {self.layers} quantized layers in float (tried "
                f"{', '.join(map(str, self.tried))})")

    def summary(self, checked: dict[str, _Checked]) -> str:
        names = ", ".join(self.floated[:8]) + (f" and {len(self.floated) - 8} more" if len(self.floated) > 8 else "")
        if self.checked.map is None or checked["fp32"].map is None:
            outcome = f"verification: {len(self.before.failures)} inputs differed, none now"
        else:
            before = f"{self.before.map[0]:.1f}" if self.before.map is not None else "(differed from PyTorch, not measured)"
            outcome = f"mAP50-95 FP32 {checked['fp32'].map[0]:.1f} / INT8 {before} -> {self.checked.map[0]:.1f}"
        count = f"{len(self.floated)} layer{'s' if len(self.floated) > 1 else ''}"
        return f"INT8: {count} kept in float after a sensitivity scan ({names}), {outcome}"


def _rescued_int8(model, head: HeadInfo, graphs: dict, checked: dict[str, _Checked], check,
                  request: ExportRequest) -> _Rescue:
    """Rank the INT8 graph's quantized layers by sensitivity, then keep 1, 2, 4, ... of the most sensitive in float
    until the gate holds (or half of them are float)."""
    from tqdm import tqdm

    from dattn.exporting import qdq, sensitivity
    from dattn.exporting.quantize import head_nodes

    layers = qdq.quantized_layers(graphs["int8"])
    int8, fp32 = checked["int8"], checked["fp32"]
    why = (f"it differs from PyTorch on {len(int8.failures)} inputs" if int8.failures else
           f"it loses {fp32.map[0] - int8.map[0]:.1f} points of mAP50-95 (--max-map-drop {request.max_map_drop:g})")
    _say(f"INT8 misses its gate ({why}): measuring the sensitivity of its {len(layers)} quantized layers on "
         f"{sensitivity.SCAN_IMAGES} calibration images")
    started = time.perf_counter()
    batches = sensitivity.scan_batches(request.dataset.calibration, request.imgsz, request.batch, HEADS[head.name])
    with tqdm(total=len(layers), desc="INT8 sensitivity scan", unit="layer", leave=False, disable=None) as progress:
        ranked = sensitivity.ranked_layers(graphs["int8"], graphs["fp32"], head_nodes(graphs["fp32"], _head_weights(model)),
                                           batches, request.plan.grid_sample == "plugin", progress)
    _say(f"  scanned in {time.perf_counter() - started:.0f} s; most sensitive (the error at the head's inputs with "
         f"it alone in float): " + ", ".join(f"{name} ({error:.3f})" for name, error in ranked[:3]))
    names, tried = [name for name, _ in ranked], []
    for count in sensitivity.float_counts(len(names)):
        tried.append(count)
        _say(f"keeping the {count} most sensitive layer{'s' if count > 1 else ''} in float")
        graph = qdq.keep_float(graphs["int8"], graphs["fp32"], names[:count])
        attempt = {**checked, "int8": check("int8", graph)}
        if _int8_holds(attempt, request):
            break
    return _Rescue(graph, attempt["int8"], names[:count], len(names), tried, _int8_holds(attempt, request),
                   checked["int8"])


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
    from dattn.exporting.bundle import stage_bundle

    _say(f"writing the Jetson bundle {request.output}")
    stage_bundle(staged, request.output, graphs["fp32"], graphs.get("int8"), graphs.get("fp16"), precision=request.precision)
    report.lines.append(f"bundle: {', '.join(f'{p.upper()} ONNX' for p in graphs)}, build_engine.sh builds the "
                        f"{request.precision.upper()} engine on the device (see its README.md)")


def _write_triton(graphs: dict, request: ExportRequest, report: Report, staged: StagedOutputs) -> None:
    from dattn.exporting.triton import stage_triton_repository

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
    from dattn.exporting.tensorrt import MODULES, build_serialized_engine, dynamic_profile, engine_file, engine_metadata

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
