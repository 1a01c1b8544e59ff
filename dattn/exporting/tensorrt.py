"""Build a TensorRT engine from a deployable ONNX: a thin, typed layer over TensorRT's Python API.

One code path for TensorRT 8.x, 10.x, 11.x (`tensorrt`) and TensorRT for RTX (`tensorrt_rtx`): the differences
between generations are detected from what the module offers, never from its version string:
- explicit batch: a network creation flag up to 8.x (deprecated and ignored in 10, gone in 11);
- the workspace limit: `set_memory_pool_limit` from 8.4, `max_workspace_size` before;
- precision: builder flags FP16/INT8 up to 10.x ("weakly typed"); 11.x and RTX build strongly typed networks only,
  so there FP16 is an FP16 ONNX and INT8 a Q/DQ ONNX, built as they are;
- compute capability (RTX builds ahead of time for the SMs named in `ComputeCapability`).
The file carries ultralytics' engine header (4-byte little-endian length + JSON metadata), so
`YOLO("best.engine")` reads names, stride and image size; or, with raw=True, the bare plan that trtexec,
DeepStream and C++ loaders read.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import onnx

from dattn.errors import ConfigError
from dattn.runtime.tensorrt_runner import import_tensorrt

MODULES = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT for RTX"}
WORKSPACE_BYTES = 4 << 30
# Metadata values ultralytics stores as Python literals in ONNX but as JSON values in engines.
_LITERAL_KEYS = {"stride", "batch", "channels", "imgsz", "names", "args", "end2end", "dattn_profile"}


def builds_strongly_typed_only(trt) -> bool:
    """TensorRT 11 and TensorRT for RTX have no FP16/INT8 builder flags: precision comes from the ONNX's types."""
    return not hasattr(trt.BuilderFlag, "FP16")


def compute_capabilities(trt) -> list[int]:
    """The SMs a TensorRT for RTX can build for ahead of time (e.g. 86); empty for TensorRT, which builds for its GPU."""
    members = getattr(trt, "ComputeCapability", None)
    names = getattr(members, "__members__", {}) if members is not None else {}
    return sorted(int(name[2:]) for name in names if name.startswith("SM") and name[2:].isdigit())


@dataclass(frozen=True)
class Profile:
    """An optimisation profile for the dynamic input: NCHW shapes, smallest, optimal and largest."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]

    def as_metadata(self) -> dict:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def dynamic_profile(batch: int, imgsz: tuple[int, int], min_imgsz: tuple[int, int] | None,
                    max_imgsz: tuple[int, int] | None) -> Profile:
    """Batch 1..`batch` (optimal: `batch`), images `min_imgsz`..`max_imgsz` (optimal: `imgsz`).

    Defaults: half and twice `imgsz`, in multiples of 32 and at least 32. ConfigError for a profile whose
    minimum exceeds its optimum or its optimum its maximum.
    """
    low = min_imgsz or tuple(max(32, s // 2 // 32 * 32) for s in imgsz)
    high = max_imgsz or tuple(s * 2 for s in imgsz)
    for side, a, b, c in zip(("height", "width"), low, imgsz, high):
        if not a <= b <= c:
            raise ConfigError(f"dynamic profile: the {side} must grow from --min-imgsz to --imgsz to --max-imgsz, "
                              f"got {a}, {b}, {c}")
    return Profile((1, 3, *low), (batch, 3, *imgsz), (batch, 3, *high))


def _create_network(trt, builder):
    flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if flag is not None and not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        return builder.create_network(1 << int(flag))  # 8.x: implicit batch is the default there
    return builder.create_network(0)  # 10.x and later: always explicit batch; 11.x/RTX: always strongly typed


def _limit_workspace(trt, config, size: int) -> None:
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, size)
    else:
        config.max_workspace_size = size  # 8.0-8.3


def parse_onnx(trt, logger, onnx_model: onnx.ModelProto | str | Path):
    """(builder, network, parser) for an ONNX model or file; ConfigError with the parser's errors when it is refused."""
    builder = trt.Builder(logger)
    network = _create_network(trt, builder)
    parser = trt.OnnxParser(network, logger)
    if isinstance(onnx_model, onnx.ModelProto):  # parsed from memory: nothing is written to be read back
        parsed, name = parser.parse(onnx_model.SerializeToString()), "the exported graph"
    else:
        parsed, name = parser.parse_from_file(str(onnx_model)), Path(onnx_model).name
    if not parsed:
        errors = "; ".join(str(parser.get_error(i)).strip().replace("\n", " ") for i in range(parser.num_errors))
        raise ConfigError(f"{MODULES.get(trt.__name__, 'TensorRT')} {trt.__version__} cannot parse {name}: {errors}")
    return builder, network, parser


def configure(trt, builder, network, precision: str, profile: Profile | None, sm: int | None):
    """The builder config: precision flags (weakly typed TensorRT), workspace, profile, target SM."""
    config = builder.create_builder_config()
    _limit_workspace(trt, config, WORKSPACE_BYTES)
    if precision != "fp32" and not builds_strongly_typed_only(trt):
        config.set_flag(trt.BuilderFlag.FP16)  # INT8 too: the layers left unquantized run in FP16
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
    if profile is not None:
        optimization_profile = builder.create_optimization_profile()
        optimization_profile.set_shape(network.get_input(0).name, profile.min, profile.opt, profile.max)
        config.add_optimization_profile(optimization_profile)
    if sm is not None:
        config.num_compute_capabilities = 1
        config.set_compute_capability(getattr(trt.ComputeCapability, f"SM{sm}"), 0)
    return config


def build_serialized_engine(onnx_model: onnx.ModelProto | str | Path, precision: str = "fp32", profile: Profile | None = None,
                            uses_plugin: bool = False, module_name: str = "tensorrt", sm: int | None = None) -> bytes:
    """Parse an ONNX model (in memory or a file) and build a plan. precision "fp16"/"int8" sets the builder flags where TensorRT has
    them; on strongly typed TensorRT the ONNX must already be FP16 or Q/DQ. ConfigError for a parser refusal,
    RuntimeError when the builder fails."""
    trt = import_tensorrt(module_name, needed_for="building an engine", instead="export --format onnx, which works without it")
    logger = trt.Logger(trt.Logger.WARNING)
    if uses_plugin:
        from dattn.plugin.library import load_plugin_library

        load_plugin_library(trt, logger)
    builder, network, _parser = parse_onnx(trt, logger, onnx_model)
    config = configure(trt, builder, network, precision, profile, sm)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build an engine (see its log above)")
    return bytes(serialized)


def engine_metadata(onnx_model: onnx.ModelProto) -> dict:
    """The ONNX's metadata as the JSON values ultralytics' engine header holds."""
    props = {p.key: p.value for p in onnx_model.metadata_props}
    return {k: ast.literal_eval(v) if k in _LITERAL_KEYS else v for k, v in props.items()}


def engine_file(plan: bytes, metadata: dict, raw: bool) -> bytes:
    """The bytes of an engine file: ultralytics' header + plan, or the bare plan."""
    from dattn.runtime.engine_file import engine_file_bytes

    return engine_file_bytes(plan, None if raw else metadata)
