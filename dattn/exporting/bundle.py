"""The Jetson bundle: one folder (or tarball) that goes from an exported ONNX to detections on the device.

Engines are specific to a GPU and a TensorRT version, so the device builds its own from the ONNX with
`build_engine.sh`; `run.py` then predicts with the dattn.runtime modules shipped beside it (copied from this
installation, never kept by hand), on Python 3.6 and up (JetPack 4.6) with numpy, OpenCV, TensorRT's bindings
and ctypes on libcudart.

    folder
      model.onnx  [model_fp16.onnx]  [model_int8.onnx]  model.json
      build_engine.sh  bundle.env  run.py  README.md
      dattn/__init__.py  dattn/errors.py  dattn/runtime/*.py
      [plugin/  the DAttnGridSample plugin's sources and CMakeLists.txt, when the graph uses the plugin]
"""

from __future__ import annotations

import io
import json
import os
import shlex
import tarfile
from pathlib import Path

import onnx

from dattn.errors import ConfigError
from dattn.exporting.deployment import DEFAULT_MAX_BATCH, load_onnx, render, stage_onnx
from dattn.exporting.files import StagedOutputs, check_destination
from dattn.exporting.runtime_tree import stage_runtime_tree
from dattn.exporting.tensorrt import engine_metadata
from dattn.plugin.contract import OP_TYPE

TEMPLATES = Path(__file__).with_name("bundle_files")
PRECISIONS = ("fp16", "fp32", "int8")
# Plugin sources the device needs to configure and build the library (tests and the torch binding stay home).
_PLUGIN_SKIP = ("build*", "tests", "torch_extension", "__pycache__", "*.pyc")


def _input_shape(model: onnx.ModelProto) -> tuple[str, list]:
    """The graph input's name and its dims (int, or None where dynamic)."""
    initializers = {init.name for init in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in initializers)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]
    return graph_input.name, dims


def _uses_plugin(model: onnx.ModelProto) -> bool:
    return any(node.op_type == OP_TYPE for node in model.graph.node)


def _check_agrees(name: str, given, found) -> None:
    if given is not None and given != found:
        raise ConfigError(f"write_bundle: {name}={given!r} but the ONNX says {found!r}; pass the ONNX exported that way")


