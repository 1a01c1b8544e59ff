"""The TensorRT runner as far as a machine without a GPU allows, and on a GPU when TensorRT is importable.

Host side, against fakes of each API generation (tests/fake_tensorrt.py, their method names checked against
TensorRT's headers and tensorrt_rtx's bindings): engine files in both forms, the choice between the bindings and
the named-tensor API, buffer sizing and reuse, dynamic shapes, the plugin library, refusals of engines built
elsewhere. Real components where they run here: engines written by dattn's exporter through TensorRT for RTX,
TensorRT for RTX's logger and deserializer, libcudart through ctypes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_tensorrt import BINDING_API, TENSOR_API, FakeCuda, FakeTensorRT, engine_file_bytes, model_output
from runtime_models import assert_same_detections, exported_onnx, validation_images
from trt_headers import tensorrt_include_dirs, tensorrt_version

from dattn.errors import ConfigError, ModelFileError, PluginError
from dattn.runtime.cuda import CudaError, CudaRuntime, DeviceBuffers
from dattn.runtime.engine_file import parse_engine_bytes, read_engine_file
from dattn.runtime.tensorrt_io import BindingIO, NamedTensorIO, tensor_nbytes
from dattn.runtime.tensorrt_runner import TensorRTRunner, capturing_logger, deserialization_error

METADATA = {"names": {"0": "box", "1": "disc"}, "stride": 32, "imgsz": [64, 96], "batch": 1}
SOME_LIBRARY = "libdattn_trt_plugins.so"


def _fake_loader(trt, logger, library):
    """Stands in for dattn.plugin.library.load_plugin_library (tested on its own) where only the order matters."""
    trt.init_libnvinfer_plugins(logger, "")


def _engine(tmp_path, metadata=METADATA, plan=b"ftrt" + bytes(60), name="best.engine"):
    path = tmp_path / name
    path.write_bytes(engine_file_bytes(metadata, plan))
    return path


# ---- engine files ---------------------------------------------------------------------------------


def test_header_form_gives_metadata_and_plan():
    plan = b"ftrt" + bytes(range(60))
    parsed = parse_engine_bytes(engine_file_bytes(METADATA, plan))
    assert parsed.metadata == METADATA and parsed.plan == plan and parsed.module_name == "tensorrt"


@pytest.mark.parametrize("magic, module", [(b"ftrt", "tensorrt"), (b"vtrt", "tensorrt_rtx")])
def test_raw_plan_is_recognised_by_its_magic(magic, module):
    plan = magic + bytes(range(60))
    parsed = parse_engine_bytes(plan)
    assert parsed.metadata == {} and parsed.plan == plan and parsed.module_name == module


@pytest.mark.parametrize("data, message", [
    (engine_file_bytes(METADATA)[:30], "truncated: its header announces"),
    (engine_file_bytes(METADATA, plan=b""), "truncated: there is no engine after the metadata header"),
    (b"PK\x03\x04" + bytes(100), "is a PyTorch checkpoint"),
])
def test_bad_engine_bytes(data, message):
    with pytest.raises(ModelFileError, match=message):
        parse_engine_bytes(data, "best.engine")


def test_empty_engine_file(tmp_path):
    (tmp_path / "best.engine").write_bytes(b"")
    with pytest.raises(ModelFileError, match="is empty"):
        read_engine_file(tmp_path / "best.engine")


@pytest.fixture(scope="module")
def rtx_engine(recipe_weights, tmp_path_factory):
    """A real engine file written by dattn's exporter (ultralytics header + plan), built by TensorRT for RTX."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX (pip install tensorrt-rtx-cu12) builds without a GPU")
    from engines import build_engine_file

    onnx_path = exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160)
    return build_engine_file(onnx_path, tmp_path_factory.mktemp("rtx") / "best.engine", module_name="tensorrt_rtx")


def test_engine_written_by_the_exporter_parses(rtx_engine):
    parsed = read_engine_file(rtx_engine)
    assert parsed.metadata["names"] == {"0": "box", "1": "disc"} and parsed.metadata["imgsz"] == [160, 160]
    assert parsed.plan[:4] == b"vtrt" and parsed.module_name == "tensorrt_rtx"
    raw = parse_engine_bytes(parsed.plan)  # the same plan without the header, as trtexec writes it
    assert raw.metadata == {} and raw.plan == parsed.plan


