"""The Triton model repository that dattn writes, checked without a server.

Every config.pbtxt is parsed with the model-config protobuf that tritonclient carries (what tritonserver parses),
and its dims are checked against the exported graph; a TensorRT for RTX engine stands in for the tensorrt_plan
case. Bad input gets one ConfigError line and leaves the file system as it was. The server tests are in
test_triton_server.py.
"""

import filecmp
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from trt_headers import tensorrt10_include_dir

import dattn
from dattn.errors import ConfigError
from dattn.export.triton import MARKER, check_repository_target, write_triton_repository
from dattn.runtime.engine_file import parse_engine_bytes

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="tritonclient is not installed (pip install '.[dev]')")
from google.protobuf import text_format  # noqa: E402  (comes with tritonclient's grpc dependencies)

IMGSZ = 160
NAME = "shapes"
PYTHON_MODELS = {f"{NAME}_preprocess", f"{NAME}_postprocess", f"{NAME}_python"}


@pytest.fixture(scope="module")
def onnx_files(recipe_weights, tmp_path_factory):
    """The trained detector exported four ways: fixed batch 1 or 2, dynamic (batch, height, width), with plugin nodes."""
    folder = tmp_path_factory.mktemp("triton-onnx")
    return {
        "static": dattn.export(recipe_weights, imgsz=IMGSZ, output=folder / "static.onnx", verify=False),
        "batch2": dattn.export(recipe_weights, imgsz=IMGSZ, output=folder / "batch2.onnx", verify=False, batch=2),
        "dynamic": dattn.export(recipe_weights, imgsz=IMGSZ, output=folder / "dynamic.onnx", verify=False, dynamic=True, batch=4),
        "plugin": dattn.export(recipe_weights, imgsz=IMGSZ, output=folder / "plugin.onnx", verify=False, target="trt",
                               grid_sample="plugin"),
    }


@pytest.fixture(scope="module")
def rtx_engine(onnx_files, tmp_path_factory):
    """A real engine file as dattn writes it (ultralytics header + plan), built by TensorRT for RTX from the static ONNX."""
    pytest.importorskip("tensorrt_rtx", reason="TensorRT for RTX (pip install tensorrt-rtx-cu12) is not installed")
    from dattn.export.tensorrt import build_serialized_engine, engine_file, engine_metadata

    plan = build_serialized_engine(onnx_files["static"], module_name="tensorrt_rtx")
    path = tmp_path_factory.mktemp("triton-engine") / "static.engine"
    path.write_bytes(engine_file(plan, engine_metadata(onnx.load(str(onnx_files["static"]))), raw=False))
    return path


def parsed_configs(repository: Path) -> dict:
    """{model name: ModelConfig} for every model folder, parsed as tritonserver parses config.pbtxt."""
    configs = {}
    for path in sorted(repository.glob("*/config.pbtxt")):
        configs[path.parent.name] = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
    return configs


def graph_dims(value_info) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]