def profile_shapes(dims: list, imgsz: tuple[int, int], stride: int, max_batch: int) -> tuple[list, list, list]:
    """min, opt, max shapes for trtexec: batch 1..max_batch, each dynamic side from half to twice the export size."""
    low, opt, high = [], [], []
    for axis, dim in enumerate(dims):
        if dim is not None:
            low.append(dim), opt.append(dim), high.append(dim)
        elif axis == 0:
            low.append(1), opt.append(1), high.append(max_batch)
        else:
            size = imgsz[axis - 2] if axis >= 2 else dims[axis]
            low.append(max(stride, size // 2 // stride * stride)), opt.append(size), high.append(size * 2)
    return low, opt, high


def _shape_text(shape: list) -> str:
    return "x".join(str(d) for d in shape)


def _bundle_env(files: dict, input_name: str, dynamic: bool, shapes, uses_plugin: bool, precision: str) -> str:
    low, opt, high = shapes
    values = {
        "ONNX_FP32": files["fp32"], "ONNX_FP16": files.get("fp16", ""), "ONNX_INT8": files.get("int8", ""),
        "DEFAULT_PRECISION": precision, "INPUT_NAME": input_name, "DYNAMIC": int(dynamic),
        "MIN_SHAPE": _shape_text(low), "OPT_SHAPE": _shape_text(opt), "MAX_SHAPE": _shape_text(high),
        "USES_PLUGIN": int(uses_plugin),
    }
    lines = ["# The bundle's model, read by build_engine.sh (written by dattn's write_bundle)."]
    lines += [f"{key}={shlex.quote(str(value))}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _readme(metadata: dict, input_name: str, dynamic: bool, shapes, uses_plugin: bool, files: dict) -> str:
    low, opt, high = shapes
    names = metadata.get("names", {})
    classes = ", ".join(str(v) for _, v in sorted(names.items(), key=lambda kv: int(kv[0]))) or "unknown"
    size = (f"dynamic input `{input_name}` from {_shape_text(low)} to {_shape_text(high)} (built for "
            f"{_shape_text(opt)})" if dynamic else f"input `{input_name}` {_shape_text(opt)}")
    summary = (f"This bundle: {len(names)} classes ({classes}); {size}; exported for target "
               f"`{metadata.get('dattn_target', '?')}` with grid-sample form `{metadata.get('dattn_grid_sample', '?')}`.")
    extra = ""
    if "fp16" in files:
        extra += "| `model_fp16.onnx` | the model with FP16 tensors, for TensorRT 11 (strongly typed) |\n"
    if "int8" in files:
        extra += "| `model_int8.onnx` | the model with INT8 Q/DQ nodes from calibration (`--precision int8`) |\n"
    plugin_row = ("| `plugin/` | the DAttnGridSample TensorRT plugin's sources; `build_engine.sh` builds them |\n"
                  if uses_plugin else "")
    plugin_needs = ("\nThis model uses the DAttnGridSample plugin: `build_engine.sh` first compiles it with CMake 3.18 "
                    "or newer (`pip3 install --user cmake`; JetPack 4.x's own is too old) and JetPack's nvcc "
                    "(`/usr/local/cuda/bin/nvcc`), for this GPU's compute capability, into "
                    "`plugin/build/libdattn_trt_plugins.so`; `run.py` loads it from there.\n" if uses_plugin else "")
    return render(TEMPLATES / "README.md", {"SUMMARY": summary, "INPUT_NAME": input_name, "EXTRA_ONNX_ROWS": extra,
                                            "PLUGIN_ROW": plugin_row, "PLUGIN_NEEDS": plugin_needs})


def check_bundle_target(out_dir: Path, archive: bool = False) -> None:
    """ConfigError unless `out_dir` is new or an empty folder in an existing one (and, with `archive`, its tarball
    can be written): a bundle replaces nothing of yours."""
    out_dir = Path(out_dir)
    check_destination(out_dir, "folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir}: exists and is not an empty folder; remove it or choose another bundle folder")
    if not out_dir.parent.is_dir():
        raise ConfigError(f"{out_dir}: cannot be written, folder {out_dir.parent} does not exist")
    if archive:
        check_destination(archive_path(out_dir), "file")


def archive_path(out_dir: Path) -> Path:
    return out_dir.with_name(out_dir.name + ".tar.gz")


def write_bundle(out_dir: str | os.PathLike, onnx_fp32: onnx.ModelProto | str | os.PathLike,
                 onnx_int8: onnx.ModelProto | str | os.PathLike | None = None,
                 onnx_fp16: onnx.ModelProto | str | os.PathLike | None = None, uses_plugin: bool | None = None,
                 dynamic: bool | None = None, imgsz=None, batch: int | None = None, max_batch: int | None = None,
                 precision: str = "fp16", archive: bool = False) -> Path:
    """Write the bundle folder `out_dir` (and `out_dir`.tar.gz with `archive`); returns the folder, or the tarball.

    Each graph is an onnx.ModelProto or the path of an ONNX file. uses_plugin, dynamic, imgsz and batch are read
    from the FP32 graph when None; given, they must agree with it. max_batch: the largest batch a dynamic-batch
    engine takes (default: the batch the graph was exported for, when above 1, else 8). precision:
    build_engine.sh's default. Raises ConfigError, writing nothing, for bad input.
    """
    with StagedOutputs() as staged:
        written = stage_bundle(staged, out_dir, onnx_fp32, onnx_int8, onnx_fp16, uses_plugin, dynamic, imgsz, batch,
                               max_batch, precision, archive)
        staged.commit(*staged.paths)
    return written


def stage_bundle(staged: StagedOutputs, out_dir: str | os.PathLike, onnx_fp32, onnx_int8=None, onnx_fp16=None,
                 uses_plugin: bool | None = None, dynamic: bool | None = None, imgsz=None, batch: int | None = None,
                 max_batch: int | None = None, precision: str = "fp16", archive: bool = False) -> Path:
    """write_bundle's work, staged in `staged` for the caller to commit; returns the folder, or the tarball."""
    out_dir = Path(out_dir)
    check_bundle_target(out_dir, archive)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and onnx_int8 is None:
        raise ConfigError("precision int8 needs the INT8 (Q/DQ) ONNX: pass onnx_int8")
    sources = {kind: source for kind, source in (("fp32", onnx_fp32), ("fp16", onnx_fp16), ("int8", onnx_int8))
               if source is not None}
    for source in sources.values():
        if not isinstance(source, onnx.ModelProto) and not Path(source).is_file():
            raise ConfigError(f"{source}: no such ONNX file")

    model = load_onnx(sources["fp32"])
    metadata = engine_metadata(model)
    input_name, dims = _input_shape(model)
    found_dynamic = any(d is None for d in dims[2:])
    found_imgsz = tuple(metadata["imgsz"]) if "imgsz" in metadata else tuple(dims[2:])
    found_plugin = _uses_plugin(model)
    _check_agrees("dynamic", dynamic, found_dynamic)
    _check_agrees("imgsz", None if imgsz is None else tuple([imgsz] * 2 if isinstance(imgsz, int) else imgsz), found_imgsz)
    _check_agrees("batch", batch, dims[0])
    _check_agrees("uses_plugin", uses_plugin, found_plugin)
    if max_batch is None:
        exported = int(metadata.get("batch", 1))
        max_batch = exported if exported > 1 else DEFAULT_MAX_BATCH
    shapes = profile_shapes(dims, found_imgsz, int(metadata.get("stride", 32)), max_batch)
    batch_dynamic = found_dynamic or dims[0] is None

    files = {kind: ("model.onnx" if kind == "fp32" else f"model_{kind}.onnx") for kind in sources}
    folder = staged.folder(out_dir)
    for kind, source in sources.items():
        stage_onnx(staged, out_dir / files[kind], source)
    staged.file(out_dir / "model.json", json.dumps(metadata, indent=1) + "\n")
    staged.file(out_dir / "bundle.env", _bundle_env(files, input_name, batch_dynamic, shapes, found_plugin, precision))
    staged.file(out_dir / "README.md", _readme(metadata, input_name, batch_dynamic, shapes, found_plugin, files))
    for script in ("build_engine.sh", "run.py"):
        staged.copy(out_dir / script, TEMPLATES / script, executable=True)
    stage_runtime_tree(staged, out_dir, "as shipped in a deployment bundle")
    if found_plugin:
        from dattn.plugin.build import plugin_source_dir

        staged.copy_tree(out_dir / "plugin", plugin_source_dir(), skip=_PLUGIN_SKIP)
    if not archive:
        return out_dir
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        tar.add(str(folder), arcname=out_dir.name)
    staged.file(archive_path(out_dir), data.getvalue())
    return archive_path(out_dir)
