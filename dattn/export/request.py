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
from dattn.export.dataset import Dataset, load_dataset
from dattn.export.targets import DEFAULT_EXPORTER, EXPORTERS, ExportPlan, plan_export

FORMATS = ("onnx", "engine", "bundle", "triton")
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
    serving: dict  # --format triton: name, queue_delay_us, instances
    output: Path = None
    warnings: list[str] = field(default_factory=list)

    @property
    def picture(self) -> Path:
        """Where the verification picture goes: beside the main output (file or folder), named after it."""
        return self.output.with_name(self.output.name.split(".")[0] + "_verify.png")


def normalize_imgsz(imgsz, flag: str = "--imgsz") -> tuple[int, int]:
    sizes = [imgsz] * 2 if isinstance(imgsz, int) else list(imgsz)
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or any(not isinstance(s, int) or s < 32 or s % 32 for s in sizes):
        raise ConfigError(f"{flag} must be one or two multiples of 32 (the model's stride), got {imgsz}")
    if max(sizes) > MAX_IMGSZ:
        raise ConfigError(f"{flag} {sizes[0]} {sizes[1]} is larger than {MAX_IMGSZ}; the model would not fit in memory")
    return sizes[0], sizes[1]


def check_weights(weights: str | Path) -> Path:
    """The checkpoint, if it is one that can be read: missing, unreadable, foreign and damaged files are refused."""
    from dattn.ultralytics.checkpoint import referenced_globals

    path = Path(weights)
    if path.suffix.lower() in (".onnx", ".engine", ".plan"):
        raise CheckpointError(f"{path}: dattn-export expects a .pt checkpoint; to run an exported model use "
                              f"`dattn predict --model {path} --source IMAGE`")
    referenced_globals(path)  # the file, its zip archive and its pickle are checked without unpickling anything
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
    """ConfigError unless `output` can be written: not the weights, not a folder (for files), in a writable folder."""
    if output.exists() and output.resolve() == weights.resolve():
        raise ConfigError(f"{output}: refusing to overwrite the input weights; pass another --output")
    if format not in FOLDER_FORMATS and output.is_dir():
        raise ConfigError(f"{output}: is a folder; pass a file path to --output")
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


