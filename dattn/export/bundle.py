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
import shutil
import shlex
import stat
import tarfile
from pathlib import Path

import onnx

from dattn.errors import ConfigError
from dattn.export.files import write_atomically
from dattn.export.runtime_tree import copy_runtime_tree
from dattn.export.tensorrt import engine_metadata

TEMPLATES = Path(__file__).with_name("bundle_files")
PLUGIN_OP = "DAttnGridSample"
PRECISIONS = ("fp16", "fp32", "int8")
DEFAULT_MAX_BATCH = 8
# Plugin sources the device needs to configure and build the library (tests and the torch binding stay home).
_PLUGIN_SKIP = ("build*", "tests", "torch_extension", "__pycache__", "*.pyc")


def _input_shape(model: onnx.ModelProto) -> tuple[str, list]:
    """The graph input's name and its dims (int, or None where dynamic)."""
    initializers = {init.name for init in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in initializers)
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]
    return graph_input.name, dims


def _uses_plugin(model: onnx.ModelProto) -> bool:
    return any(node.op_type == PLUGIN_OP for node in model.graph.node)


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
    text = (TEMPLATES / "README.md").read_text()
    for key, value in (("@@SUMMARY@@", summary), ("@@INPUT_NAME@@", input_name), ("@@EXTRA_ONNX_ROWS@@", extra),
                       ("@@PLUGIN_ROW@@", plugin_row), ("@@PLUGIN_NEEDS@@", plugin_needs)):
        text = text.replace(key, value)
    return text


def _copy_plugin(folder: Path) -> None:
    from dattn.plugin.build import plugin_source_dir

    shutil.copytree(plugin_source_dir(), folder / "plugin", ignore=shutil.ignore_patterns(*_PLUGIN_SKIP))


def _make_executable(path: Path) -> None:
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def check_bundle_target(out_dir: Path) -> None:
    """ConfigError unless `out_dir` is new or an empty folder in an existing one: a bundle replaces nothing."""
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConfigError(f"{out_dir}: exists and is not an empty folder; remove it or choose another bundle folder")
    if not out_dir.parent.is_dir():
        raise ConfigError(f"{out_dir}: cannot be written, folder {out_dir.parent} does not exist")


def write_bundle(out_dir: str | os.PathLike, onnx_fp32: str | os.PathLike, onnx_int8: str | os.PathLike | None = None,
                 onnx_fp16: str | os.PathLike | None = None, uses_plugin: bool | None = None, dynamic: bool | None = None,
                 imgsz=None, batch: int | None = None, max_batch: int = DEFAULT_MAX_BATCH, precision: str = "fp16",
                 archive: bool = False) -> Path:
    """Write the bundle folder `out_dir` (and `out_dir`.tar.gz with `archive`); returns the folder, or the tarball.

    uses_plugin, dynamic, imgsz and batch are read from the ONNX when None; given, they must agree with it.
    max_batch: the largest batch a dynamic-batch engine takes. precision: build_engine.sh's default.
    """
    out_dir = Path(out_dir)
    check_bundle_target(out_dir)
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and onnx_int8 is None:
        raise ConfigError("precision int8 needs the INT8 (Q/DQ) ONNX: pass onnx_int8")
    sources = {"fp32": Path(onnx_fp32), "fp16": onnx_fp16, "int8": onnx_int8}
    sources = {kind: Path(path) for kind, path in sources.items() if path is not None}
    for path in sources.values():
        if not path.is_file():
            raise ConfigError(f"{path}: no such ONNX file")

    model = onnx.load(str(sources["fp32"]), load_external_data=False)
    metadata = engine_metadata(model)
    input_name, dims = _input_shape(model)
    found_dynamic = any(d is None for d in dims[2:])
    found_imgsz = tuple(metadata["imgsz"]) if "imgsz" in metadata else tuple(dims[2:])
    found_plugin = _uses_plugin(model)
    _check_agrees("dynamic", dynamic, found_dynamic)
    _check_agrees("imgsz", None if imgsz is None else tuple([imgsz] * 2 if isinstance(imgsz, int) else imgsz), found_imgsz)
    _check_agrees("batch", batch, dims[0])
    _check_agrees("uses_plugin", uses_plugin, found_plugin)
    shapes = profile_shapes(dims, found_imgsz, int(metadata.get("stride", 32)), max_batch)

    files = {kind: ("model.onnx" if kind == "fp32" else f"model_{kind}.onnx") for kind in sources}
    staging = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")  # renamed into place once complete
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for kind, path in sources.items():
            shutil.copy2(path, staging / files[kind])
        (staging / "model.json").write_text(json.dumps(metadata, indent=1) + "\n")
        (staging / "bundle.env").write_text(_bundle_env(files, input_name, found_dynamic or dims[0] is None, shapes,
                                                        found_plugin, precision))
        (staging / "README.md").write_text(_readme(metadata, input_name, found_dynamic or dims[0] is None, shapes,
                                                   found_plugin, files))
        for script in ("build_engine.sh", "run.py"):
            shutil.copy2(TEMPLATES / script, staging / script)
            _make_executable(staging / script)
        copy_runtime_tree(staging, "as shipped in a deployment bundle")
        if found_plugin:
            _copy_plugin(staging)
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if archive:
        return write_archive(out_dir)
    return out_dir


def write_archive(folder: Path) -> Path:
    """folder.tar.gz beside `folder`, holding it under its own name; written atomically."""
    folder = Path(folder)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        tar.add(str(folder), arcname=folder.name)
    path = folder.with_name(folder.name + ".tar.gz")
    write_atomically(path, data.getvalue())
    return path