# ---- the two API generations ------------------------------------------------------------------------


@pytest.mark.parametrize("include_dir", tensorrt_include_dirs() or [None])
def test_fake_generations_mirror_tensorrt_headers(include_dir):
    """Bindings up to 9.x, named tensors from 8.5: the fakes' methods exist in the headers of their generation."""
    if include_dir is None:
        pytest.skip("set TRT_INCLUDE_DIRS to TensorRT include folders")
    header = (Path(include_dir) / "NvInferRuntime.h").read_text()
    has = {cpp: re.search(rf"\b{cpp}\(", header) is not None for cpp in [*BINDING_API.values(), *TENSOR_API.values()]}
    version = tensorrt_version(include_dir)
    assert all(has[cpp] for cpp in BINDING_API.values()) == (version < (10, 0)), version
    assert all(has[cpp] for cpp in TENSOR_API.values()) == (version >= (8, 5)), version


def test_fake_named_tensor_api_is_tensorrt_rtx_api():
    """The 10.x fake's methods are real methods of TensorRT for RTX's ICudaEngine / IExecutionContext."""
    trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX's bindings (pip install tensorrt-rtx-cu12)")
    from fake_tensorrt import TensorContext, TensorEngine

    engine_methods = {n for n in vars(TensorEngine) if not n.startswith("_") and n != "context_class"}
    context_methods = {n for n in vars(TensorContext) if not n.startswith("_")}
    assert engine_methods <= set(dir(trt.ICudaEngine)), engine_methods - set(dir(trt.ICudaEngine))
    assert context_methods <= set(dir(trt.IExecutionContext)), context_methods - set(dir(trt.IExecutionContext))
    assert not hasattr(trt.ICudaEngine, "num_bindings")  # the bindings API is gone from 10 on
    assert trt.nptype(trt.DataType.FLOAT) is np.float32 and hasattr(trt.TensorIOMode, "INPUT")


@pytest.mark.parametrize("generation, expected", [("8.2", BindingIO), ("8.6", NamedTensorIO), ("10.3", NamedTensorIO)])
def test_api_is_chosen_by_what_the_engine_has(tmp_path, generation, expected):
    trt = FakeTensorRT(generation, cuda=FakeCuda())
    runner = TensorRTRunner(_engine(tmp_path), trt=trt, cuda=trt.cuda)
    assert isinstance(runner.io, expected)
    assert runner.description == f"TensorRT {trt.__version__} ({expected.api} API)"


@pytest.mark.parametrize("generation", ["8.2", "8.6", "10.3"])
def test_static_engine_runs_and_sizes_buffers_exactly(tmp_path, generation):
    trt = FakeTensorRT(generation, input_shape=(1, 3, 64, 96))
    runner = TensorRTRunner(_engine(tmp_path), trt=trt, cuda=trt.cuda)
    batch = np.random.default_rng(0).random((1, 3, 64, 96), dtype=np.float32)
    np.testing.assert_array_equal(runner(batch), model_output(batch))
    outputs = 4 + 2
    assert sorted(trt.cuda.allocations) == sorted([1 * 3 * 64 * 96 * 4, 1 * outputs * (8 * 12 + 4 * 6 + 2 * 3) * 4])
    runner(batch)
    assert len(trt.cuda.allocations) == 2  # buffers are kept between runs
    assert (runner.info.names, runner.info.imgsz, runner.info.dynamic) == ({0: "box", 1: "disc"}, (64, 96), False)
    with pytest.raises(ConfigError, match="takes input 1x3x64x96 only, got 1x3x96x96"):
        runner(np.zeros((1, 3, 96, 96), np.float32))


