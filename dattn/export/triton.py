"""A Triton Inference Server model repository for an exported detector (`dattn-export --format triton`).

For name "yolo" the folder holds:

    yolo/config.pbtxt, yolo/1/model.onnx | model.plan   the detector: onnxruntime_onnx, or tensorrt_plan for an engine
    yolo_python/                                        the same ONNX run by ONNX Runtime inside Triton's python backend
    yolo_preprocess/, yolo_postprocess/                 python backend: letterbox; decode and NMS (dattn.runtime's)
    yolo_ensemble/                                      images in, boxes/scores/classes out, through yolo
    yolo_python_ensemble/                               the same through yolo_python
    client.py, README.md                                an example client; how to serve and query
    dattn_triton.json                                   what wrote the folder (an export may replace only its own)

Every python-backend model carries a copy of dattn.runtime (and dattn/errors.py) beside its model.py, so the server
needs no dattn install. Dims, batch size and metadata come from the exported ONNX graph.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import onnx

from dattn.errors import ConfigError
from dattn.export.files import umask
from dattn.export.runtime_tree import copy_runtime_tree
from dattn.runtime.engine_file import read_engine_file

FILES = Path(__file__).with_name("triton_files")
MARKER = "dattn_triton.json"
# Triton serves a model under its folder's name in URLs and protobuf fields: keep to a portable alphabet.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
DEFAULT_MAX_BATCH = 8
LINE_WIDTH = 120  # config.pbtxt: messages that fit are written on one line
DEVICES = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}
_TRITON_TYPES = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.FLOAT16: "TYPE_FP16",
                 onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.INT32: "TYPE_INT32",
                 onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.BOOL: "TYPE_BOOL"}


class Enum(str):
    """A protobuf enum value: written without quotes."""


@dataclass(frozen=True)
class Tensor:
    name: str
    data_type: str  # Triton's TYPE_*
    dims: tuple[int, ...]  # -1 where the graph's dimension is symbolic


@dataclass(frozen=True)
class GraphInterface:
    """What the repository needs to know about the exported graph."""

    input: Tensor
    outputs: tuple[Tensor, ...]
    metadata: dict[str, str]
    uses_plugin: bool

    @property
    def imgsz(self) -> tuple[int, int]:
        return tuple(ast.literal_eval(self.metadata["imgsz"]))

    @property
    def names(self) -> dict[int, str]:
        return ast.literal_eval(self.metadata["names"])


def _tensor(value_info) -> Tensor:
    kind = value_info.type.tensor_type
    if kind.elem_type not in _TRITON_TYPES:
        raise ConfigError(f"graph tensor {value_info.name!r} has ONNX type {kind.elem_type}, which this writer does not map to Triton")
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in kind.shape.dim)
    return Tensor(value_info.name, _TRITON_TYPES[kind.elem_type], dims)


def graph_interface(model: onnx.ModelProto) -> GraphInterface:
    """Input, outputs, metadata and plugin use of an exported detector; ConfigError when it is not one."""
    from dattn.plugin.contract import OP_TYPE

    metadata = {p.key: p.value for p in model.metadata_props}
    missing = [key for key in ("imgsz", "names", "stride") if key not in metadata]
    if missing:
        raise ConfigError(f"the ONNX has no {', '.join(missing)} metadata; export it with dattn-export (or ultralytics)")
    if metadata.get("task", "detect") != "detect":
        raise ConfigError(f"the ONNX is a {metadata['task']} model; the Triton repository serves detectors only")
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_tensor(i) for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(inputs[0].dims) != 4 or inputs[0].data_type != "TYPE_FP32":
        raise ConfigError(f"expected one float32 (N, 3, H, W) image input, the graph has {inputs}")
    return GraphInterface(inputs[0], tuple(_tensor(o) for o in model.graph.output), metadata,
                          any(node.op_type == OP_TYPE for node in model.graph.node))


def check_model_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"model name {name!r}: Triton model names here are 1-100 letters, digits, '_', '.' or '-', "
                          "starting with a letter or digit (the name is a folder and part of every request URL)")


def check_output_folder(out_dir: Path, name: str) -> None:
    """An output folder may be new, empty, or an earlier repository written for the same model name."""
    if not out_dir.parent.is_dir():
        raise ConfigError(f"{out_dir}: cannot be written, folder {out_dir.parent} does not exist")
    if not os.access(out_dir.parent, os.W_OK):
        raise ConfigError(f"{out_dir}: cannot be written, folder {out_dir.parent} is not writable")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder; pass a new folder for the Triton repository")
    if not any(out_dir.iterdir()):
        return
    try:
        earlier = json.loads((out_dir / MARKER).read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        earlier = None
    if earlier is None:
        raise ConfigError(f"{out_dir}: exists and is not a dattn Triton repository; pass a new or empty folder")
    if earlier != name:
        raise ConfigError(f"{out_dir}: holds the Triton repository of model {earlier!r}, not {name!r}; pass another folder")


def check_repository_target(out_dir: str | os.PathLike, name: str = "yolo") -> None:
    """ConfigError unless the repository of model `name` may be written to `out_dir`; call it before a long export."""
    check_model_name(name)
    check_output_folder(Path(out_dir), name)


def batch_limit(interface: GraphInterface, max_batch_size: int | None, engine_batch: int | None) -> int:
    """Triton's max_batch_size: the largest batch the graph takes (dynamic batch dim), else 0 (batch in the dims).

    engine_batch: the largest batch of a dynamic engine's profile (its header's dattn_profile), if one serves.
    """
    graph_batch = interface.input.dims[0]
    if graph_batch != -1:
        if max_batch_size not in (None, graph_batch if graph_batch == 1 else 0):
            raise ConfigError(f"the graph's batch is fixed at {graph_batch}: export with dynamic=True (--dynamic) "
                              "for a settable max_batch_size")
        return 1 if graph_batch == 1 else 0  # batch 1 behaves as a batching model of at most one image
    if max_batch_size is None:
        return engine_batch or DEFAULT_MAX_BATCH
    if not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise ConfigError(f"max_batch_size must be a positive integer, got {max_batch_size!r}")
    if engine_batch is not None and max_batch_size > engine_batch:
        raise ConfigError(f"max_batch_size {max_batch_size}: the engine's profile takes batches 1-{engine_batch} "
                          "(export it with --batch for more)")
    return max_batch_size


# --- config.pbtxt -------------------------------------------------------------------------------------------------

def _scalar(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def pbtxt(fields: dict, indent: int = 0) -> str:
    """Protobuf text format of nested dicts; a list of dicts is a repeated message (or map) field.

    A message that fits on one line is written on one line.
    """
    pad, lines = "  " * indent, []
    for key, value in fields.items():
        messages = [value] if isinstance(value, dict) else value if isinstance(value, list) and value and isinstance(value[0], dict) else None
        if messages is not None:
            for message in messages:
                inline = f"{pad}{key} {{ {_inline(message)} }}"
                lines += [inline] if len(inline) <= LINE_WIDTH else [f"{pad}{key} {{", pbtxt(message, indent + 1), f"{pad}}}"]
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [{', '.join(_scalar(v) for v in value)}]")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "\n".join(lines)


def _inline(message: dict) -> str:
    return " ".join(line.strip() for line in pbtxt(message).splitlines())


def _io(tensor: Tensor, optional: bool = False) -> dict:
    entry = {"name": tensor.name, "data_type": Enum(tensor.data_type), "dims": list(tensor.dims)}
    return {**entry, "optional": True} if optional else entry


def _parameters(values: dict[str, str]) -> list[dict]:
    return [{"key": key, "value": {"string_value": str(value)}} for key, value in values.items()]


@dataclass(frozen=True)
class Serving:
    """How every model of the repository is scheduled."""

    max_batch_size: int
    dynamic_batching: bool
    queue_delay_us: int
    instances: int
    kind: str  # KIND_* of the detectors; pre- and post-processing run on the CPU

    def per_item(self, dims, graph_batch: int) -> tuple[int, ...]:
        """Config dims of a tensor whose per-image dims are `dims`: the batch is implied, or leads the dims."""
        return tuple(dims) if self.max_batch_size else (graph_batch, *dims)

    def scheduling(self, kind: str | None = None) -> dict:
        fields = {"max_batch_size": self.max_batch_size}
        if self.max_batch_size and self.dynamic_batching:
            fields["dynamic_batching"] = {"max_queue_delay_microseconds": self.queue_delay_us}
        fields["instance_group"] = [{"count": self.instances, "kind": Enum(kind or self.kind)}]
        return fields


def detector_config(name: str, runner: dict, interface: GraphInterface, serving: Serving, parameters: dict) -> str:
    """config.pbtxt of a detector: `runner` is its platform (onnxruntime_onnx, tensorrt_plan) or python backend."""
    batch = interface.input.dims[0]
    return pbtxt({
        "name": name, **runner, **serving.scheduling(),
        "input": [_io(_batched(interface.input, serving, batch))],
        "output": [_io(_batched(o, serving, batch)) for o in interface.outputs],
        "parameters": _parameters(parameters),
    }) + "\n"


def _batched(tensor: Tensor, serving: Serving, graph_batch: int) -> Tensor:
    return Tensor(tensor.name, tensor.data_type, serving.per_item(tensor.dims[1:], graph_batch))


def ensemble_tensors(interface: GraphInterface, serving: Serving) -> dict[str, Tensor]:
    """The tensors passed between the ensemble's steps, by name, with their config dims."""
    batch, (h, w) = interface.input.dims[0], interface.imgsz
    per_image = {
        "IMAGE_BYTES": ("TYPE_STRING", (1,)),  # one encoded image per batch row
        "IMAGE": ("TYPE_UINT8", (-1, -1, 3)),  # decoded, BGR
        "NETWORK_INPUT": (interface.input.data_type, (3, h, w)),
        "ORIGINAL_SHAPE": ("TYPE_INT64", (2,)),
        "NETWORK_OUTPUT": (interface.outputs[0].data_type, interface.outputs[0].dims[1:]),
        "BOXES": ("TYPE_FP32", (-1, 4)),
        "SCORES": ("TYPE_FP32", (-1,)),
        "CLASSES": ("TYPE_INT64", (-1,)),
        "NUM_DETECTIONS": ("TYPE_INT32", (1,)),
    }
    return {name: Tensor(name, data_type, serving.per_item(dims, batch)) for name, (data_type, dims) in per_image.items()}