def check_request(weights, format=None, imgsz=640, batch=1, dynamic=False, opset=None, grid_sample="auto",
                  target=None, half=False, int8=False, data=None, calib_images=300, max_map_drop=1.0,
                  simplify=True, verify=True, conf=0.25, output=None, device="cpu", exporter=DEFAULT_EXPORTER,
                  raw_engine=False, sm=None, min_imgsz=None, max_imgsz=None, keep_onnx=False, name="yolo",
                  queue_delay_us=500, instances=1) -> ExportRequest:
    """Validate everything that can be validated before loading the model; returns the request to run."""
    weights = check_weights(weights)
    format, warnings = infer_format(format, output)
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    size = normalize_imgsz(imgsz)
    if not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"--batch must be at least 1, got {batch}")
    plan = plan_export(target or DEFAULT_TARGETS[format], opset, grid_sample)
    conf = check_conf(conf)
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown --exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    precision = _precision(half, int8)
    if half and int8:
        warnings.append("--half with --int8: the layers left unquantized run in FP16 where TensorRT has the flag "
                        "(8.x-10.x), in FP32 on strongly typed TensorRT (11.x, RTX)")
    if half and format == "onnx" and plan.target.name == "ort" and not int8:
        warnings.append("an FP16 ONNX is for ONNX Runtime's CUDA and TensorRT execution providers (or TensorRT); "
                        "on a CPU it runs no faster than FP32 (use --int8 there)")
    if int8 and data is None:
        raise ConfigError("--int8 needs calibration images: --data DATA (an ultralytics data yaml or a folder of images)")
    if int8 and plan.grid_sample == "plugin" and plan.opset < 16:
        raise ConfigError(f"--int8 with --grid-sample plugin needs opset 16 or higher (got {plan.opset}): calibration "
                          "runs the graph with ONNX GridSample; use --grid-sample gather below 16")
    if not isinstance(calib_images, int) or calib_images < 1:
        raise ConfigError(f"--calib-images must be at least 1, got {calib_images}")
    if not (isinstance(max_map_drop, (int, float)) and max_map_drop >= 0):
        raise ConfigError(f"--max-map-drop must be 0 or more points, got {max_map_drop}")
    dataset = load_dataset(data, calib_images) if data is not None else None
    if raw_engine and format != "engine":
        raise ConfigError("--raw-engine applies to --format engine (it writes the bare TensorRT plan)")
    if keep_onnx and format != "engine":
        raise ConfigError("--keep-onnx applies to --format engine (the other formats write their ONNX anyway)")
    lows, highs = (normalize_imgsz(s, flag) if s is not None else None
                   for s, flag in ((min_imgsz, "--min-imgsz"), (max_imgsz, "--max-imgsz")))
    if (lows or highs) and not dynamic:
        raise ConfigError("--min-imgsz / --max-imgsz shape a dynamic engine's profile: add --dynamic")
    device = check_device(device)
    tensorrt_module = _engine_module(format, plan, plan.grid_sample, sm)
    if plan.grid_sample == "plugin" and plan.target.name == "ort":
        warnings.append("--grid-sample plugin writes a DAttnGridSample node that plain ONNX Runtime and ultralytics "
                        "cannot run: it is for TensorRT with the plugin; `dattn predict` runs it on a CPU with dattn's "
                        "reference op (pip install onnxruntime-extensions)")
    if format == "triton" and not dynamic:
        warnings.append("without --dynamic the repository serves the exported batch size only, so Triton cannot "
                        "batch requests dynamically")
    request = ExportRequest(weights, format, size, batch, dynamic, plan, precision, dataset, float(max_map_drop),
                            simplify, verify, conf, device, exporter, raw_engine, sm, lows, highs, keep_onnx,
                            tensorrt_module, {"name": name, "queue_delay_us": queue_delay_us, "instances": instances},
                            warnings=warnings)
    if dynamic and format == "engine":
        from dattn.export.tensorrt import dynamic_profile

        dynamic_profile(batch, size, lows, highs)  # ConfigError for a profile that shrinks
    request.output = check_output(weights, Path(output) if output else _default_output(weights, format, precision), format)
    if format == "triton":
        from dattn.export.triton import check_repository_target

        check_repository_target(request.output, name)
    if format == "bundle":
        from dattn.export.bundle import check_bundle_target

        check_bundle_target(request.output)
    return request


def _engine_module(format: str, plan: ExportPlan, grid_sample: str, sm: int | None) -> str | None:
    """The TensorRT module that will build an engine (for --format engine, or a Triton repository for TensorRT),
    imported now so that a missing one stops the export first; the plugin library is checked before it."""
    if format == "triton" and plan.target.is_tensorrt:
        if plan.target.name == "trt-rtx":
            raise ConfigError("Triton's TensorRT backend loads TensorRT engines, not TensorRT for RTX ones: use --target trt")
        format = "engine"  # the repository serves a TensorRT plan (model.plan)
    if format != "engine":
        if sm is not None:
            raise ConfigError("--sm applies to --format engine --target trt-rtx")
        return None
    if not plan.target.is_tensorrt:
        raise ConfigError("--format engine needs a TensorRT --target (trt, trt8.6, trt8.5, trt8.4, trt8.2, trt-rtx), "
                          f"not {plan.target.name}")
    module = "tensorrt_rtx" if plan.target.name == "trt-rtx" else "tensorrt"
    if sm is not None and module != "tensorrt_rtx":
        raise ConfigError("--sm applies to --target trt-rtx: TensorRT builds for the GPU it runs on")
    if grid_sample == "plugin":
        if module == "tensorrt_rtx":
            raise ConfigError("TensorRT for RTX cannot build the plugin graph (its 1.7 ONNX parser aborts right after "
                              "creating the plugin): use --grid-sample native or gather for --target trt-rtx")
        from dattn.plugin.library import require_plugin_library

        require_plugin_library()
    from dattn.export.tensorrt import compute_capabilities, import_tensorrt

    trt = import_tensorrt(module)
    if sm is not None and sm not in compute_capabilities(trt):
        raise ConfigError(f"--sm {sm}: TensorRT for RTX {trt.__version__} builds for SM "
                          f"{', '.join(map(str, compute_capabilities(trt)))}")
    return module
