"""An export request, checked as a whole before any work is done: inputs first, then the runtime, then outputs.

Every problem is a one-line ConfigError (or CheckpointError for the weights) that names what is wrong and
what to do instead; nothing has been written when one is raised.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from dattn.errors import CheckpointError, ConfigError
from dattn.exporting.dataset import Dataset, load_dataset
from dattn.exporting.options import FORMATS, ExportOptions, changed_options, flag, option_fields
from dattn.exporting.targets import EXPORTERS, ExportPlan, plan_export

SUFFIX_FORMATS = {".onnx": "onnx", ".engine": "engine", ".plan": "engine"}
MAX_IMGSZ = 4096  # far beyond any YOLO deployment; larger sizes only exhaust memory
FOLDER_FORMATS = ("bundle", "triton")


@dataclass
class ExportRequest:
    """What to export, validated. `outputs` maps each product to the path it will be written to."""

    weights: Path
    format: str
    imgsz: tuple[int, int]
    batch: int
    dynamic: bool
    plan: ExportPlan
    precision: str  # fp32 | fp16 | int8
    dataset: Dataset | None
    max_map_drop: float
    simplify: bool
    verify: bool
    conf: float
    device: str
    exporter: str
    raw_engine: bool
    sm: int | None
    min_imgsz: tuple[int, int] | None
    max_imgsz: tuple[int, int] | None
    keep_onnx: bool
    tensorrt_module: str | None  # the Python module that builds engines (--format engine, or triton for TensorRT)
    serving: dict | None  # --format triton: name, queue_delay_us, instances
    end2end: bool | None  # the head's NMS-free branch: asked for, refused, or None (as the checkpoint has it)
    trust_weights: bool
    output: Path = None
    warnings: list[str] = field(default_factory=list)

    @property
    def picture(self) -> Path:
        """Where the verification picture goes: beside the main output (file or folder), named after it."""
        suffix = self.output.suffix if self.output.suffix.lower() in SUFFIX_FORMATS else ""
        return self.output.with_name(self.output.name[:len(self.output.name) - len(suffix)] + "_verify.png")

    @property
    def kept_onnx(self) -> Path:
        """Where --keep-onnx puts the ONNX an engine is built from."""
        return self.output.with_suffix(".onnx")


def normalize_imgsz(imgsz, flag: str = "--imgsz") -> tuple[int, int]:
    sizes = [imgsz] * 2 if isinstance(imgsz, int) else list(imgsz)
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or any(not isinstance(s, int) or s < 32 or s % 32 for s in sizes):
        raise ConfigError(f"{flag} must be one or two multiples of 32 (the model's stride), got {imgsz}")
    if max(sizes) > MAX_IMGSZ:
        raise ConfigError(f"{flag} {sizes[0]} {sizes[1]} is larger than {MAX_IMGSZ}; the model would not fit in memory")
    return sizes[0], sizes[1]


def check_weights(weights: str | Path, trust: bool = False) -> Path:
    """The checkpoint, if it is one that can be read: missing, unreadable, foreign and damaged files are refused,
    and (unless trusted) so is one that references anything a YOLO checkpoint does not need."""
    from dattn.ultralytics.checkpoint import check_checkpoint

    path = Path(weights)
    if path.suffix.lower() in (".onnx", ".engine", ".plan"):
        raise CheckpointError(f"{path}: dattn-export expects a .pt checkpoint; to run an exported model use "
                              f"`dattn predict --model {path} --source IMAGE`")
    check_checkpoint(path, trust)  # the file, its zip archive and its pickle's globals, without unpickling anything
    return path


def check_device(device: str) -> str:
    """cpu, cuda or cuda:N, where CUDA is there; ConfigError otherwise."""
    name, _, index = str(device).partition(":")
    if name not in ("cpu", "cuda") or (index and not index.isdigit()) or (name == "cpu" and index):
        raise ConfigError(f"unknown --device {device!r}; use cpu, cuda or cuda:N")
    if name == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available here (torch.cuda.is_available() is False); use --device cpu")
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return str(device)


def check_conf(conf: float) -> float:
    if not (isinstance(conf, (int, float)) and math.isfinite(conf) and 0 < conf < 1):
        raise ConfigError(f"--conf must be between 0 and 1 (exclusive), got {conf}")
    return float(conf)


def _precision(half: bool, int8: bool) -> str:
    return "int8" if int8 else "fp16" if half else "fp32"


def _default_output(weights: Path, format: str, precision: str) -> Path:
    stem = weights.stem + ("" if precision == "fp32" or format == "engine" else f"_{precision}")
    return {"onnx": weights.with_name(stem + ".onnx"), "engine": weights.with_name(stem + ".engine"),
            "bundle": weights.with_name(stem + "_bundle"), "triton": weights.with_name(stem + "_triton")}[format]


def check_output(weights: Path, output: Path, format: str) -> Path:
    """ConfigError unless `output` can be written: not the weights, not a folder (for files), not a device or other
    special file, in a writable folder, and a path the summary's last line can print."""
    if "\n" in str(output) or "\r" in str(output):
        raise ConfigError(f"--output {str(output)!r}: a path with a line break cannot be reported on one line; rename it")
    from dattn.exporting.files import check_destination

    check_destination(output, "folder" if format in FOLDER_FORMATS else "file")
    if output.exists() and output.resolve() == weights.resolve():
        raise ConfigError(f"{output}: refusing to overwrite the input weights; pass another --output")
    folder = output.parent
    if not folder.is_dir():
        raise ConfigError(f"{output}: cannot be written, folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"{output}: cannot be written, folder {folder} is not writable")
    return output


def infer_format(format: str | None, output: str | Path | None) -> tuple[str, list[str]]:
    """The format to write: as given, else from --output's suffix (best.engine -> engine), else onnx."""
    suffix = Path(output).suffix.lower() if output else ""
    implied = SUFFIX_FORMATS.get(suffix)
    if format is None:
        return implied or "onnx", []
    if implied and implied != format and format in SUFFIX_FORMATS.values():
        return format, [f"--output {output} ends in {suffix} but --format {format} writes {format.upper()}: "
                        f"name it *.{'onnx' if format == 'onnx' else 'engine'} to avoid confusion"]
    return format, []


DEFAULT_TARGETS = {"onnx": "ort", "engine": "trt", "bundle": "trt", "triton": "ort"}


def check_request(weights, options: ExportOptions) -> ExportRequest:
    """Validate everything that can be validated before loading the model; returns the request to run."""
    weights = check_weights(weights, options.trust_weights)
    format, warnings = infer_format(options.format, options.output)
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    size = normalize_imgsz(options.imgsz)
    batch = _positive_int(options.batch, "--batch")
    plan = plan_export(options.target or DEFAULT_TARGETS[format], options.opset, options.grid_sample)
    conf = check_conf(options.conf)
    if options.exporter not in EXPORTERS:
        raise ConfigError(f"unknown --exporter {options.exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if options.end2end not in (None, True, False):
        raise ConfigError(f"--end2end must be True, False or None (as saved), got {options.end2end!r}")
    precision = _precision(options.half, options.int8)
    if options.half and options.int8:
        warnings.append("--half with --int8: the layers left unquantized run in FP16 where TensorRT has the flag "
                        "(8.x-10.x), in FP32 on strongly typed TensorRT (11.x, RTX)")
    if options.half and format == "onnx" and plan.target.name == "ort" and not options.int8:
        warnings.append("an FP16 ONNX is for ONNX Runtime's CUDA and TensorRT execution providers (or TensorRT); "
                        "on a CPU it runs no faster than FP32 (use --int8 there)")
    if options.int8 and options.data is None:
        raise ConfigError("--int8 needs calibration images: --data DATA (an ultralytics data yaml or a folder of images)")
    if options.int8 and plan.grid_sample == "plugin" and plan.opset < 16:
        raise ConfigError(f"--int8 with --grid-sample plugin needs opset 16 or higher (got {plan.opset}): calibration "
                          "runs the graph with ONNX GridSample; use --grid-sample gather below 16")
    _positive_int(options.calib_images, "--calib-images")
    max_map_drop = options.max_map_drop
    if isinstance(max_map_drop, bool) or not isinstance(max_map_drop, (int, float)) or not 0 <= max_map_drop < math.inf:
        raise ConfigError(f"--max-map-drop must be 0 or more points, got {max_map_drop}")
    dataset = load_dataset(options.data, options.calib_images) if options.data is not None else None
    lows, highs = (normalize_imgsz(s, flag) if s is not None else None
                   for s, flag in ((options.min_imgsz, "--min-imgsz"), (options.max_imgsz, "--max-imgsz")))
    if (lows or highs) and not options.dynamic:
        raise ConfigError("--min-imgsz / --max-imgsz shape a dynamic engine's profile: add --dynamic")
    device = check_device(options.device)
    serving = _check_serving(options) if format == "triton" else None
    tensorrt_module = _engine_module(format, plan, plan.grid_sample, options.sm)
    if plan.grid_sample == "plugin" and plan.target.name == "ort":
        warnings.append("--grid-sample plugin writes a DAttnGridSample node that plain ONNX Runtime and ultralytics "
                        "cannot run: it is for TensorRT with the plugin; `dattn predict` runs it on a CPU with dattn's "
                        "reference op (pip install onnxruntime-extensions)")
    if format == "triton" and not options.dynamic:
        warnings.append("without --dynamic the repository serves the exported batch size only, so Triton cannot "
                        "batch requests dynamically")
    request = ExportRequest(weights, format, size, batch, options.dynamic, plan, precision, dataset, float(max_map_drop),
                            options.simplify, options.verify, conf, device, options.exporter, options.raw_engine,
                            options.sm, lows, highs, options.keep_onnx, tensorrt_module, serving, options.end2end,
                            options.trust_weights, warnings=warnings)
    _refuse_options_that_do_not_apply(options, request)
    if options.dynamic and tensorrt_module is not None:
        from dattn.exporting.tensorrt import dynamic_profile

        dynamic_profile(batch, size, lows, highs)  # ConfigError for a profile that shrinks
    output = Path(options.output) if options.output else _default_output(weights, format, precision)
    request.output = check_output(weights, output, format)
    if request.keep_onnx and request.kept_onnx == request.output:
        raise ConfigError(f"--keep-onnx writes the engine's ONNX to {request.kept_onnx}, which is the --output; "
                          "name the engine *.engine")
    if format == "triton":
        from dattn.exporting.triton import check_repository_target

        check_repository_target(request.output, serving["name"])
    if format == "bundle":
        from dattn.exporting.bundle import check_bundle_target

        check_bundle_target(request.output)
    return request


def _positive_int(value, flag: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{flag} must be a whole number of at least 1, got {value!r}")
    return value


def _check_serving(options: ExportOptions) -> dict:
    """The Triton repository's settings, checked now rather than after the export."""
    from dattn.exporting.triton import check_model_name

    check_model_name(options.name)
    for flag, value, low in (("--instances", options.instances, 1), ("--queue-delay-us", options.queue_delay_us, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{flag} must be a whole number of at least {low}, got {value!r}")
    return {"name": options.name, "queue_delay_us": options.queue_delay_us, "instances": options.instances}


def _refuse_options_that_do_not_apply(options: ExportOptions, request: ExportRequest) -> None:
    """One rule for every option: set where it does not apply, it is refused, never silently ignored."""
    fields_by_name = {f.name: f for f in option_fields()}
    for name in changed_options(options):
        applies = fields_by_name[name].metadata["applies"]
        if applies is not None and not applies[1](request):
            raise ConfigError(f"{flag(name)} applies to {applies[0]} only; remove it or change the format")

def _engine_module(format: str, plan: ExportPlan, grid_sample: str, sm: int | None) -> str | None:
    """The TensorRT module that will build an engine (for --format engine, or a Triton repository for TensorRT),
    imported now so that a missing one stops the export first; the plugin library is checked before it."""
    needed_for = f"--format {format}" + (f" --target {plan.target.name}" if format != "engine" else "")
    if format == "triton" and plan.target.is_tensorrt:
        if plan.target.name == "trt-rtx":
            raise ConfigError("Triton's TensorRT backend loads TensorRT engines, not TensorRT for RTX ones: use --target trt")
        format = "engine"  # the repository serves a TensorRT plan (model.plan)
    if format != "engine":
        return None
    if not plan.target.is_tensorrt:
        raise ConfigError("--format engine needs a TensorRT --target (trt, trt8.6, trt8.5, trt8.4, trt8.2, trt-rtx), "
                          f"not {plan.target.name}")
    module = "tensorrt_rtx" if plan.target.name == "trt-rtx" else "tensorrt"
    if grid_sample == "plugin":
        if module == "tensorrt_rtx":
            raise ConfigError("TensorRT for RTX cannot build the plugin graph (its 1.7 ONNX parser aborts right after "
                              "creating the plugin): use --grid-sample native or gather for --target trt-rtx")
        from dattn.plugin.library import require_plugin_library

        require_plugin_library()
    from dattn.exporting.tensorrt import compute_capabilities
    from dattn.runtime.tensorrt_runner import import_tensorrt

    trt = import_tensorrt(module, needed_for=needed_for, instead="--format onnx works without it")
    if module == "tensorrt_rtx" and sm is not None and sm not in compute_capabilities(trt):
        raise ConfigError(f"--sm {sm}: TensorRT for RTX {trt.__version__} builds for SM "
                          f"{', '.join(map(str, compute_capabilities(trt)))}")
    return module