def python_step_config(name: str, inputs: list[Tensor], outputs: list[Tensor], serving: Serving, parameters: dict,
                       optional_inputs: bool = False) -> str:
    return pbtxt({
        "name": name, "backend": "python", **serving.scheduling("KIND_CPU"),
        "input": [_io(t, optional_inputs) for t in inputs], "output": [_io(t) for t in outputs],
        "parameters": _parameters(parameters),
    }) + "\n"


def ensemble_config(name: str, detector: str, steps: tuple[str, str], interface: GraphInterface, serving: Serving) -> str:
    """images -> preprocess -> detector -> postprocess -> boxes, scores, classes."""
    t = ensemble_tensors(interface, serving)
    preprocess, postprocess = steps

    def step(model: str, inputs: dict[str, str], outputs: dict[str, str]) -> dict:
        return {"model_name": model, "model_version": -1,
                "input_map": [{"key": k, "value": v} for k, v in inputs.items()],
                "output_map": [{"key": k, "value": v} for k, v in outputs.items()]}

    return pbtxt({
        "name": name, "platform": "ensemble", "max_batch_size": serving.max_batch_size,
        "input": [_io(t["IMAGE_BYTES"], optional=True), _io(t["IMAGE"], optional=True)],
        "output": [_io(t[n]) for n in ("BOXES", "SCORES", "CLASSES", "NUM_DETECTIONS")],
        "ensemble_scheduling": {"step": [
            step(preprocess, {"IMAGE_BYTES": "IMAGE_BYTES", "IMAGE": "IMAGE"},
                 {"NETWORK_INPUT": "NETWORK_INPUT", "ORIGINAL_SHAPE": "ORIGINAL_SHAPE"}),
            step(detector, {interface.input.name: "NETWORK_INPUT"}, {interface.outputs[0].name: "NETWORK_OUTPUT"}),
            step(postprocess, {"NETWORK_OUTPUT": "NETWORK_OUTPUT", "ORIGINAL_SHAPE": "ORIGINAL_SHAPE"},
                 {n: n for n in ("BOXES", "SCORES", "CLASSES", "NUM_DETECTIONS")}),
        ]},
        "parameters": _parameters({"names": interface.metadata["names"]}),
    }) + "\n"


