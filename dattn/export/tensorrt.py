"""Build a TensorRT engine from a deployable ONNX: a thin, typed layer over TensorRT's Python API.

Works with TensorRT 8.x-11.x (`tensorrt`) and TensorRT for RTX (`tensorrt_rtx`, same API). The file
written carries ultralytics' engine header (4-byte little-endian length + JSON metadata), so
`YOLO("best.engine")` reads names, stride and image size from it.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import onnx

from dattn.errors import ConfigError
from dattn.export.files import write_atomically

# Metadata values ultralytics stores as Python literals in ONNX but as JSON values in engines.
_LITERAL_KEYS = {"stride", "batch", "channels", "imgsz", "names", "args", "end2end"}


def import_tensorrt(module_name: str = "tensorrt"):
    try:
        return __import__(module_name)
    except ImportError:
        raise ConfigError(
            f"--format engine needs TensorRT's Python package '{module_name}': pip install tensorrt on a desktop GPU, "
            "or use JetPack's python3-libnvinfer on a Jetson; --format onnx works without it"
        ) from None


def check_tensorrt_available(module_name: str = "tensorrt") -> None:
    import_tensorrt(module_name)


def _major(trt) -> int:
    return int(trt.__version__.split(".")[0])


def engine_metadata(onnx_model: onnx.ModelProto) -> dict:
    props = {p.key: p.value for p in onnx_model.metadata_props}
    return {k: ast.literal_eval(v) if k in _LITERAL_KEYS else v for k, v in props.items()}


def build_serialized_engine(onnx_path: Path, uses_plugin: bool = False, fp16: bool = False, module_name: str = "tensorrt") -> bytes:
    """Parse `onnx_path` and build a serialized engine; raises RuntimeError with the parser's errors."""
    trt = import_tensorrt(module_name)
    logger = trt.Logger(trt.Logger.WARNING)
    if uses_plugin:
        from dattn.plugin.library import load_plugin_library

        load_plugin_library(trt, logger)
    builder = trt.Builder(logger)
    explicit_batch = 0 if _major(trt) >= 10 or module_name != "tensorrt" else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(explicit_batch)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        if not hasattr(trt.BuilderFlag, "FP16"):
            raise ConfigError("this TensorRT builds strongly typed networks only: export an FP16 ONNX for FP16 engines")
        config.set_flag(trt.BuilderFlag.FP16)
    _add_profile_for_dynamic_input(builder, network, config)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    return bytes(serialized)


def _add_profile_for_dynamic_input(builder, network, config) -> None:
    """Dynamic ONNX inputs need an optimisation profile: batch 1-8 and 1/2x-2x the traced image size."""
    tensor = network.get_input(0)
    shape = list(tensor.shape)
    if all(d > 0 for d in shape):
        return
    profile = builder.create_optimization_profile()
    opt = [d if d > 0 else (1 if i == 0 else 640) for i, d in enumerate(shape)]
    low = [1 if i == 0 and d < 0 else (max(32, o // 2) if d < 0 else o) for i, (d, o) in enumerate(zip(shape, opt))]
    high = [8 if i == 0 and d < 0 else (o * 2 if d < 0 else o) for i, (d, o) in enumerate(zip(shape, opt))]
    profile.set_shape(tensor.name, low, opt, high)
    config.add_optimization_profile(profile)


def build_engine(onnx_path: Path, engine_path: Path, uses_plugin: bool = False, fp16: bool = False, module_name: str = "tensorrt") -> Path:
    """Write `engine_path` (ultralytics header + engine) atomically from `onnx_path`."""
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    engine = build_serialized_engine(onnx_path, uses_plugin, fp16, module_name)
    meta = json.dumps(engine_metadata(onnx.load(str(onnx_path), load_external_data=False))).encode()
    write_atomically(engine_path, len(meta).to_bytes(4, "little") + meta + engine)
    return engine_path
