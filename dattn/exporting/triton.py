"""A Triton Inference Server model repository for an exported detector (`dattn-export --format triton`).

The repository folder may exist and hold anything: other models, your notes. An export of model "yolo" owns
exactly these folders, writes them together (each staged, then renamed into place) and touches nothing else:

    yolo/config.pbtxt, yolo/1/model.onnx | model.plan   the detector: onnxruntime_onnx, or tensorrt_plan for an engine
    yolo_python/                                        the same ONNX run by ONNX Runtime inside Triton's python backend
    yolo_preprocess/, yolo_postprocess/                 python backend: letterbox; decode and NMS (dattn.runtime's)
    yolo_ensemble/                                      images in, boxes/scores/classes out, through yolo;
                                                        README.md (how to serve and query) and client.py (an example)
    yolo_python_ensemble/                               the same through yolo_python

Each holds dattn_triton.json, the mark of the model it was written for: a later export of the same model replaces
them (and removes the ones it no longer writes, e.g. yolo_python for a plugin engine); a folder of those names
without that mark is refused. Every python-backend model carries a copy of dattn.runtime (and dattn/errors.py)
beside its model.py, so the server needs no dattn install. Dims, batch size and metadata come from the graph.
"""

from __future__ import annotations

import ast
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from dattn.errors import ConfigError, PluginError
from dattn.exporting.deployment import DEFAULT_MAX_BATCH, load_onnx, render, stage_onnx
from dattn.exporting.files import StagedOutputs, check_destination
from dattn.exporting.runtime_tree import stage_runtime_tree
from dattn.runtime.engine_file import parse_engine_bytes, read_engine_file

FILES = Path(__file__).with_name("triton_files")
MARKER = "dattn_triton.json"  # in each model folder: {"model": name, "written_by": "dattn x.y.z"}
# The folders an export of model `name` owns: name + each suffix.
MODEL_SUFFIXES = ("", "_preprocess", "_postprocess", "_ensemble", "_python", "_python_ensemble")
# Triton serves a model under its folder's name in URLs and protobuf fields: keep to a portable alphabet.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
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
    imgsz: tuple[int, int]
    classes: int
    uses_plugin: bool


def _tensor(value_info) -> Tensor:
    kind = value_info.type.tensor_type
    if kind.elem_type not in _TRITON_TYPES:
        raise ConfigError(f"graph tensor {value_info.name!r} has ONNX type {kind.elem_type}, which this writer does not map to Triton")
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in kind.shape.dim)
    return Tensor(value_info.name, _TRITON_TYPES[kind.elem_type], dims)


def _literal(metadata: dict[str, str], key: str, expected: str, fits) -> object:
    """The metadata value `key` read as the Python literal ultralytics writes; ConfigError when it is not one."""
    try:
        value = ast.literal_eval(metadata[key])
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not fits(value):
        raise ConfigError(f"the ONNX's {key} metadata {metadata[key][:80]!r} is not {expected}; export the model again "
                          "with dattn-export (or ultralytics)")
    return value


def graph_interface(model: onnx.ModelProto) -> GraphInterface:
    """Input, outputs, metadata and plugin use of an exported detector; ConfigError when it is not one."""
    from dattn.plugin.contract import OP_TYPE

    metadata = {p.key: p.value for p in model.metadata_props}
    missing = [key for key in ("imgsz", "names", "stride") if key not in metadata]
    if missing:
        raise ConfigError(f"the ONNX has no {', '.join(missing)} metadata; export it with dattn-export (or ultralytics)")
    if metadata.get("task", "detect") != "detect":
        raise ConfigError(f"the ONNX is a {metadata['task']} model; the Triton repository serves detectors only")
    imgsz = _literal(metadata, "imgsz", "a [height, width] list",
                     lambda v: isinstance(v, list) and len(v) == 2 and all(isinstance(s, int) and s > 0 for s in v))
    names = _literal(metadata, "names", "a dict of class ids to names",  # the ensemble's config hands it to clients
             lambda v: isinstance(v, dict) and all(isinstance(k, int) and isinstance(n, str) for k, n in v.items()))
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_tensor(i) for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(inputs[0].dims) != 4 or inputs[0].data_type != "TYPE_FP32":
        raise ConfigError(f"expected one float32 (N, 3, H, W) image input, the graph has {inputs}")
    return GraphInterface(inputs[0], tuple(_tensor(o) for o in model.graph.output), metadata, tuple(imgsz), len(names),
                          any(node.op_type == OP_TYPE for node in model.graph.node))


