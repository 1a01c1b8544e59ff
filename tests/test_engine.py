"""`dattn-export --format engine` with TensorRT for RTX, CI's stand-in for TensorRT: real parser, real builder.

The cases cover every pair of: static/dynamic shapes, FP32/FP16/INT8, native/gather sampling, header/raw file.
Each engine's file form, metadata and profile are checked, and the ONNX it was built from (--keep-onnx) is parsed
again to check the network's precisions: Q/DQ layers for INT8, FP16 tensors for --half, the sampling in float.
Running the engine needs a GPU: tests/test_runtime_tensorrt.py does that where one is present.
"""

import json
from pathlib import Path

import pytest

from conftest import SAMPLER_NAME, run_python

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX (pip install tensorrt-rtx-cu12) is not installed")

IMGSZ = 160
# (shape, precision, form, file form): pairwise coverage of the four dimensions.
CASES = [
    ("static", "fp32", "native", "header"),
    ("dynamic", "fp32", "gather", "raw"),
    ("static", "fp16", "gather", "raw"),
    ("dynamic", "fp16", "native", "header"),
    ("static", "int8", "native", "raw"),
    ("dynamic", "int8", "gather", "header"),
]
PLAN_MAGIC = b"vtrt"  # TensorRT for RTX plans; TensorRT's start with b"ftrt"


def _export(weights, data, out: Path, shape, precision, form, file_form, *extra):
    args = ["-m", "dattn.cli", "export", "--weights", str(weights), "--format", "engine", "--target", "trt-rtx",
            "--imgsz", str(IMGSZ), "--grid-sample", form, "--output", str(out), "--keep-onnx", "--no-verify", *extra]
    if shape == "dynamic":
        args += ["--dynamic", "--batch", "4", "--min-imgsz", "96", "--max-imgsz", "320"]
    if precision == "fp16":
        args.append("--half")
    if precision == "int8":
        args += ["--int8", "--data", str(data), "--calib-images", "16"]
    if file_form == "raw":
        args.append("--raw-engine")
    return run_python(args)


def _read_engine(path: Path):
    data = path.read_bytes()
    if data.startswith(PLAN_MAGIC):
        return None, data
    length = int.from_bytes(data[:4], "little")
    return json.loads(data[4:4 + length]), data[4 + length:]


def _network(onnx_path: Path):
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse_from_file(str(onnx_path)), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    return builder, parser, network


@pytest.mark.parametrize("shape, precision, form, file_form", CASES, ids=["-".join(c) for c in CASES])
def test_engine_through_the_cli(recipe_weights, recipe_data, tmp_path, shape, precision, form, file_form):
    out = tmp_path / "model.engine"
    result = _export(recipe_weights, recipe_data, out, shape, precision, form, file_form)
    assert result.stdout.strip().splitlines()[-1] == str(out)
    metadata, plan = _read_engine(out)
    assert plan.startswith(PLAN_MAGIC) and len(plan) > 1_000_000, "not a TensorRT for RTX plan"
    if file_form == "raw":
        assert metadata is None and out.read_bytes() == plan, "--raw-engine must write the bare plan"
    else:
        assert metadata["names"] == {"0": "box", "1": "disc"} and metadata["stride"] == 32
        assert metadata["imgsz"] == [IMGSZ, IMGSZ] and metadata["dattn_precision"] == precision
        assert metadata["args"]["dynamic"] is (shape == "dynamic")
        assert metadata["args"]["half"] is (precision == "fp16") and metadata["args"]["int8"] is (precision == "int8")
        if shape == "dynamic":
            assert metadata["dattn_profile"] == {"min": [1, 3, 96, 96], "opt": [4, 3, IMGSZ, IMGSZ], "max": [4, 3, 320, 320]}
    expected_profile = "profile {'min': [1, 3, 96, 96], 'opt': [4, 3, 160, 160], 'max': [4, 3, 320, 320]}"
    assert (expected_profile in result.stderr) == (shape == "dynamic"), result.stderr[-2000:]

    _, _, network = _network(out.with_suffix(".onnx"))
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    kinds = {layer.type for layer in layers}
    assert network.get_input(0).dtype == trt.float32 and network.get_output(0).dtype == trt.float32
    assert (trt.LayerType.QUANTIZE in kinds and trt.LayerType.DEQUANTIZE in kinds) == (precision == "int8")
    halves = [layer for layer in layers for j in range(layer.num_outputs) if layer.get_output(j).dtype == trt.float16]
    assert bool(halves) == (precision == "fp16"), f"{len(halves)} FP16 layers"
    samplers = [layer for layer in layers if layer.type == trt.LayerType.GRID_SAMPLE]
    assert bool(samplers) == (form == "native")
    for layer in samplers:  # the sampling takes float32 features and coordinates
        assert layer.get_input(0).dtype == trt.float32 and layer.get_input(1).dtype == trt.float32
    if form == "gather":  # the row gather of the sampling reads float32 features
        gathers = [layer for layer in layers if layer.type == trt.LayerType.GATHER and SAMPLER_NAME.search(layer.name)
                   and layer.get_input(0).dtype in (trt.float32, trt.float16)]
        assert gathers and all(layer.get_input(0).dtype == trt.float32 for layer in gathers)


def test_sm_builds_for_the_named_compute_capability(recipe_weights, tmp_path):
    out = tmp_path / "sm86.engine"
    result = run_python(["-m", "dattn.cli", "export", "--weights", str(recipe_weights), "--format", "engine",
                         "--target", "trt-rtx", "--imgsz", str(IMGSZ), "--sm", "86", "--output", str(out), "--no-verify"])
    assert out.is_file() and "wrote" in result.stderr


def test_engine_suffix_alone_asks_for_an_engine(recipe_weights, tmp_path):
    out = tmp_path / "inferred.engine"
    run_python(["-m", "dattn.cli", "export", "--weights", str(recipe_weights), "--target", "trt-rtx",
                "--imgsz", str(IMGSZ), "--output", str(out), "--no-verify"])
    metadata, plan = _read_engine(out)
    assert metadata is not None and plan.startswith(PLAN_MAGIC)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inferred.engine"], "an intermediate ONNX was left behind"



@pytest.fixture(scope="module")
def header_engine(recipe_weights, tmp_path_factory):
    """A real engine file: ultralytics' header and a plan TensorRT for RTX built."""
    from engines import build_engine_file
    from runtime_models import exported_onnx

    onnx_path = exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=IMGSZ)
    return build_engine_file(onnx_path, tmp_path_factory.mktemp("rtx") / "best.engine", module_name="tensorrt_rtx")


@pytest.mark.parametrize("damage", ["not JSON", "nested too deeply"])
def test_damaged_engine_header_is_not_taken_for_a_raw_plan(header_engine, tmp_path, damage):
    """A damaged metadata header before a real plan: one clear error, not the whole file handed to TensorRT."""
    from dattn.errors import ModelFileError
    from dattn.runtime.engine_file import read_engine_file

    metadata, plan = _read_engine(header_engine)
    header = json.dumps(metadata).encode()
    header = {"not JSON": header[:-1] + b"]",
              "nested too deeply": b'{"names": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"}[damage]
    engine = tmp_path / "best.engine"
    engine.write_bytes(len(header).to_bytes(4, "little") + header + plan)
    with pytest.raises(ModelFileError, match="best.engine: damaged: its metadata header is not a JSON object"):
        read_engine_file(engine)
    assert read_engine_file(header_engine).metadata == metadata  # the undamaged file reads
