"""Every option of an export, stated once: its default, its help, and where it applies.

`ExportOptions` is what the Python API takes (`dattn.export("best.pt", imgsz=320, half=True)`) and what the
command line is generated from (`--imgsz 320 --half`): the flag is the field name with dashes. `check_request`
(dattn.exporting.request) turns options into the validated request that the export runs.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Callable

from dattn.exporting.targets import DEFAULT_EXPORTER, EXPORTERS, GRID_SAMPLE_FORMS, TARGETS

FORMATS = ("onnx", "engine", "bundle", "triton")


def _option(default, help: str, applies: tuple[str, Callable] | None = None, **cli) -> field:
    """A field with its help text, argparse settings, and where it applies: (what to say, a test of the resolved
    request). Set away from its default where it does not apply, an option is refused rather than ignored."""
    return field(default=default, metadata={"help": help, "applies": applies, "cli": cli})


def _builds_engine(request) -> bool:
    return request.tensorrt_module is not None


_TRITON = ("--format triton", lambda r: r.format == "triton")
_INT8 = ("--int8", lambda r: r.precision == "int8")
_ENGINE = ("--format engine", lambda r: r.format == "engine")
_RTX_ENGINE = ("--format engine --target trt-rtx", lambda r: r.format == "engine" and r.plan.target.name == "trt-rtx")
_DYNAMIC_ENGINE = ("--dynamic engines (--format engine, or triton for TensorRT)", lambda r: r.dynamic and _builds_engine(r))


@dataclass
class ExportOptions:
    """What `dattn-export` and `dattn.export()` accept; see each field's help (`dattn-export --help`)."""

    format: str | None = _option(None, "onnx (default), engine, bundle or triton; an --output ending in .engine "
                                 "means engine", choices=FORMATS)
    output: str | None = _option(None, "where to write (default: beside the weights, named after them)")
    imgsz: int | list[int] = _option(640, "640, or H W (multiples of 32); for a dynamic engine, the optimal size of "
                                     "its profile", nargs="+", type=int, metavar="N")
    batch: int = _option(1, "batch size; for a dynamic engine or Triton repository, the largest", type=int)
    dynamic: bool = _option(False, "dynamic batch, height and width")
    min_imgsz: int | list[int] | None = _option(None, "smallest size of a dynamic engine's profile (default imgsz/2)",
                                                _DYNAMIC_ENGINE, nargs="+", type=int, metavar="N")
    max_imgsz: int | list[int] | None = _option(None, "largest size of a dynamic engine's profile (default imgsz*2)",
                                                _DYNAMIC_ENGINE, nargs="+", type=int, metavar="N")
    target: str | None = _option(None, "the runtime the file is for (default: ort, trt for engines and bundles): "
                                 + "; ".join(f"{name}: {t.description}" for name, t in TARGETS.items()),
                                 choices=tuple(TARGETS))
    opset: int | None = _option(None, "ONNX opset, 11-21 (default: chosen for the target)", type=int)
    grid_sample: str = _option("auto", "how sampling steps are written (default: chosen for target and opset)",
                               choices=GRID_SAMPLE_FORMS)
    end2end: bool | None = _option(None, "the NMS-free one-to-one branch of a YOLO26/YOLOv10 head (--end2end) or the "
                                   "one-to-many branch with NMS (--no-end2end); default: as the checkpoint was saved")
    half: bool = _option(False, "FP16 (an FP16 ONNX, or TensorRT's FP16 builder flag where it has one)")
    int8: bool = _option(False, "INT8 by Q/DQ, calibrated on --data")
    data: str | None = _option(None, "an ultralytics data yaml (verification on its val images, mAP, INT8 "
                               "calibration) or a folder of images (INT8 calibration)")
    calib_images: int = _option(300, "calibrate on up to this many images", _INT8, type=int)
    max_map_drop: float = _option(1.0, "fail an INT8 export that loses more mAP50-95 points than this (with a data "
                                  "yaml), after keeping up to half its layers in float, the most sensitive first",
                                  _INT8, type=float)
    raw_engine: bool = _option(False, "write the bare TensorRT plan (for trtexec, DeepStream, C++), without "
                               "ultralytics' header", _ENGINE)
    keep_onnx: bool = _option(False, "keep the ONNX the engine is built from, beside it", _ENGINE)
    sm: int | None = _option(None, "the compute capability to build for, e.g. 86 (default: every one RTX supports)",
                             _RTX_ENGINE, type=int)
    name: str = _option("yolo", "the model's name in the Triton repository", _TRITON)
    queue_delay_us: int = _option(500, "Triton's dynamic batching waits this long for more requests",
                                  _TRITON, type=int)
    instances: int = _option(1, "Triton instances of each model", _TRITON, type=int)
    exporter: str = _option(DEFAULT_EXPORTER, "torch's ONNX exporter: torchscript (tracing, deprecated by torch) or "
                            "dynamo (torch.export)", choices=EXPORTERS)
    simplify: bool = _option(True, "clean the graph with onnxslim")
    verify: bool = _option(True, "check the export against PyTorch")
    conf: float = _option(0.25, "confidence threshold for the detection comparison (0-1)", type=float)
    device: str = _option("cpu", "device to trace on: cpu, cuda or cuda:N")
    trust_weights: bool = _option(False, "load a checkpoint from a source you trust with the full unpickler "
                                  "(runs any code it holds); by default only what YOLO checkpoints need is loaded")


def option_fields():
    """The fields of ExportOptions, in order."""
    return fields(ExportOptions)


def changed_options(options: ExportOptions) -> list[str]:
    """The names of the options that differ from their defaults."""
    return [f.name for f in option_fields() if f.default is not MISSING and getattr(options, f.name) != f.default]


def flag(name: str) -> str:
    """The command-line spelling of an option."""
    return "--" + name.replace("_", "-")