# --- files ----------------------------------------------------------------------------------------------------------

def _python_model(folder: Path, template: str, config: str) -> Path:
    version = folder / "1"
    version.mkdir(parents=True)
    shutil.copy(FILES / template, version / "model.py")
    copy_runtime_tree(version, "as shipped in a Triton python-backend model")
    (folder / "config.pbtxt").write_text(config)
    return version


def _render(template: str, values: dict[str, str]) -> str:
    text = (FILES / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _plugin_library(explicit: str | os.PathLike | None) -> Path:
    from dattn.plugin.build import plugin_path
    from dattn.plugin.contract import LIBRARY_ENV, LIBRARY_NAME

    library = Path(explicit) if explicit is not None else plugin_path()
    if library is None or not library.is_file():
        where = f"{library} does not exist" if library is not None else f"none is built (dattn plugin build) and ${LIBRARY_ENV} is unset"
        raise ConfigError(f"the engine uses the DAttnGridSample plugin but no plugin library was given: {where}; "
                          f"pass plugin_library=<path to {LIBRARY_NAME}>")
    return library


def write_triton_repository(
    out_dir: str | os.PathLike,
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike | None = None,
    *,
    name: str = "yolo",
    max_batch_size: int | None = None,
    dynamic_batching: bool = True,
    queue_delay_us: int = 500,
    instances: int = 1,
    device: str = "auto",
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    onnxruntime_threads: int = 0,
    plugin_library: str | os.PathLike | None = None,
) -> Path:
    """Write the Triton model repository `out_dir` for a detector exported to `onnx_path` (and `engine_path`).

    The detector model is the ONNX (platform onnxruntime_onnx) or, given `engine_path` (built from that ONNX), the
    TensorRT plan (tensorrt_plan). max_batch_size defaults to 8 for a graph with a dynamic batch; a fixed-batch graph
    is served at its own batch. Dynamic batching (on by default) gathers requests into batches, waiting at most
    queue_delay_us for more. instances: instances per model; device auto/gpu/cpu: the detectors' instance kind;
    onnxruntime_threads: intra-op threads of the python-backend detector (0: ONNX Runtime's default). conf, iou and
    max_det set post-processing (editable later in <name>_postprocess/config.pbtxt). An engine with the grid-sample
    plugin needs its library (`plugin_library`, else the one `dattn plugin path` finds), shipped with its sources.
    Returns `out_dir`. Raises ConfigError, writing nothing, for bad input.
    """
    from dattn.runtime.postprocess import check_thresholds

    out_dir, onnx_path = Path(out_dir), Path(onnx_path)
    check_repository_target(out_dir, name)
    if device not in DEVICES:
        raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    for label, value, low in (("instances", instances, 1), ("queue_delay_us", queue_delay_us, 0), ("max_det", max_det, 1),
                              ("onnxruntime_threads", onnxruntime_threads, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ConfigError(f"{label} must be an integer >= {low}, got {value!r}")
    try:
        check_thresholds(conf, iou)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if not onnx_path.is_file():
        raise ConfigError(f"{onnx_path}: no such ONNX file (the repository takes dims and metadata from it)")
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, ValueError, ... for files that are not ONNX
        raise ConfigError(f"{onnx_path}: not a readable ONNX model ({type(error).__name__})") from None
    interface = graph_interface(model)

    plan = header = library = None
    if engine_path is not None:
        engine_path = Path(engine_path)
        if not engine_path.is_file():
            raise ConfigError(f"{engine_path}: no such engine file")
        if device == "cpu":
            raise ConfigError("a TensorRT engine runs on a GPU: leave device at auto or gpu")
        engine = read_engine_file(engine_path)
        plan, header = engine.plan, engine.metadata or None
    uses_plugin = interface.uses_plugin or (header or {}).get("dattn_grid_sample") == "plugin"
    if uses_plugin and engine_path is None:
        raise ConfigError(f"{onnx_path} holds DAttnGridSample plugin nodes, which only TensorRT runs: pass the engine built "
                          "from it, or export with grid_sample native or gather for ONNX Runtime")
    if uses_plugin:
        library = _plugin_library(plugin_library)
    kind = "KIND_GPU" if engine_path is not None and device == "auto" else DEVICES[device]
    engine_batch = (header or {}).get("dattn_profile", {}).get("max", [None])[0]
    serving = Serving(batch_limit(interface, max_batch_size, engine_batch), bool(dynamic_batching),
                      queue_delay_us, instances, kind)

    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        models = _write_models(stage, name, onnx_path, plan, library, interface, serving, (conf, iou, max_det), onnxruntime_threads)
        _write_guides(stage, name, interface, serving, models, plan is not None, library is not None)
        (stage / MARKER).write_text(json.dumps({"name": name, "models": models, "written_by": _dattn_version()}, indent=2) + "\n")
        os.chmod(stage, 0o777 & ~umask())  # mkdtemp makes 0700
        _replace_folder(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return out_dir


def _write_models(root: Path, name: str, onnx_path: Path, plan: bytes | None, library: Path | None,
                  interface: GraphInterface, serving: Serving, thresholds, threads: int) -> list[str]:
    """Every model folder; returns the model names written."""
    conf, iou, max_det = thresholds
    t = ensemble_tensors(interface, serving)
    preprocess, postprocess = f"{name}_preprocess", f"{name}_postprocess"
    version = root / name / "1"
    version.mkdir(parents=True)
    if plan is not None:
        (version / "model.plan").write_bytes(plan)
        platform = "tensorrt_plan"
    else:
        shutil.copy(onnx_path, version / "model.onnx")
        platform = "onnxruntime_onnx"
    (root / name / "config.pbtxt").write_text(detector_config(name, {"platform": platform}, interface, serving, interface.metadata))
    if library is not None:
        from dattn.plugin.build import plugin_source_dir

        plugin = root / name / "plugin"  # not a number, so Triton does not take it for a version
        shutil.copytree(plugin_source_dir(), plugin / "trt_gridsample", ignore=shutil.ignore_patterns("build*", "__pycache__"))
        shutil.copy(library, plugin / library.name)

    size = str(list(interface.imgsz))
    _python_model(root / preprocess, "preprocess.py", python_step_config(
        preprocess, [t["IMAGE_BYTES"], t["IMAGE"]], [t["NETWORK_INPUT"], t["ORIGINAL_SHAPE"]], serving,
        {"imgsz": size, "head": _head_name(interface)}, optional_inputs=True))
    _python_model(root / postprocess, "postprocess.py", python_step_config(
        postprocess, [t["NETWORK_OUTPUT"], t["ORIGINAL_SHAPE"]], [t[n] for n in ("BOXES", "SCORES", "CLASSES", "NUM_DETECTIONS")],
        serving, {"imgsz": size, "head": _head_name(interface), "classes": len(interface.names), "conf": conf, "iou": iou,
                  "max_det": max_det}))
    (root / f"{name}_ensemble").mkdir()
    (root / f"{name}_ensemble" / "1").mkdir()  # ensembles need a version folder too, even an empty one
    (root / f"{name}_ensemble" / "config.pbtxt").write_text(
        ensemble_config(f"{name}_ensemble", name, (preprocess, postprocess), interface, serving))
    models = [name, preprocess, postprocess, f"{name}_ensemble"]
    if not interface.uses_plugin:  # ONNX Runtime cannot run plugin nodes
        python = f"{name}_python"
        version = _python_model(root / python, "detector_onnxruntime.py", detector_config(
            python, {"backend": "python"}, interface, serving, {**interface.metadata, "intra_op_num_threads": threads}))
        shutil.copy(onnx_path, version / "model.onnx")
        (root / f"{python}_ensemble" / "1").mkdir(parents=True)
        (root / f"{python}_ensemble" / "config.pbtxt").write_text(
            ensemble_config(f"{python}_ensemble", python, (preprocess, postprocess), interface, serving))
        models += [python, f"{python}_ensemble"]
    return models


def _write_guides(root: Path, name: str, interface: GraphInterface, serving: Serving, models: list[str], engine: bool,
                  plugin: bool) -> None:
    """client.py and README.md, filled in for this model."""
    python = f"{name}_python" in models
    values = {"NAME": name, "ENSEMBLE": f"{name}_ensemble", "NAMES": repr(interface.names), "MODELS": ", ".join(models),
              "DETECTOR": "tensorrt_plan" if engine else "onnxruntime_onnx", "INPUT": interface.input.name,
              "OUTPUT": interface.outputs[0].name, "HEIGHT": str(interface.imgsz[0]), "WIDTH": str(interface.imgsz[1]),
              "MAX_BATCH": str(serving.max_batch_size or interface.input.dims[0])}
    values["PYTHON_ROWS"] = _render("README_python.md", values) if python else ""
    values["PYTHON_ONLY"] = f" On a server with the python backend only, load `{name}_python_ensemble` instead." if python else ""
    (root / "client.py").write_text(_render("client.py", values))
    readme = _render("README.md", values)
    if plugin:
        readme += "\n" + _render("README_plugin.md", values)
    (root / "README.md").write_text(readme)


def _replace_folder(new: Path, target: Path) -> None:
    """Put `new` at `target`; an earlier `target` is moved aside first and removed once `new` is in place."""
    if not target.exists():
        os.rename(new, target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    try:
        os.rename(target, aside / target.name)
        try:
            os.rename(new, target)
        except OSError:
            os.rename(aside / target.name, target)
            raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def _head_name(interface: GraphInterface) -> str:
    """The head the runtime decodes the graph's output as (dattn.runtime.heads), from the graph's metadata."""
    from dattn.runtime.heads import head_of

    return head_of(interface.metadata).name


def _dattn_version() -> str:
    from dattn import __version__

    return f"dattn {__version__}"
