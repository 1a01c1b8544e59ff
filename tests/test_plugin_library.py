"""Loading the plugin library into TensorRT (dattn.plugin.library), as the engine builder and the runtime do it.

- found: a library built against TensorRT 10 headers by `dattn plugin build` is loaded into TensorRT for RTX's
  registry, where DAttnGridSample/1/dattn then creates plugins;
- missing: one-line PluginError naming `dattn plugin build`, nothing loaded or written;
- built for the wrong TensorRT: a library built against TensorRT 8.6 headers is refused, in one line that names
  8.6.1 and the TensorRT for RTX in use, before it is loaded; the rule for `tensorrt` (same major) too;
- the same through dattn.exporting.tensorrt.build_serialized_engine(..., uses_plugin=True, module_name="tensorrt_rtx").
TensorRT for RTX runs in child processes, so what a library registers stays out of the test process.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper
from plugin_libraries import built_library, include_dir_for

from dattn.errors import PluginError
from dattn.plugin import library
from dattn.plugin.contract import ALIGN_CORNERS, DOMAIN, LIBRARY_ENV, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

REPO = Path(__file__).resolve().parents[1]
needs_rtx = pytest.mark.skipif(
    importlib.util.find_spec("tensorrt_rtx") is None,
    reason="TensorRT for RTX (pip install tensorrt-rtx-cu12) is not installed")

# Runs in a child: load the library into TensorRT for RTX and report what the registry then holds.
LOAD_SCRIPT = textwrap.dedent("""
    import ctypes, json, sys
    import numpy as np
    import tensorrt_rtx as trt
    from dattn.errors import PluginError
    from dattn.plugin import library

    path = sys.argv[1]
    try:
        loaded_path = library.load_plugin_library(trt, trt.Logger(trt.Logger.ERROR), path)
    except PluginError as error:
        print("RESULT", json.dumps({"error": str(error), "mapped": path in open("/proc/self/maps").read()}))
        sys.exit(0)
    creator = trt.get_plugin_registry().get_creator("DAttnGridSample", "1", "dattn")
    plugins = []
    for value in (0, 1, 3):
        fields = trt.PluginFieldCollection([trt.PluginField(
            "align_corners", np.array([value], np.int32), trt.PluginFieldType.INT32)])
        plugin = creator.create_plugin("sampler", fields, trt.TensorRTPhase.BUILD)
        if plugin is None:
            plugins.append(None)
            continue
        # (The 1.7 bindings offer a C++ plugin's other methods to Python plugins only; the host driver calls them.)
        core = plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
        build = plugin.get_capability_interface(trt.PluginCapabilityType.BUILD)
        plugins.append([core.plugin_name, core.plugin_version, core.plugin_namespace, build.num_outputs])
    symbol = ctypes.c_char.in_dll(ctypes.CDLL(str(loaded_path)), library.BUILD_INFO_SYMBOL)
    print("RESULT", json.dumps({
        "loaded": str(loaded_path),
        "creator": [creator.name, creator.plugin_version, creator.plugin_namespace],
        "fields": [field.name for field in creator.field_names],
        "plugins": plugins,
        "symbol": ctypes.cast(ctypes.addressof(symbol), ctypes.c_char_p).value.decode(),
    }))
""")

# Runs in a child: the engine builder's path, with DATTN_TRT_PLUGIN naming the library.
ENGINE_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from dattn.errors import PluginError
    from dattn.exporting.tensorrt import build_serialized_engine

    library = sys.argv[2]
    try:
        build_serialized_engine(Path(sys.argv[1]), uses_plugin=True, module_name="tensorrt_rtx")
        print("RESULT", json.dumps({"error": None}))
    except PluginError as error:
        print("RESULT", json.dumps({"error": str(error), "mapped": library in open("/proc/self/maps").read()}))
""")


def run_child(script: str, *args: str, env: dict | None = None) -> dict:
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, timeout=300)
    assert "RESULT " in result.stdout, f"child failed (rc {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.split("RESULT ", 1)[1])