@pytest.mark.parametrize("generation", ["8.2", "8.6", "10.3"])
def test_dynamic_engine_takes_shapes_from_the_input(tmp_path, generation):
    profile = ((1, 3, 32, 32), (1, 3, 64, 64), (4, 3, 128, 128))
    trt = FakeTensorRT(generation, input_shape=(-1, 3, -1, -1), profile=profile)
    runner = TensorRTRunner(_engine(tmp_path, metadata={**METADATA, "imgsz": [64, 64]}), trt=trt, cuda=trt.cuda)
    assert runner.info.dynamic and runner.info.batch is None and runner.info.imgsz == (64, 64)
    rng = np.random.default_rng(1)
    for shape in [(1, 3, 64, 96), (2, 3, 128, 128), (1, 3, 32, 64)]:
        batch = rng.random(shape, dtype=np.float32)
        np.testing.assert_array_equal(runner(batch), model_output(batch))
    # grown once for the largest input, reused for the smaller one after it
    assert trt.cuda.allocations == [1 * 3 * 64 * 96 * 4, 1 * 6 * 126 * 4, 2 * 3 * 128 * 128 * 4, 2 * 6 * 336 * 4]
    assert len(trt.cuda.freed) == 2
    with pytest.raises(ConfigError, match="outside the engine's shape range \\(1x3x32x32 to 4x3x128x128\\)"):
        runner(np.zeros((1, 3, 160, 160), np.float32))


def test_buffer_sizes():
    assert tensor_nbytes((2, 3, 640, 640), np.float16) == 2 * 3 * 640 * 640 * 2
    with pytest.raises(ValueError, match="not fully known"):
        tensor_nbytes((-1, 3, 640, 640), np.float32)
    cuda = FakeCuda()
    buffers = DeviceBuffers(cuda)
    first = buffers.address("images", 100)
    assert buffers.address("images", 80) == first and buffers.capacity("images") == 100
    assert buffers.address("images", 200) != first and cuda.freed == [100]
    buffers.release()
    assert cuda.memory == {}


def test_raw_plan_takes_metadata_from_the_caller(tmp_path):
    trt = FakeTensorRT("10.3")
    runner = TensorRTRunner(_engine(tmp_path, metadata=None), metadata=METADATA, trt=trt, cuda=trt.cuda)
    assert runner.info.names == {0: "box", 1: "disc"}
    bare = TensorRTRunner(_engine(tmp_path, metadata=None), trt=FakeTensorRT("10.3"), cuda=FakeCuda())
    assert bare.info.names == {} and bare.info.imgsz == (64, 96)  # from the engine's input shape


# ---- the plugin library, and engines built elsewhere -----------------------------------------------


def test_plugin_engine_without_library_names_dattn_plugin_build(tmp_path, monkeypatch):
    monkeypatch.setenv("DATTN_TRT_PLUGIN", str(tmp_path / "nowhere.so"))  # `dattn plugin path` finds nothing
    trt = FakeTensorRT("8.2")
    with pytest.raises(PluginError, match="dattn plugin build") as error:
        TensorRTRunner(_engine(tmp_path, metadata={**METADATA, "dattn_grid_sample": "plugin"}), trt=trt, cuda=trt.cuda)
    assert "\n" not in str(error.value)
    assert trt.cuda.calls == [] and trt.events == []  # refused before CUDA or TensorRT were touched


def test_plugin_library_that_cannot_load(tmp_path):
    trt = FakeTensorRT("8.2")
    (tmp_path / "libdattn_trt_plugins.so").write_bytes(b"not a library")
    with pytest.raises(PluginError, match="dattn plugin build"):
        TensorRTRunner(_engine(tmp_path, metadata={**METADATA, "dattn_grid_sample": "plugin"}), trt=trt, cuda=trt.cuda,
                       plugin_library=tmp_path / "libdattn_trt_plugins.so")


def test_plugin_library_is_loaded_when_metadata_says_so(tmp_path):
    trt = FakeTensorRT("10.3")
    runner = TensorRTRunner(_engine(tmp_path, metadata={**METADATA, "dattn_grid_sample": "plugin"}), trt=trt,
                            cuda=trt.cuda, plugin_library=SOME_LIBRARY,
                            load_plugin=_fake_loader)
    assert runner.plugin_loaded and trt.events == ["plugins initialised", "runtime", "deserialize"]


