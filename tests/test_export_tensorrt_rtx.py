"""Exports for every TensorRT target, parsed and built by TensorRT for RTX (`tensorrt_rtx`), CI's stand-in for TensorRT.

RTX's ONNX parser and builder run without a GPU, and parse into the same layer classes as TensorRT. RTX is more
lenient than TensorRT 8.x (it parses Einsum, LayerNormalization and GridSample at any opset), so the rules
that only 8.x enforces (opset ceilings, no LayerNormalization before 8.6, no GridSample before 8.5) are checked
on the ONNX graph itself. Every check runs on the exports of both exporters.
"""

from collections import Counter
from pathlib import Path

import onnx
import pytest

import dattn
from dattn.exporting.targets import EXPORTERS, TARGETS, plan_export

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX (pip install tensorrt-rtx-cu12) is not installed")

IMGSZ = 160
TRT_TARGETS = [name for name, t in TARGETS.items() if t.is_tensorrt]
CASES = [(exporter, name, form) for exporter in EXPORTERS for name in TRT_TARGETS
         for form in (("native", "gather") if TARGETS[name].has_grid_sample_layer else ("gather",)) + ("auto",)]
FORBIDDEN_LAYERS = {trt.LayerType.EINSUM, trt.LayerType.PLUGIN, trt.LayerType.PLUGIN_V2, trt.LayerType.PLUGIN_V3}
LOGGER = trt.Logger(trt.Logger.WARNING)  # one logger: TensorRT keeps the first one registered anyway


@pytest.fixture(scope="module")
def weights(recipe_weights):
    return recipe_weights


@pytest.fixture(scope="module")
def exported(weights):
    """export(exporter, target, grid_sample, **kwargs) -> path, each combination exported once per module."""
    cache = {}

    def export(exporter, target, grid_sample="auto", **kwargs):
        key = (exporter, target, grid_sample, tuple(sorted(kwargs.items())))
        if key not in cache:
            name = "-".join([exporter, target, grid_sample, *(f"{k}{v}" for k, v in sorted(kwargs.items()))]) + ".onnx"
            cache[key] = dattn.export(weights, imgsz=IMGSZ, target=target, grid_sample=grid_sample,
                                      output=weights.parent / name, verify=False, exporter=exporter, **kwargs)
        return cache[key]

    return export


by_exporter = pytest.mark.parametrize("exporter", EXPORTERS)


def parse(onnx_path: Path):
    """The network RTX's ONNX parser makes of `onnx_path`; fails with the parser's errors."""
    builder = trt.Builder(LOGGER)
    network = builder.create_network(0)  # RTX networks are always explicit-batch and strongly typed
    parser = trt.OnnxParser(network, LOGGER)
    ok = parser.parse_from_file(str(onnx_path))
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    for error in errors:
        print(f"{onnx_path.name}: {error}")
    assert ok and not errors, f"{onnx_path.name}: the parser rejected it: {errors}"
    return builder, network, parser  # keep the builder and parser alive while the network is used


def layers(network):
    return [network.get_layer(i) for i in range(network.num_layers)]


def grid_sample_layers(network):
    """The GRID_SAMPLE layers, as IGridSampleLayer: the bindings hand out plain ILayer objects."""
    found = []
    for layer in layers(network):
        if layer.type == trt.LayerType.GRID_SAMPLE:
            layer.__class__ = trt.IGridSampleLayer
            found.append(layer)
    return found


def op_counts(onnx_path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(onnx_path), load_external_data=False).graph.node)


def default_opset(onnx_path: Path) -> int:
    model = onnx.load(str(onnx_path), load_external_data=False)
    return next(i.version for i in model.opset_import if i.domain in ("", "ai.onnx"))


@pytest.mark.parametrize("exporter, target, form", CASES, ids=[f"{e}-{t}-{f}" for e, t, f in CASES])
def test_export_parses_into_the_expected_layers(exported, exporter, target, form):
    path = exported(exporter, target, form)
    resolved = plan_export(target, grid_sample=form).grid_sample
    assert resolved in ("native", "gather")
    _, network, _ = parse(path)
    types = Counter(layer.type for layer in layers(network))
    assert not FORBIDDEN_LAYERS & set(types), f"{path.name}: {sorted(str(t) for t in FORBIDDEN_LAYERS & set(types))}"
    samplers = grid_sample_layers(network)
    if resolved == "native":
        assert len(samplers) >= 1 and len(samplers) == op_counts(path)["GridSample"]
        for layer in samplers:
            assert layer.interpolation_mode == trt.InterpolationMode.LINEAR, f"{layer.name}: {layer.interpolation_mode}"
            assert layer.align_corners is True, layer.name
    else:
        assert samplers == [] and op_counts(path)["GridSample"] == 0
        assert types[trt.LayerType.GATHER] >= 1


@by_exporter
@pytest.mark.parametrize("target", TRT_TARGETS)
def test_default_export_follows_the_targets_parser_rules(exported, exporter, target):
    t = TARGETS[target]
    path = exported(exporter, target)
    ops = op_counts(path)
    assert default_opset(path) <= t.max_opset
    assert "Einsum" not in ops
    if not t.parses_layer_norm:
        assert ops["LayerNormalization"] == 0
    if not t.has_grid_sample_layer:
        assert ops["GridSample"] == 0


@by_exporter
def test_layer_norm_is_kept_where_the_target_parses_it(exported, exporter):
    # The control for the test below: at opset 17 the model's LayerNormProxy is one LayerNormalization node.
    path = exported(exporter, "trt8.6", opset=17)
    assert op_counts(path)["LayerNormalization"] >= 1
    _, network, _ = parse(path)
    assert any(layer.type == trt.LayerType.NORMALIZATION for layer in layers(network))


@by_exporter
def test_trt85_at_opset17_has_no_layer_normalization(exported, exporter):
    assert plan_export("trt8.5", opset=17).decompose_layer_norm
    path = exported(exporter, "trt8.5", opset=17)
    assert default_opset(path) == 17
    assert op_counts(path)["LayerNormalization"] == 0
    _, network, _ = parse(path)
    assert not any(layer.type == trt.LayerType.NORMALIZATION for layer in layers(network))


@by_exporter
def test_trt_native_at_opset20_warns_and_auto_picks_gather(exported, exporter):
    native = plan_export("trt", opset=20, grid_sample="native")
    assert any("4646" in w for w in native.warnings), native.warnings
    auto = plan_export("trt", opset=20)
    assert auto.grid_sample == "gather" and not auto.warnings
    path = exported(exporter, "trt", opset=20)
    assert default_opset(path) == 20 and op_counts(path)["GridSample"] == 0
    _, network, _ = parse(path)
    assert grid_sample_layers(network) == []