def snapshot(folder: Path) -> dict:
    """Every path under `folder` with its bytes (None for folders): what 'writes nothing' compares."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_dynamic_graph_gives_a_batching_repository_whose_configs_parse_and_match_the_graph(onnx_files, tmp_path):
    repository = write_triton_repository(tmp_path / "repo", onnx_files["dynamic"], name=NAME, max_batch_size=6,
                                         queue_delay_us=250, instances=2)
    graph = onnx.load(str(onnx_files["dynamic"]))
    configs = parsed_configs(repository)
    assert set(configs) == {NAME, f"{NAME}_ensemble", f"{NAME}_python_ensemble"} | PYTHON_MODELS
    for name, config in configs.items():
        assert config.name == name and config.max_batch_size == 6
        if config.platform != "ensemble":
            assert config.dynamic_batching.max_queue_delay_microseconds == 250
            assert [(g.count, g.kind) for g in config.instance_group] == [
                (2, model_config_pb2.ModelInstanceGroup.KIND_CPU if name in PYTHON_MODELS - {f"{NAME}_python"}
                 else model_config_pb2.ModelInstanceGroup.KIND_AUTO)]

    for detector in (configs[NAME], configs[f"{NAME}_python"]):
        (graph_input,), (graph_output,) = graph.graph.input, graph.graph.output
        assert [(i.name, i.data_type, list(i.dims)) for i in detector.input] == [
            (graph_input.name, model_config_pb2.TYPE_FP32, graph_dims(graph_input)[1:])]  # batch implied by max_batch_size
        assert [(o.name, list(o.dims)) for o in detector.output] == [(graph_output.name, graph_dims(graph_output)[1:])]
        metadata = {p.key: p.value for p in graph.metadata_props}
        assert {k: v.string_value for k, v in detector.parameters.items() if k in metadata} == metadata
    assert configs[NAME].platform == "onnxruntime_onnx" and configs[f"{NAME}_python"].backend == "python"
    assert (repository / NAME / "1" / "model.onnx").read_bytes() == onnx_files["dynamic"].read_bytes()
    assert (repository / f"{NAME}_python" / "1" / "model.onnx").read_bytes() == onnx_files["dynamic"].read_bytes()

    for ensemble, detector in ((f"{NAME}_ensemble", NAME), (f"{NAME}_python_ensemble", f"{NAME}_python")):
        steps = configs[ensemble].ensemble_scheduling.step
        assert [s.model_name for s in steps] == [f"{NAME}_preprocess", detector, f"{NAME}_postprocess"]
        assert dict(steps[1].input_map) == {"images": "NETWORK_INPUT"} and dict(steps[1].output_map) == {"output0": "NETWORK_OUTPUT"}
        assert {i.name: i.optional for i in configs[ensemble].input} == {"IMAGE_BYTES": True, "IMAGE": True}
        assert [o.name for o in configs[ensemble].output] == ["BOXES", "SCORES", "CLASSES", "NUM_DETECTIONS"]
    preprocess = configs[f"{NAME}_preprocess"]
    assert [list(o.dims) for o in preprocess.output] == [[3, IMGSZ, IMGSZ], [2]]
    post = {k: v.string_value for k, v in configs[f"{NAME}_postprocess"].parameters.items()}
    assert (post["conf"], post["iou"], post["max_det"]) == ("0.25", "0.7", "300")


def test_static_graph_keeps_its_batch_of_one(onnx_files, tmp_path):
    repository = write_triton_repository(tmp_path / "repo", onnx_files["static"], name=NAME)
    graph = onnx.load(str(onnx_files["static"]))
    configs = parsed_configs(repository)
    assert {c.max_batch_size for c in configs.values()} == {1}
    assert list(configs[NAME].input[0].dims) == graph_dims(graph.graph.input[0])[1:] == [3, IMGSZ, IMGSZ]
    assert list(configs[NAME].output[0].dims) == graph_dims(graph.graph.output[0])[1:] == [6, 525]
    assert all(c.HasField("dynamic_batching") for c in configs.values() if c.platform != "ensemble")
    with pytest.raises(ConfigError, match="fixed at 1.*dynamic=True"):
        write_triton_repository(tmp_path / "other", onnx_files["static"], name=NAME, max_batch_size=8)
    assert not (tmp_path / "other").exists()


def test_a_fixed_batch_above_one_is_part_of_every_tensors_dims(onnx_files, tmp_path):
    """Triton batches only along a dynamic first dimension: a graph fixed at batch 2 is served with max_batch_size 0."""
    repository = write_triton_repository(tmp_path / "repo", onnx_files["batch2"], name=NAME)
    graph = onnx.load(str(onnx_files["batch2"]))
    configs = parsed_configs(repository)
    assert {c.max_batch_size for c in configs.values()} == {0}
    assert not any(c.HasField("dynamic_batching") for c in configs.values())
    assert list(configs[NAME].input[0].dims) == graph_dims(graph.graph.input[0]) == [2, 3, IMGSZ, IMGSZ]
    assert list(configs[NAME].output[0].dims) == graph_dims(graph.graph.output[0]) == [2, 6, 525]
    assert {i.name: list(i.dims) for i in configs[f"{NAME}_ensemble"].input} == {"IMAGE_BYTES": [2, 1], "IMAGE": [2, -1, -1, 3]}
    assert [list(o.dims) for o in configs[f"{NAME}_preprocess"].output] == [[2, 3, IMGSZ, IMGSZ], [2, 2]]


def test_dynamic_batching_can_be_turned_off(onnx_files, tmp_path):
    configs = parsed_configs(write_triton_repository(tmp_path / "repo", onnx_files["dynamic"], name=NAME, dynamic_batching=False))
    assert {c.max_batch_size for c in configs.values()} == {8}  # clients may still send batches
    assert not any(c.HasField("dynamic_batching") for c in configs.values())


def test_engine_gives_a_tensorrt_plan_model_holding_the_plan_without_its_header(onnx_files, rtx_engine, tmp_path):
    repository = write_triton_repository(tmp_path / "repo", onnx_files["static"], rtx_engine, name=NAME)
    configs = parsed_configs(repository)
    detector = configs[NAME]
    assert detector.platform == "tensorrt_plan"
    assert [(g.count, g.kind) for g in detector.instance_group] == [(1, model_config_pb2.ModelInstanceGroup.KIND_GPU)]
    graph = onnx.load(str(onnx_files["static"]))
    assert [list(i.dims) for i in detector.input] == [graph_dims(graph.graph.input[0])[1:]]
    assert [list(o.dims) for o in detector.output] == [graph_dims(graph.graph.output[0])[1:]]
    engine = rtx_engine.read_bytes()
    header_length = int.from_bytes(engine[:4], "little")
    plan = (repository / NAME / "1" / "model.plan").read_bytes()
    assert plan == engine[4 + header_length:] and json.loads(engine[4:4 + header_length])["imgsz"] == [IMGSZ, IMGSZ]
    assert parse_engine_bytes(plan).metadata == {}  # a raw plan passes through
    assert not (repository / NAME / "1" / "model.onnx").exists()
    assert configs[f"{NAME}_ensemble"].ensemble_scheduling.step[1].model_name == NAME
    assert f"{NAME}_python" in configs  # the ONNX Runtime flavour serves the same graph where TensorRT is absent


def test_python_models_carry_the_installed_runtime_and_nothing_else_of_dattn(onnx_files, tmp_path):
    from dattn.export.runtime_tree import PACKAGE, shipped_files

    repository = write_triton_repository(tmp_path / "repo", onnx_files["dynamic"], name=NAME)
    expected = sorted(str(p) for p in shipped_files())
    assert "runtime/predict.py" in expected and "plugin/library.py" in expected and "errors.py" in expected
    for model in PYTHON_MODELS:
        package = repository / model / "1" / "dattn"
        assert "import" not in (package / "__init__.py").read_text()  # the full package's would import torch
        copied = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py" or p.parent != package)
        assert copied == expected
        assert all(filecmp.cmp(package / name, PACKAGE / name, shallow=False) for name in expected)


def test_python_backend_files_are_python_3_6_compatible(onnx_files, tmp_path):
    """Triton's python backend may embed an old Python; vermin checks the minimum version the files need."""
    vermin = Path(sys.executable).with_name("vermin")
    if not vermin.is_file():
        pytest.skip("vermin is not installed (pip install '.[dev]')")
    repository = write_triton_repository(tmp_path / "repo", onnx_files["dynamic"], name=NAME)
    files = [str(p) for p in repository.rglob("*.py")]
    result = subprocess.run([str(vermin), "-t=3.6-", "--no-tips", "--violations", *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_rewriting_an_earlier_repository_of_the_same_model_replaces_it(onnx_files, tmp_path):
    out = tmp_path / "repo"
    write_triton_repository(out, onnx_files["static"], name=NAME)
    (out / "stale.txt").write_text("left from before")
    write_triton_repository(out, onnx_files["dynamic"], name=NAME, max_batch_size=4)
    assert not (out / "stale.txt").exists()
    assert parsed_configs(out)[NAME].max_batch_size == 4
    assert json.loads((out / MARKER).read_text())["name"] == NAME
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staging or old folders left beside it


@pytest.mark.parametrize("case, match", [
    ("not a repository", "not a dattn Triton repository"),
    ("other model", "holds the Triton repository of model 'other'"),
    ("a file", "exists and is not a folder"),
    ("bad name", "model name 'my model'"),
    ("slash in name", "model name 'a/b'"),
    ("dotted name", "model name '..'"),
    ("plugin onnx without engine", "only TensorRT runs"),
    ("plugin engine without library", "no plugin library was given"),
    ("engine on cpu", "runs on a GPU"),
    ("bad iou", "iou must be in"),
    ("not onnx", "not a readable ONNX model"),
])
def test_bad_input_is_one_config_error_and_writes_nothing(onnx_files, rtx_engine, tmp_path, monkeypatch, case, match):
    from dattn.export.tensorrt import engine_metadata

    monkeypatch.setenv("DATTN_TRT_PLUGIN", str(tmp_path / "nowhere" / "libdattn_trt_plugins.so"))  # no library found
    out, kwargs = tmp_path / "out", {"name": NAME}
    onnx_path, engine = onnx_files["dynamic"], None
    if case == "not a repository":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    elif case == "other model":
        write_triton_repository(out, onnx_path, name="other")
    elif case == "a file":
        out.write_text("a file")
    elif case in ("bad name", "slash in name", "dotted name"):
        kwargs["name"] = {"bad name": "my model", "slash in name": "a/b", "dotted name": ".."}[case]
    elif case == "plugin onnx without engine":
        onnx_path = onnx_files["plugin"]
    elif case == "plugin engine without library":
        # The header dattn writes for the plugin graph; the plan is RTX's from the native graph, since RTX's parser
        # cannot build the plugin graph (see test_trt_plugin_tensorrt_rtx.py). The writer reads only the header.
        meta = json.dumps(engine_metadata(onnx.load(str(onnx_files["plugin"])))).encode()
        plan = parse_engine_bytes(rtx_engine.read_bytes()).plan
        engine = tmp_path / "plugin.engine"
        engine.write_bytes(len(meta).to_bytes(4, "little") + meta + plan)
        onnx_path = onnx_files["plugin"]
    elif case == "engine on cpu":
        onnx_path, engine, kwargs["device"] = onnx_files["static"], rtx_engine, "cpu"
    elif case == "bad iou":
        kwargs["iou"] = 1.5
    elif case == "not onnx":
        onnx_path = tmp_path / "broken.onnx"
        onnx_path.write_bytes(b"\x00not a model")
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=match) as error:
        write_triton_repository(out, onnx_path, engine, **kwargs)
    assert "\n" not in str(error.value)
    assert snapshot(tmp_path) == before
    if case in ("not a repository", "other model", "a file", "bad name", "slash in name", "dotted name"):
        with pytest.raises(ConfigError, match=match):  # what an exporter checks before its long export
            check_repository_target(out, kwargs["name"])


@pytest.mark.slow
@pytest.mark.skipif(tensorrt10_include_dir() is None, reason="needs TensorRT 10+ headers (TRT_INCLUDE_DIRS) to build the plugin")
def test_plugin_engine_ships_the_library_and_the_plugin_sources(onnx_files, rtx_engine, tmp_path):
    from dattn.export.tensorrt import engine_metadata
    from dattn.plugin.build import build_plugin, find_nvcc, plugin_source_dir

    if shutil.which("cmake") is None or find_nvcc() is None:
        pytest.skip("needs cmake and nvcc to build the plugin library")
    library = build_plugin(tmp_path / "plugin-build", tensorrt_root=tensorrt10_include_dir(), cuda_archs=[75])
    meta = json.dumps(engine_metadata(onnx.load(str(onnx_files["plugin"])))).encode()
    plan = parse_engine_bytes(rtx_engine.read_bytes()).plan  # RTX cannot build the plugin graph; the header is what counts
    engine = tmp_path / "plugin.engine"
    engine.write_bytes(len(meta).to_bytes(4, "little") + meta + plan)

    repository = write_triton_repository(tmp_path / "repo", onnx_files["plugin"], engine, name=NAME, plugin_library=library)
    shipped = repository / NAME / "plugin"
    assert (shipped / library.name).read_bytes() == library.read_bytes()
    sources = plugin_source_dir()
    expected = sorted(str(p.relative_to(sources)) for p in sources.rglob("*") if p.is_file()
                      and not any(part.startswith("build") or part == "__pycache__" for part in p.relative_to(sources).parts))
    assert sorted(str(p.relative_to(shipped / "trt_gridsample")) for p in (shipped / "trt_gridsample").rglob("*") if p.is_file()) == expected
    configs = parsed_configs(repository)
    assert configs[NAME].platform == "tensorrt_plan"
    assert f"{NAME}_python" not in configs  # ONNX Runtime cannot run the plugin node
    readme = (repository / "README.md").read_text()
    assert f"--backend-config=tensorrt,plugins=/models/{NAME}/plugin/{library.name}" in readme
    assert f"LD_PRELOAD=/models/{NAME}/plugin/{library.name}" in readme


def test_the_written_files_have_ordinary_permissions(onnx_files, tmp_path):
    repository = write_triton_repository(tmp_path / "repo", onnx_files["static"], name=NAME)
    mask = os.umask(0)
    os.umask(mask)
    assert repository.stat().st_mode & 0o777 == 0o777 & ~mask