MISSING_CREATOR = {
    "8.2": "getPluginCreator could not find plugin: DAttnGridSample version: 1",
    "10.3": "IPluginRegistry::getCreator: Error Code 4: API Usage Error (Cannot find plugin: DAttnGridSample, "
            "version: 1, namespace:dattn.)",
}


@pytest.mark.parametrize("generation", list(MISSING_CREATOR))
def test_missing_creator_loads_the_plugin_and_retries(tmp_path, generation):
    """A raw plan says nothing about plugins: TensorRT's complaint about a missing creator triggers the loading."""
    trt = FakeTensorRT(generation, script=[[MISSING_CREATOR[generation]], "engine"])
    runner = TensorRTRunner(_engine(tmp_path, metadata=None), trt=trt, cuda=trt.cuda, plugin_library=SOME_LIBRARY,
                            load_plugin=_fake_loader)
    assert runner.plugin_loaded
    assert trt.events == ["runtime", "deserialize", "plugins initialised", "deserialize"]


@pytest.mark.parametrize("generation", list(MISSING_CREATOR))
def test_missing_creator_without_library(tmp_path, monkeypatch, generation):
    monkeypatch.setenv("DATTN_TRT_PLUGIN", str(tmp_path / "nowhere.so"))
    trt = FakeTensorRT(generation, script=[[MISSING_CREATOR[generation]]])
    with pytest.raises(PluginError, match="dattn plugin build"):
        TensorRTRunner(_engine(tmp_path, metadata=None), trt=trt, cuda=trt.cuda)


# What TensorRT logs for engines it cannot take (from its sources' messages as users report them).
REFUSALS = {
    "another GPU": ["The engine plan file is generated on an incompatible device, expecting compute 8.7 got compute 7.2, "
                    "please rebuild."],
    "another TensorRT version": [
        "1: [stdArchiveReader.cpp::StdArchiveReader::40] Error Code 1: Serialization (Serialization assertion "
        "stdVersionRead == serializationVersion failed.Version tag does not match. Note: Current Version: 205, "
        "Serialized Engine Version: 232)",
        "4: [runtime.cpp::deserializeCudaEngine::50] Error Code 4: Internal Error (Engine deserialization failed.)"],
    "not an engine": ["1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization (Serialization "
                      "assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)"],
    "8.x version": ["The engine plan file is not compatible with this version of TensorRT, expecting library version "
                    "8.2.1.8 got 8.4.1.5, please rebuild."],
    "truncated": ["IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Serialization assertion "
                  "plan.header.size == blobSize failed.)", "Cuda Runtime (cudaError 35: CUDA driver version is "
                  "insufficient for CUDA runtime version)"],
}
EXPECTED = {"another GPU": "built for another GPU", "truncated": "may be truncated, or built for another GPU or TensorRT"}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_engine_built_elsewhere_is_refused_clearly(tmp_path, case):
    trt = FakeTensorRT("8.2", script=[REFUSALS[case]])
    with pytest.raises(ModelFileError) as error:
        TensorRTRunner(_engine(tmp_path), trt=trt, cuda=trt.cuda)
    message = str(error.value)
    assert "engines are not portable" in message and "\n" not in message
    assert EXPECTED.get(case, "built with another TensorRT version") in message
    assert REFUSALS[case][0] in message  # TensorRT's own words come along


def test_no_usable_cuda_is_not_blamed_on_the_engine():
    error = deserialization_error("best.engine", ["Cuda Runtime (cudaError 35: CUDA driver version is insufficient for "
                                                  "CUDA runtime version)"], plugin_loaded=False)
    assert "cannot use CUDA here" in str(error)


def test_capturing_logger_with_real_tensorrt_api():
    """TensorRT for RTX's real Runtime reports through the logger; the runner turns its words into one line."""
    trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX's bindings (pip install tensorrt-rtx-cu12)")
    logger = capturing_logger(trt)
    engine = trt.Runtime(logger).deserialize_cuda_engine(b"vtrt" + bytes(1000))
    assert engine is None and logger.errors, "TensorRT for RTX took a plan of zeros"
    error = deserialization_error("best.engine", logger.errors, plugin_loaded=False)
    assert isinstance(error, ModelFileError) and logger.errors[0] in str(error) and "not portable" in str(error)