def plugin_graph(path: Path) -> Path:
    """A one-node ONNX model with the plugin node, as the exporter writes it."""
    node = helper.make_node(OP_TYPE, ["X", "grid"], ["Y"], domain=DOMAIN, **{
        ALIGN_CORNERS: 0, "plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE})
    graph = helper.make_graph([node], "plugin", [
        helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2, 4, 4]),
        helper.make_tensor_value_info("grid", TensorProto.FLOAT, [1, 3, 3, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2, 3, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(DOMAIN, 1)])
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tensorrt10_library(tmp_path_factory):
    return built_library(include_dir_for(lambda major, minor: major >= 10), tmp_path_factory)


@pytest.fixture
def tensorrt86_library(tmp_path_factory):
    return built_library(include_dir_for(lambda major, minor: (major, minor) == (8, 6)), tmp_path_factory)


def test_build_info_is_read_from_the_file(tensorrt10_library, tensorrt86_library):
    assert library.read_build_info(tensorrt10_library).interface == "IPluginV3"
    assert library.read_build_info(tensorrt10_library).tensorrt[0] >= 10
    assert library.read_build_info(tensorrt86_library) == library.BuildInfo((8, 6, 1), "IPluginV2DynamicExt")


@needs_rtx
def test_library_found_is_loaded_into_tensorrt_rtx(tensorrt10_library):
    report = run_child(LOAD_SCRIPT, str(tensorrt10_library))
    assert "error" not in report, report
    assert report["loaded"] == str(tensorrt10_library)
    assert report["creator"] == [OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE]
    assert report["fields"] == [ALIGN_CORNERS]
    for value, plugin in zip((0, 1), report["plugins"]):
        assert plugin == [OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE, 1], f"align_corners={value}"
    assert report["plugins"][2] is None  # align_corners=3 is refused
    # What ctypes reads from the loaded library is what was read from the file before loading it.
    info = library.read_build_info(tensorrt10_library)
    assert report["symbol"] == f"dattn-trt-plugin-build tensorrt={'.'.join(map(str, info.tensorrt))} interface=IPluginV3"


@needs_rtx
def test_library_for_tensorrt_8_6_is_refused_by_tensorrt_rtx_before_loading(tensorrt86_library):
    import tensorrt_rtx

    report = run_child(LOAD_SCRIPT, str(tensorrt86_library))
    rtx_version = ".".join(tensorrt_rtx.__version__.split(".")[:3])
    assert "\n" not in report["error"]
    assert f"was built for TensorRT 8.6.1 (IPluginV2DynamicExt), but TensorRT for RTX {rtx_version} is in use" \
        in report["error"]
    assert "dattn plugin build" in report["error"]
    assert report["mapped"] is False, "the library was loaded although it does not fit"


def test_missing_library_names_dattn_plugin_build(tmp_path, monkeypatch):
    absent = tmp_path / "absent" / "libdattn_trt_plugins.so"
    monkeypatch.setenv(LIBRARY_ENV, str(absent))
    with pytest.raises(PluginError) as raised:
        library.require_plugin_library()
    message = str(raised.value)
    assert "\n" not in message and "`dattn plugin build`" in message and f"{LIBRARY_ENV}={absent}" in message
    with pytest.raises(PluginError, match=r"absent/libdattn_trt_plugins\.so does not exist.*`dattn plugin build`"):
        library.require_plugin_library(absent)


def test_library_that_does_not_say_what_it_was_built_for_is_refused(tmp_path):
    import _ctypes

    # A real shared library (Python's own _ctypes extension), but not one of ours.
    foreign = tmp_path / "libdattn_trt_plugins.so"
    foreign.write_bytes(Path(_ctypes.__file__).read_bytes())
    module = types.ModuleType("tensorrt")
    module.__version__ = "10.3.0"
    with pytest.raises(PluginError, match=r"does not say which TensorRT it was built for.*`dattn plugin build`"):
        library.load_plugin_library(module, None, foreign)


@pytest.mark.parametrize("built, module_name, in_use, accepted", [
    ((8, 6, 1, "IPluginV2DynamicExt"), "tensorrt", "8.6.1.6", True),
    ((8, 5, 2, "IPluginV2DynamicExt"), "tensorrt", "8.6.1.6", True),  # same major: one ABI
    ((8, 6, 1, "IPluginV2DynamicExt"), "tensorrt", "10.3.0", False),
    ((10, 3, 0, "IPluginV3"), "tensorrt", "10.8.0.43", True),
    ((11, 1, 0, "IPluginV3"), "tensorrt", "10.3.0", False),
    ((10, 3, 0, "IPluginV3"), "tensorrt_rtx", "1.7.1.116", True),
    ((11, 1, 0, "IPluginV3"), "tensorrt_rtx", "1.7.1.116", True),
    ((8, 6, 1, "IPluginV2DynamicExt"), "tensorrt_rtx", "1.7.1.116", False),
])
def test_which_builds_fit_which_tensorrt(built, module_name, in_use, accepted):
    module = types.ModuleType(module_name)
    module.__version__ = in_use
    info = library.BuildInfo(built[:3], built[3])
    if accepted:
        library.check_build_matches(info, module, "libdattn_trt_plugins.so")
        return
    with pytest.raises(PluginError) as raised:
        library.check_build_matches(info, module, "libdattn_trt_plugins.so")
    message = str(raised.value)
    assert "\n" not in message and "dattn plugin build" in message
    assert f"built for TensorRT {'.'.join(map(str, built[:3]))}" in message
    assert f"{'.'.join(in_use.split('.')[:3])} is in use" in message


@needs_rtx
def test_engine_build_without_the_library_says_dattn_plugin_build(tmp_path, monkeypatch):
    from dattn.exporting.tensorrt import build_serialized_engine

    model = plugin_graph(tmp_path / "model.onnx")
    monkeypatch.setenv(LIBRARY_ENV, str(tmp_path / "libdattn_trt_plugins.so"))
    with pytest.raises(PluginError, match=r"`dattn plugin build`") as raised:
        build_serialized_engine(model, uses_plugin=True, module_name="tensorrt_rtx")
    assert "\n" not in str(raised.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx"]


@needs_rtx
def test_engine_build_with_a_library_for_tensorrt_8_6_is_refused(tmp_path, tensorrt86_library):
    model = plugin_graph(tmp_path / "model.onnx")
    report = run_child(ENGINE_SCRIPT, str(model), str(tensorrt86_library),
                       env={LIBRARY_ENV: str(tensorrt86_library)})
    assert report["error"] is not None and "\n" not in report["error"]
    assert "built for TensorRT 8.6.1" in report["error"] and "TensorRT for RTX" in report["error"]
    assert report["mapped"] is False
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx"]


def test_plugin_modules_the_runtime_imports_run_on_python_3_6():
    vermin = Path(sys.executable).parent / "vermin"
    if not vermin.is_file():
        pytest.skip("vermin (a dev dependency) is not installed")
    modules = [REPO / "dattn" / "plugin" / name for name in ("library.py", "build.py", "contract.py")]
    result = subprocess.run([str(vermin), "-t=3.6-", "--no-tips", "--violations", *map(str, modules),
                             str(REPO / "dattn" / "errors.py")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("args", [["path"], ["build", "--tensorrt-root", "/nonexistent/tensorrt"]])
def test_the_plugin_commands_report_a_missing_prerequisite_as_bad_input(args, tmp_path):
    from conftest import run_python

    result = run_python(["-m", "dattn.cli", "plugin", *args, *(["--build-dir", str(tmp_path / "b")] if args[0] == "build" else [])],
                        check=False, env={"DATTN_TRT_PLUGIN": str(tmp_path / "none.so"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dattn plugin {args[0]}: error: "), lines
