"""FP16 and INT8 exports of the recipe detector (it detects the generated shapes): graphs, accuracy, bad input."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import dattn
from conftest import SAMPLER_NAME, run_python
from dattn.errors import ConfigError, VerificationError
from dattn.export import verify as v
from dattn.export.torch_onnx import prepare_for_export
from dattn.runtime.heads import HEADS
from runtime_models import letterboxed

IMGSZ = 160


@pytest.fixture(scope="module")
def torch_reference(recipe_weights):
    return v.torch_runner(prepare_for_export(dattn.load(recipe_weights).model, dynamic=True)[0])


@pytest.fixture(scope="module")
def exports(recipe_weights, recipe_data, tmp_path_factory):
    """export(name, **kwargs) -> (path, stderr of the export), each export made once per module, through the CLI."""
    folder = tmp_path_factory.mktemp("precision")
    cache = {}

    def export(name, *args):
        if name not in cache:
            out = folder / name
            result = run_python(["-m", "dattn.cli", "export", "--weights", str(recipe_weights), "--imgsz", str(IMGSZ),
                                 "--output", str(out), *[str(a) for a in args]])
            cache[name] = (out, result.stderr)
        return cache[name]

    return export


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    types.update({init.name: init.data_type for init in model.graph.initializer})
    return types


def _detections_agree(path, torch_reference, precision, images):
    runner = v.onnxruntime_runner(path)
    tol = v.TOLERANCES[precision]
    for image in images:
        result, _, _ = v.compare(image.name, letterboxed(image, (IMGSZ, IMGSZ))[None], torch_reference, runner, HEADS["anchors"], 2, 0.25, tol)
        assert result.passed, result.line()


def _map_line(stderr: str) -> dict[str, float]:
    line = next(line for line in stderr.splitlines() if "mAP50-95 / mAP50" in line)
    parts = line.split(": ", 2)[-1].split(", ")
    return {p.split()[0]: float(p.split()[1]) for p in parts}


@pytest.mark.parametrize("form", ["native", "gather"])
def test_fp16_onnx_keeps_io_and_sensitive_ops_in_fp32_and_agrees(exports, torch_reference, recipe_run, form):
    path, stderr = exports(f"fp16-{form}.onnx", "--half", "--grid-sample", form)
    model = onnx.load(str(path))
    types = _elem_types(model)
    assert types[model.graph.input[0].name] == TensorProto.FLOAT and types[model.graph.output[0].name] == TensorProto.FLOAT
    assert sum(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer) > 50, "the weights are not FP16"
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert sum(types[n.output[0]] == TensorProto.FLOAT16 for n in convs) >= len(convs) - 1
    for node in model.graph.node:
        if node.op_type in ("GridSample", "Softmax", "LayerNormalization"):
            assert types[node.output[0]] == TensorProto.FLOAT, f"{node.name} computes in FP16"
    if form == "gather":  # the sampling arithmetic (named after the GridSample it replaced) stays FP32
        sampling = [n for n in model.graph.node if SAMPLER_NAME.search(n.name) and n.op_type in ("Floor", "Mul", "Add", "Sub")]
        assert sampling and all(types[n.output[0]] in (TensorProto.FLOAT, TensorProto.INT64) for n in sampling)
    assert "FP16: computing in FP32 still:" in stderr and "Softmax" in stderr
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["dattn_precision"] == "fp16" and "'half': True" in meta["args"]
    images = [*v.sample_image_paths(), *sorted((recipe_run / "data" / "images" / "val").glob("*.png"))[:8]]
    _detections_agree(path, torch_reference, "fp16", images)


def test_fp16_gather_form_runs_at_batch_2(exports, torch_reference, recipe_run):
    # The gather form in an FP16 graph at batch 2 (its indices count past 2048 rows at larger sizes).
    path, _ = exports("fp16-gather-dynamic.onnx", "--half", "--grid-sample", "gather", "--dynamic")
    images = sorted((recipe_run / "data" / "images" / "val").glob("*.png"))[:2]
    batch = np.stack([letterboxed(p, (320, 320)) for p in images])
    result, _, _ = v.compare("b2", batch, torch_reference, v.onnxruntime_runner(path), HEADS["anchors"], 2, 0.25, v.TOLERANCES["fp16"])
    assert result.passed, result.line()


@pytest.mark.parametrize("target, activation_type", [("trt", TensorProto.INT8), ("ort", TensorProto.UINT8)])
def test_int8_qdq_graph_keeps_its_promises(exports, torch_reference, recipe_data, recipe_run, target, activation_type):
    path, stderr = exports(f"int8-{target}.onnx", "--int8", "--data", recipe_data, "--target", target)
    model = onnx.load(str(path))
    nodes = list(model.graph.node)
    initializers = {init.name: init for init in model.graph.initializer}
    quantize = [n for n in nodes if n.op_type == "QuantizeLinear"]
    dequantize = [n for n in nodes if n.op_type == "DequantizeLinear"]
    assert quantize and dequantize
    for node in quantize:  # activations: int8 with zero point 0 for TensorRT, uint8 for ONNX Runtime on x86
        zero_point = initializers[node.input[2]]
        assert zero_point.data_type == activation_type
        if activation_type == TensorProto.INT8:
            assert not onnx.numpy_helper.to_array(zero_point).any()
    weight_scales = [initializers[n.input[1]] for n in dequantize if n.input[0] in initializers
                     and initializers[n.input[0]].data_type == TensorProto.INT8 and len(initializers[n.input[0]].dims) == 4]
    assert weight_scales and all(len(s.dims) == 1 and s.dims[0] > 1 for s in weight_scales), "weights are not per-channel"
    assert not [n for n in dequantize if initializers.get(n.input[0]) is not None
                and initializers[n.input[0]].data_type == TensorProto.INT32], "an int32 bias DequantizeLinear (TensorRT refuses it)"
    producer = {out: n for n in nodes for out in n.output}
    for sampler in (n for n in nodes if n.op_type == "GridSample"):  # the sampling reads float tensors, not Q/DQ
        assert producer[sampler.input[1]].op_type != "DequantizeLinear"
    first_conv = next(n for n in nodes if n.op_type == "Conv" and n.input[0] == model.graph.input[0].name)
    assert first_conv.input[1] in initializers and initializers[first_conv.input[1]].data_type == TensorProto.FLOAT
    maps = _map_line(stderr)
    assert maps["FP32"] - maps["INT8"] <= 1.0, maps  # the stated drop, also enforced by the export itself
    assert maps["FP32"] > 30, f"the detector has not learnt enough for this check to mean something: {maps}"
    images = [*v.sample_image_paths(), *sorted((recipe_run / "data" / "images" / "val").glob("*.png"))[:8]]
    _detections_agree(path, torch_reference, "int8", images)


def test_fp16_map_is_reported_beside_fp32(exports, recipe_data):
    _, stderr = exports("fp16-map.onnx", "--half", "--data", recipe_data)
    maps = _map_line(stderr)
    assert abs(maps["FP32"] - maps["FP16"]) <= 0.5, maps


def test_int8_that_loses_accuracy_fails_and_writes_nothing(recipe_weights, recipe_run, tmp_path):
    # Calibrated on one black image, the activation ranges are far too small: mAP collapses and the export must refuse.
    import cv2

    black = tmp_path / "calib" / "black.png"
    black.parent.mkdir()
    cv2.imwrite(str(black), np.zeros((IMGSZ, IMGSZ, 3), np.uint8))
    data = tmp_path / "bad.yaml"
    data.write_text(f"path: {recipe_run / 'data'}\ntrain: {black.parent}\nval: images/val\nnames:\n  0: box\n  1: disc\n")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VerificationError, match="INT8 loses .* points of mAP50-95|disagrees with PyTorch"):
        dattn.export(recipe_weights, imgsz=IMGSZ, int8=True, data=data, output=out / "bad.onnx")
    assert not (out / "bad.onnx").exists()
    assert not [p for p in out.iterdir() if p.suffix == ".tmp" or p.name.startswith(".")]


def _listing(folder: Path):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("kwargs, message", [
    ({"int8": True}, "--int8 needs calibration images: --data"),
    ({"int8": True, "data": "empty"}, "holds no images"),
    ({"int8": True, "data": "missing"}, "no such file or folder"),
    ({"raw_engine": True}, "--raw-engine applies to --format engine"),
    ({"format": "engine", "target": "trt-rtx", "sm": 61}, "--sm 61: TensorRT for RTX .* builds for SM 75, 80, 86"),
    ({"format": "engine", "target": "trt-rtx", "dynamic": True, "imgsz": 320, "min_imgsz": 480},
     "the height must grow from --min-imgsz to --imgsz to --max-imgsz, got 480, 320, 640"),
    ({"format": "engine", "target": "trt-rtx", "dynamic": True, "imgsz": 320, "max_imgsz": 256}, "got 160, 320, 256"),
    ({"sm": 86}, "--sm applies to --format engine"),
    ({"min_imgsz": 128, "format": "engine", "target": "trt-rtx"}, "add --dynamic"),
])
def test_bad_precision_and_engine_requests_fail_clearly_and_write_nothing(recipe_weights, tmp_path, kwargs, message):
    weights = tmp_path / "best.pt"
    weights.write_bytes(recipe_weights.read_bytes())
    (tmp_path / "empty").mkdir()
    kwargs = {k: (str(tmp_path / val) if k == "data" else val) for k, val in kwargs.items()}
    before = _listing(tmp_path)
    with pytest.raises(ConfigError, match=message) as error:
        dattn.export(weights, **{"imgsz": IMGSZ, **kwargs})
    assert "\n" not in str(error.value)
    assert _listing(tmp_path) == before


def test_half_on_a_cpu_target_says_what_it_is_for(exports):
    path, stderr = exports("half-ort.onnx", "--half", "--no-verify")
    assert path.is_file()
    assert "WARNING: an FP16 ONNX is for ONNX Runtime's CUDA and TensorRT execution providers" in stderr
