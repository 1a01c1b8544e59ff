"""The plugin node against TensorRT for RTX (`tensorrt_rtx`), whose registry and ONNX parser run without a GPU.

What works in tensorrt-rtx 1.7.1 (checked here): IPluginRegistry.load_library loads the real plugin library
through its getCreators entry point and finds DAttnGridSample/1/dattn, whose createPlugin reads align_corners;
the parser finds a creator registered for the node (by op type, plugin_version and the dattn namespace) and
creates the plugin from the node's attributes. What does not: right after "Successfully created plugin" the
1.7.1 parser calls std::terminate (no exception), for a Python IPluginCreatorV3One and for the C++ library
alike, so the network cannot be inspected; IPluginV2 creators are refused ("imports IPluginV3 plugins
registered with an IPluginCreatorV3One creator only"), and the decorator API `tensorrt_rtx.plugin` is a stub
(its `tensorrt_rtx_bindings.plugin` module is missing from the wheel). The parse runs in a child process and
the test xfails with that reason while the parser aborts; it asserts the layers once a release stops aborting.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from trt_headers import tensorrt10_include_dir

from dattn.plugin.build import find_nvcc, plugin_source_dir
from dattn.plugin.contract import DOMAIN, LIBRARY_NAME, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX (pip install tensorrt-rtx-cu12) is not installed")

PARSE_SCRIPT = textwrap.dedent("""
    import io, json, sys
    import numpy as np, onnx, torch, torch.nn.functional as F
    import tensorrt_rtx as trt
    from dattn.exporting.passes.grid_sample_plugin import grid_sample_to_plugin

    NAME, VERSION, NAMESPACE = sys.argv[1:4]

    class TwoSamplers(torch.nn.Module):
        def forward(self, x, offsets):
            grid = torch.tanh(offsets.permute(0, 2, 3, 1))
            return (F.grid_sample(x, grid, align_corners=True)
                    + F.grid_sample(x, grid, align_corners=False))

    buffer = io.BytesIO()
    torch.onnx.export(TwoSamplers(), (torch.randn(1, 8, 10, 12), torch.randn(1, 2, 6, 7)), buffer,
                      dynamo=False, opset_version=17, input_names=["x", "offsets"], output_names=["y"])
    model = grid_sample_to_plugin(onnx.load_from_string(buffer.getvalue()))

    class Plugin(trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
        def __init__(self, align_corners):
            for base in (trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
                base.__init__(self)
            self.plugin_name, self.plugin_version, self.plugin_namespace = NAME, VERSION, NAMESPACE
            self.num_outputs = 1
            self.align_corners = align_corners

        def get_capability_interface(self, capability):
            return self

        def clone(self):
            return Plugin(self.align_corners)

        def get_output_data_types(self, input_types):
            return [input_types[0]]

        def get_output_shapes(self, inputs, shape_inputs, expr_builder):
            return [trt.DimsExprs([inputs[0][0], inputs[0][1], inputs[1][1], inputs[1][2]])]

        def supports_format_combination(self, pos, in_out, num_inputs):
            desc = in_out[pos].desc
            return (desc.format == trt.TensorFormat.LINEAR and desc.type in (trt.float32, trt.float16)
                    and desc.type == in_out[0].desc.type)

        def configure_plugin(self, inputs, outputs):
            pass

        def get_fields_to_serialize(self):
            return trt.PluginFieldCollection([trt.PluginField(
                "align_corners", np.array([self.align_corners], np.int32), trt.PluginFieldType.INT32)])

    class Creator(trt.IPluginCreatorV3One):
        def __init__(self):
            trt.IPluginCreatorV3One.__init__(self)
            self.name, self.plugin_version, self.plugin_namespace = NAME, VERSION, NAMESPACE
            self.field_names = trt.PluginFieldCollection(
                [trt.PluginField("align_corners", np.array([], np.int32), trt.PluginFieldType.INT32)])

        def create_plugin(self, name, fields, phase):
            values = {field.name: np.array(field.data).ravel() for field in fields}
            print("created", name, int(values["align_corners"][0]), flush=True)
            return Plugin(int(values["align_corners"][0]))

    creator = Creator()
    assert trt.get_plugin_registry().register_creator(creator, NAMESPACE)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    parsed = parser.parse(model.SerializeToString())
    layers = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type == trt.LayerType.PLUGIN_V3:
            layer.__class__ = trt.IPluginV3Layer
            core = layer.plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
            runtime = layer.plugin.get_capability_interface(trt.PluginCapabilityType.RUNTIME)
            layers.append({"name": core.plugin_name, "version": core.plugin_version,
                           "namespace": core.plugin_namespace,
                           "align_corners": getattr(runtime, "align_corners", None)})
    print("RESULT", json.dumps({"parsed": parsed, "errors": [parser.get_error(i).desc() for i in range(parser.num_errors)],
                                "plugin_layers": layers}), flush=True)
""")


def test_parser_makes_one_plugin_layer_per_sampling_node(tmp_path):
    script = tmp_path / "parse_plugin_graph.py"
    script.write_text(PARSE_SCRIPT)
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(script), OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE],
                            capture_output=True, text=True, cwd=repo,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])})
    created = re.findall(r"created (\S+) (\d)", result.stdout)
    # The parser found our creator by op type + plugin_version + namespace and passed align_corners.
    assert created, f"the parser never called the creator:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert created[0][1] in ("0", "1")
    # Only tensorrt-rtx's known abort is excused: SIGABRT from std::terminate with no exception, after the creator
    # made the first plugin and before the network could be read. Anything else fails; once a release stops
    # aborting, the assertions below run and the test passes (or fails) on its own.
    known_abort = (result.returncode == -signal.SIGABRT and "RESULT " not in result.stdout
                   and result.stderr.rstrip().endswith("terminate called without an active exception"))
    if known_abort:
        pytest.xfail(f"tensorrt-rtx {trt.__version__}: the ONNX parser calls std::terminate right after creating "
                     "an IPluginV3 from a registered IPluginCreatorV3One (Python or C++), so the plugin layers "
                     "cannot be inspected; the creator lookup and attribute passing above did work")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("RESULT ", 1)[1])
    assert report["parsed"], report["errors"]
    assert len(report["plugin_layers"]) == 2
    for layer in report["plugin_layers"]:
        assert (layer["name"], layer["version"], layer["namespace"]) == (OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    assert sorted(layer["align_corners"] for layer in report["plugin_layers"]) == [0, 1]


@pytest.mark.skipif(tensorrt10_include_dir() is None,
                    reason="needs TensorRT >= 10 headers in TRT_INCLUDE_DIRS / TRT_INCLUDE_DIR to build the library")
@pytest.mark.skipif(shutil.which("cmake") is None or find_nvcc() is None, reason="needs cmake and nvcc")
def test_registry_loads_the_plugin_library(tmp_path):
    import numpy as np

    build = tmp_path / "build"
    # loadLibrary refuses creators that are already registered, so no static registration here.
    subprocess.run(["cmake", "-S", str(plugin_source_dir()), "-B", str(build), f"-DCMAKE_CUDA_COMPILER={find_nvcc()}",
                    f"-DTRT_INCLUDE_DIR={tensorrt10_include_dir()}", "-DDATTN_CUDA_ARCHS=75",
                    "-DDATTN_STATIC_REGISTRATION=OFF"], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "--target", "dattn_trt_plugins", "--parallel", "2"],
                   check=True, capture_output=True)
    registry = trt.get_plugin_registry()
    handle = registry.load_library(str(build / LIBRARY_NAME))
    assert handle is not None
    # Left loaded: plugin objects made by its creator must not outlive the library's code.
    creator = registry.get_creator(OP_TYPE, PLUGIN_VERSION, DOMAIN)
    assert creator is not None
    assert (creator.name, creator.plugin_version, creator.plugin_namespace) == (OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    assert [field.name for field in creator.field_names] == ["align_corners"]
    for align_corners in (0, 1):
        fields = trt.PluginFieldCollection([trt.PluginField(
            "align_corners", np.array([align_corners], np.int32), trt.PluginFieldType.INT32)])
        plugin = creator.create_plugin("sampler", fields, trt.TensorRTPhase.BUILD)
        core = plugin.get_capability_interface(trt.PluginCapabilityType.CORE)
        assert (core.plugin_name, core.plugin_version, core.plugin_namespace) == (OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE)
        build_capability = plugin.get_capability_interface(trt.PluginCapabilityType.BUILD)
        assert build_capability.num_outputs == 1
    invalid = trt.PluginFieldCollection([trt.PluginField(
        "align_corners", np.array([3], np.int32), trt.PluginFieldType.INT32)])
    assert creator.create_plugin("sampler", invalid, trt.TensorRTPhase.BUILD) is None