def test_real_engine_without_gpu_or_tensorrt_is_one_clear_error(rtx_engine):
    """The exporter's engine through the whole runner: it stops with a one-line error on a machine without a GPU."""
    try:
        runner = TensorRTRunner(rtx_engine)
    except (CudaError, ModelFileError, ConfigError) as error:
        assert "\n" not in str(error)
        return
    assert runner.info.names == {0: "box", 1: "disc"}  # a GPU that TensorRT for RTX supports: it simply works


# ---- libcudart through ctypes -------------------------------------------------------------------------


def test_libcudart_loads_and_reports_errors_in_one_line():
    try:
        cuda = CudaRuntime()
    except CudaError as error:
        pytest.skip(f"no libcudart here: {error}")
    major, _ = cuda.runtime_version()
    assert major >= 10
    try:
        count = cuda.device_count()
    except CudaError as error:  # no GPU or no driver: CUDA's own reason, in one line
        assert re.match(r"CUDA error \d+ in cudaGetDeviceCount: \w", str(error)) and "\n" not in str(error)
        return
    assert count >= 1
    address = cuda.malloc(1024)
    data = np.arange(256, dtype=np.float32)
    cuda.copy_to_device(address, data)
    back = np.empty_like(data)
    cuda.copy_to_host(back, address)
    cuda.free(address)
    np.testing.assert_array_equal(back, data)


def test_compute_capability_command():
    """`python -m dattn.runtime.cuda` (what build_engine.sh asks): the SM as one number, or one error line."""
    result = subprocess.run([sys.executable, "-m", "dattn.runtime.cuda"], capture_output=True, text=True)
    if result.returncode == 0:
        assert re.fullmatch(r"\d{2,3}\n", result.stdout)
    else:
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1


# ---- on a GPU with TensorRT -----------------------------------------------------------------------


def _gpu_and_tensorrt():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT's Python package is not installed (pip install tensorrt)"
    try:
        if CudaRuntime().device_count() < 1:
            return "no CUDA GPU"
    except CudaError as error:
        return f"no usable CUDA GPU ({error})"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_and_tensorrt() is not None, reason=str(_gpu_and_tensorrt()))
@pytest.mark.parametrize("form", ["header", "raw plan"])
def test_engine_built_and_run_on_the_gpu(form, recipe_weights, recipe_run, tmp_path_factory, tmp_path):
    from engines import build_engine_file
    from dattn.runtime import Detector

    onnx_path = exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160)
    engine = build_engine_file(onnx_path, tmp_path / "best.engine")
    metadata = None
    if form == "raw plan":
        parsed = read_engine_file(engine)
        engine.write_bytes(parsed.plan)
        metadata = parsed.metadata
    ours, reference = Detector(engine, metadata=metadata), Detector(onnx_path, device="cpu")
    assert ours.description.startswith("TensorRT ") and ours.names == {0: "box", 1: "disc"}
    for image in validation_images(recipe_run):
        a, b = ours.predict(str(image)), reference.predict(str(image))
        assert_same_detections(image.name, a.boxes, a.scores, a.class_ids, b.boxes, b.scores, b.class_ids, 0.25)


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_and_tensorrt() is not None, reason=str(_gpu_and_tensorrt()))
def test_dynamic_engine_on_the_gpu(recipe_weights, recipe_run, tmp_path_factory, tmp_path):
    from engines import build_engine_file
    from dattn.runtime import Detector

    onnx_path = exported_onnx(tmp_path_factory, recipe_weights, "dynamic-192-at-256", imgsz=192, dynamic=True)
    engine = build_engine_file(onnx_path, tmp_path / "dynamic.engine")
    ours, reference = Detector(engine, imgsz=256), Detector(onnx_path, imgsz=256, device="cpu")
    for image in validation_images(recipe_run, 3):
        a, b = ours.predict(str(image)), reference.predict(str(image))
        assert_same_detections(image.name, a.boxes, a.scores, a.class_ids, b.boxes, b.scores, b.class_ids, 0.25)