def check_model_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(f"model name {name!r}: Triton model names here are 1-100 letters, digits, '_', '.' or '-', "
                          "starting with a letter or digit (the name is a folder and part of every request URL)")


def model_folders(name: str) -> list[str]:
    """The folders an export of model `name` owns in a repository."""
    return [name + suffix for suffix in MODEL_SUFFIXES]


def _written_for(folder: Path) -> str | None:
    """The model a dattn export wrote `folder` for (its mark), or None: not a folder dattn wrote."""
    if folder.is_symlink() or not folder.is_dir():
        return None
    try:
        model = json.loads((folder / MARKER).read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    return model if isinstance(model, str) else None


def check_repository_target(out_dir: str | os.PathLike, name: str = "yolo") -> None:
    """ConfigError unless model `name` may be written into the repository `out_dir`: a new folder, or a folder that
    holds anything but folders of this model's names that dattn did not write for it. Call it before a long export."""
    check_model_name(name)
    out_dir = Path(out_dir)
    check_destination(out_dir, "folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder; pass a folder for the Triton repository")
    writes_in = out_dir if out_dir.is_dir() else out_dir.parent
    if not writes_in.is_dir():
        raise ConfigError(f"{out_dir}: cannot be written, folder {writes_in} does not exist")
    if not os.access(writes_in, os.W_OK):
        raise ConfigError(f"{out_dir}: cannot be written, folder {writes_in} is not writable")
    for folder in model_folders(name):
        path = out_dir / folder
        if not os.path.lexists(path):
            continue
        owner = _written_for(path)
        if owner is None:
            raise ConfigError(f"{path}: exists and was not written by dattn; model {name!r} needs this name: move it "
                              "away or choose another model name (--name)")
        if owner != name:
            raise ConfigError(f"{path}: belongs to the dattn model {owner!r}, not {name!r}; choose another model name (--name)")


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
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\{ord(c):03o}" for c in text) + '"'  # control characters: octal escapes


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

def write_triton_repository(
    out_dir: str | os.PathLike,
    onnx_model: onnx.ModelProto | str | os.PathLike,
    engine: bytes | str | os.PathLike | None = None,
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
    """Write model `name` into the Triton model repository `out_dir` (new, or holding anything else) for a detector
    exported to `onnx_model` (an onnx.ModelProto or an ONNX file) and served from it or from `engine`.

    The detector model is the ONNX (platform onnxruntime_onnx) or, given `engine` built from that ONNX (the engine
    file's bytes or path: ultralytics' header + plan, or a raw plan), the TensorRT plan (tensorrt_plan).
    max_batch_size defaults to 8 for a graph with a dynamic batch; a fixed-batch graph is served at its own batch.
    Dynamic batching (on by default) gathers requests into batches, waiting at most queue_delay_us for more.
    instances: instances per model; device auto/gpu/cpu: the detectors' instance kind; onnxruntime_threads:
    intra-op threads of the python-backend detector (0: ONNX Runtime's default). conf, iou and max_det set
    post-processing (editable later in <name>_postprocess/config.pbtxt). An engine with the grid-sample plugin
    needs its library (`plugin_library`, else the one `dattn plugin path` finds), shipped with its sources.
    Replaces this model's folders from an earlier export and touches nothing else. Returns `out_dir`. Raises
    ConfigError (PluginError for a missing plugin library), writing nothing, for bad input.
    """
    with StagedOutputs() as staged:
        stage_triton_repository(staged, out_dir, onnx_model, engine, name=name, max_batch_size=max_batch_size,
                                dynamic_batching=dynamic_batching, queue_delay_us=queue_delay_us, instances=instances,
                                device=device, conf=conf, iou=iou, max_det=max_det,
                                onnxruntime_threads=onnxruntime_threads, plugin_library=plugin_library)
        staged.commit(*staged.paths)
    return Path(out_dir)


def stage_triton_repository(staged: StagedOutputs, out_dir: str | os.PathLike, onnx_model, engine=None, *,
                            name: str = "yolo", max_batch_size: int | None = None, dynamic_batching: bool = True,
                            queue_delay_us: int = 500, instances: int = 1, device: str = "auto", conf: float = 0.25,
                            iou: float = 0.7, max_det: int = 300, onnxruntime_threads: int = 0,
                            plugin_library: str | os.PathLike | None = None) -> list[str]:
    """write_triton_repository's work, staged in `staged` for the caller to commit; returns the models written."""
    from dattn.runtime.postprocess import check_thresholds

    out_dir = Path(out_dir)
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
    interface = graph_interface(load_onnx(onnx_model))

    plan = header = library = None
    if engine is not None:
        if device == "cpu":
            raise ConfigError("a TensorRT engine runs on a GPU: leave device at auto or gpu")
        engine_file = _engine_file(engine)
        plan, header = engine_file.plan, engine_file.metadata or None
    uses_plugin = interface.uses_plugin or (header or {}).get("dattn_grid_sample") == "plugin"
    if uses_plugin and engine is None:
        raise ConfigError("the ONNX holds DAttnGridSample plugin nodes, which only TensorRT runs: pass the engine built "
                          "from it, or export with grid_sample native or gather for ONNX Runtime")
    if uses_plugin:
        library = _plugin_library(plugin_library)
    kind = "KIND_GPU" if engine is not None and device == "auto" else DEVICES[device]
    engine_batch = (header or {}).get("dattn_profile", {}).get("max", [None])[0]
    serving = Serving(batch_limit(interface, max_batch_size, engine_batch), bool(dynamic_batching),
                      queue_delay_us, instances, kind)

    if not out_dir.is_dir():
        staged.folder(out_dir)  # a new repository is staged whole
    models = _stage_models(staged, out_dir, name, onnx_model, plan, library, interface, serving, (conf, iou, max_det),
                           onnxruntime_threads)
    _stage_guides(staged, out_dir / f"{name}_ensemble", name, interface, serving, models, plan is not None,
                  library is not None)
    for folder in model_folders(name):
        if folder not in models and os.path.lexists(out_dir / folder):
            staged.remove(out_dir / folder)  # this model's, from an export that wrote it (checked above)
    return models


def _engine_file(engine):
    """The engine given as the bytes or the path of an engine file (either form)."""
    if isinstance(engine, (bytes, bytearray)):
        return parse_engine_bytes(bytes(engine), "the engine")
    if not Path(engine).is_file():
        raise ConfigError(f"{engine}: no such engine file")
    return read_engine_file(engine)


def _plugin_library(explicit: str | os.PathLike | None) -> Path:
    from dattn.plugin.library import require_plugin_library

    try:
        return require_plugin_library(explicit)
    except PluginError as error:
        raise PluginError(f"{error}; write_triton_repository takes it as plugin_library=PATH") from None


def _model_folder(staged: StagedOutputs, folder: Path, model: str, config: str) -> Path:
    """Stage a model folder with its config.pbtxt, dattn's mark and a version folder 1/ (ensembles need one too,
    even empty); returns the version folder."""
    staged.folder(folder)
    staged.file(folder / "config.pbtxt", config)
    staged.file(folder / MARKER, json.dumps({"model": model, "written_by": _dattn_version()}, indent=2) + "\n")
    staged.folder(folder / "1")
    return folder / "1"


def _python_model(staged: StagedOutputs, folder: Path, model: str, template: str, config: str) -> Path:
    version = _model_folder(staged, folder, model, config)
    staged.copy(version / "model.py", FILES / template)
    stage_runtime_tree(staged, version, "as shipped in a Triton python-backend model")
    return version


def _stage_models(staged: StagedOutputs, root: Path, name: str, onnx_model, plan: bytes | None, library: Path | None,
                  interface: GraphInterface, serving: Serving, thresholds, threads: int) -> list[str]:
    """Every model folder; returns the model names written."""
    conf, iou, max_det = thresholds
    t = ensemble_tensors(interface, serving)
    preprocess, postprocess, ensemble = f"{name}_preprocess", f"{name}_postprocess", f"{name}_ensemble"
    platform = "tensorrt_plan" if plan is not None else "onnxruntime_onnx"
    version = _model_folder(staged, root / name, name,
                            detector_config(name, {"platform": platform}, interface, serving, interface.metadata))
    if plan is not None:
        staged.file(version / "model.plan", plan)
    else:
        stage_onnx(staged, version / "model.onnx", onnx_model)
    if library is not None:
        from dattn.plugin.build import plugin_source_dir

        plugin = root / name / "plugin"  # not a number, so Triton does not take it for a version
        staged.folder(plugin)
        staged.copy_tree(plugin / "trt_gridsample", plugin_source_dir(), skip=("build*", "__pycache__"))
        staged.copy(plugin / library.name, library)

    size = str(list(interface.imgsz))
    _python_model(staged, root / preprocess, name, "preprocess.py", python_step_config(
        preprocess, [t["IMAGE_BYTES"], t["IMAGE"]], [t["NETWORK_INPUT"], t["ORIGINAL_SHAPE"]], serving,
        {"imgsz": size, "head": _head_name(interface)}, optional_inputs=True))
    _python_model(staged, root / postprocess, name, "postprocess.py", python_step_config(
        postprocess, [t["NETWORK_OUTPUT"], t["ORIGINAL_SHAPE"]], [t[n] for n in ("BOXES", "SCORES", "CLASSES", "NUM_DETECTIONS")],
        serving, {"imgsz": size, "head": _head_name(interface), "classes": interface.classes, "conf": conf, "iou": iou,
                  "max_det": max_det}))
    _model_folder(staged, root / ensemble, name, ensemble_config(ensemble, name, (preprocess, postprocess), interface, serving))
    models = [name, preprocess, postprocess, ensemble]
    if not interface.uses_plugin:  # ONNX Runtime cannot run plugin nodes
        python = f"{name}_python"
        version = _python_model(staged, root / python, name, "detector_onnxruntime.py", detector_config(
            python, {"backend": "python"}, interface, serving, {**interface.metadata, "intra_op_num_threads": threads}))
        stage_onnx(staged, version / "model.onnx", onnx_model)
        _model_folder(staged, root / f"{python}_ensemble", name,
                      ensemble_config(f"{python}_ensemble", python, (preprocess, postprocess), interface, serving))
        models += [python, f"{python}_ensemble"]
    return models


def _stage_guides(staged: StagedOutputs, folder: Path, name: str, interface: GraphInterface, serving: Serving,
                  models: list[str], engine: bool, plugin: bool) -> None:
    """README.md, filled in for this model, and client.py (which asks the server for what it needs) in `folder`."""
    python = f"{name}_python" in models
    values = {"NAME": name, "ENSEMBLE": f"{name}_ensemble", "MODELS": ", ".join(models),
              "DETECTOR": "tensorrt_plan" if engine else "onnxruntime_onnx", "INPUT": interface.input.name,
              "OUTPUT": interface.outputs[0].name, "HEIGHT": str(interface.imgsz[0]), "WIDTH": str(interface.imgsz[1]),
              "MAX_BATCH": str(serving.max_batch_size or interface.input.dims[0])}
    values["PYTHON_ROWS"] = render(FILES / "README_python.md", values) if python else ""
    values["PYTHON_ONLY"] = f" On a server with the python backend only, load `{name}_python_ensemble` instead." if python else ""
    readme = render(FILES / "README.md", values)
    if plugin:
        readme += "\n" + render(FILES / "README_plugin.md", values)
    staged.file(folder / "README.md", readme)
    staged.copy(folder / "client.py", FILES / "client.py")


def _head_name(interface: GraphInterface) -> str:
    """The head the runtime decodes the graph's output as (dattn.runtime.heads), from the graph's metadata."""
    from dattn.runtime.heads import head_of

    return head_of(interface.metadata).name


def _dattn_version() -> str:
    from dattn import __version__

    return f"dattn {__version__}"
