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
from dattn.errors import ConfigError, PluginError
from dattn.exporting.triton import MARKER, check_repository_target, model_folders, write_triton_repository
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
    from dattn.exporting.tensorrt import build_serialized_engine, engine_file, engine_metadata

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
    from dattn.exporting.runtime_tree import PACKAGE, shipped_files

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


def plugin_engine(onnx_files, rtx_engine, folder: Path) -> Path:
    """The engine file dattn writes for the plugin graph: its header, with the plan RTX built from the native graph
    (RTX's parser cannot build the plugin graph, see test_trt_plugin_tensorrt_rtx.py; the writer reads the header)."""
    from dattn.exporting.tensorrt import engine_metadata

    meta = json.dumps(engine_metadata(onnx.load(str(onnx_files["plugin"])))).encode()
    engine = folder / "plugin.engine"
    engine.write_bytes(len(meta).to_bytes(4, "little") + meta + parse_engine_bytes(rtx_engine.read_bytes()).plan)
    return engine


def shared_repository(folder: Path, onnx_files) -> Path:
    """A repository holding what is not this export's: notes, the user's own model, another dattn model, the input."""
    folder.mkdir()
    (folder / "NOTES.txt").write_text("my notes")
    (folder / "detector" / "1").mkdir(parents=True)
    (folder / "detector" / "config.pbtxt").write_text('name: "detector"\nbackend: "python"\n')
    shutil.copy(onnx_files["static"], folder / "static.onnx")
    write_triton_repository(folder, folder / "static.onnx", name="other")
    return folder


def test_an_export_replaces_its_own_folders_and_nothing_else_in_a_shared_repository(onnx_files, tmp_path):
    out = shared_repository(tmp_path / "repo", onnx_files)
    others = snapshot(out)
    write_triton_repository(out, onnx_files["static"], name=NAME)
    (out / NAME / "1" / "left.txt").write_text("left from before")
    write_triton_repository(out, onnx_files["dynamic"], name=NAME, max_batch_size=4)

    ours = set(model_folders(NAME))
    assert {k: v for k, v in snapshot(out).items() if Path(k).parts[0] not in ours} == others
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*ours, *model_folders("other"), "NOTES.txt", "detector", "static.onnx"])
    assert not (out / NAME / "1" / "left.txt").exists()
    configs = parsed_configs(out)
    assert configs[NAME].max_batch_size == 4 and configs["other"].max_batch_size == 1
    for folder in ours:
        assert json.loads((out / folder / MARKER).read_text())["model"] == NAME
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # no staging or old folders left beside it


def test_a_later_export_removes_the_folders_it_no_longer_writes(onnx_files, rtx_engine, tmp_path):
    """A plugin engine has no ONNX Runtime flavour: the earlier export's <name>_python folders go."""
    out = shared_repository(tmp_path / "repo", onnx_files)
    write_triton_repository(out, onnx_files["static"], name=NAME)
    assert (out / f"{NAME}_python").is_dir() and (out / f"{NAME}_python_ensemble").is_dir()
    library = tmp_path / "libdattn_trt_plugins.so"
    library.write_bytes(b"stands in for the library: the writer copies it, TensorRT loads it")
    write_triton_repository(out, onnx_files["plugin"], plugin_engine(onnx_files, rtx_engine, tmp_path), name=NAME,
                            plugin_library=library)
    assert not (out / f"{NAME}_python").exists() and not (out / f"{NAME}_python_ensemble").exists()
    assert (out / NAME / "plugin" / library.name).read_bytes() == library.read_bytes()
    assert parsed_configs(out)[NAME].platform == "tensorrt_plan"
    assert {f"other{suffix}" for suffix in ("", "_python", "_python_ensemble")} <= {p.name for p in out.iterdir()}


@pytest.mark.parametrize("case", ["foreign folder", "another model's folder", "a symlink", "a file"])
def test_a_folder_of_the_models_names_that_dattn_did_not_write_for_it_is_refused(onnx_files, tmp_path, case):
    out = tmp_path / "repo"
    out.mkdir()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "mine.txt").write_text("mine")
    if case == "foreign folder":
        (out / f"{NAME}_preprocess").mkdir()
        (out / f"{NAME}_preprocess" / "config.pbtxt").write_text("name: 'mine'")
        match = f"{NAME}_preprocess: exists and was not written by dattn"
    elif case == "another model's folder":  # model "shapes" owns shapes_python, the detector of a model "shapes_python"
        write_triton_repository(out, onnx_files["static"], name=NAME)
        match = f"belongs to the dattn model '{NAME}', not '{NAME}_python'"
    elif case == "a symlink":
        (out / f"{NAME}_ensemble").symlink_to(target)
        match = "not written by dattn"
    else:
        (out / NAME).write_text("a file")
        match = "not written by dattn"
    name = f"{NAME}_python" if case == "another model's folder" else NAME
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match=match) as error:
        write_triton_repository(out, onnx_files["static"], name=name)
    assert "\n" not in str(error.value)
    assert snapshot(tmp_path) == before
    with pytest.raises(ConfigError, match=match):  # what an exporter checks before its long export
        check_repository_target(out, name)


def with_names(onnx_path: Path, names: str, folder: Path) -> Path:
    """A copy of the exported ONNX whose `names` metadata is `names`, as another tool might write it."""
    model = onnx.load(str(onnx_path))
    next(p for p in model.metadata_props if p.key == "names").value = names
    path = folder / "renamed.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("case, error, match", [
    ("a file", ConfigError, "is a file, which dattn does not replace with a folder"),
    ("a fifo", ConfigError, "is a device, FIFO or socket"),
    ("bad name", ConfigError, "model name 'my model'"),
    ("slash in name", ConfigError, "model name 'a/b'"),
    ("dotted name", ConfigError, "model name '..'"),
    ("plugin onnx without engine", ConfigError, "only TensorRT runs"),
    ("plugin engine without library", PluginError, "DATTN_TRT_PLUGIN=.* does not exist: run `dattn plugin build`.*plugin_library="),
    ("engine on cpu", ConfigError, "runs on a GPU"),
    ("bad iou", ConfigError, "iou must be in"),
    ("not onnx", ConfigError, "not a readable ONNX model"),
    ("raw carriage return in names", ConfigError, "names metadata .* is not a dict of class ids to names"),
    ("names not a dict", ConfigError, "names metadata .* is not a dict of class ids to names"),
])
def test_bad_input_is_one_line_and_writes_nothing(onnx_files, rtx_engine, tmp_path, monkeypatch, case, error, match):
    monkeypatch.setenv("DATTN_TRT_PLUGIN", str(tmp_path / "nowhere" / "libdattn_trt_plugins.so"))  # no library found
    out, kwargs = tmp_path / "out", {"name": NAME}
    onnx_path, engine = onnx_files["dynamic"], None
    if case == "a file":
        out.write_text("a file")
    elif case == "a fifo":
        os.mkfifo(out)
    elif case in ("bad name", "slash in name", "dotted name"):
        kwargs["name"] = {"bad name": "my model", "slash in name": "a/b", "dotted name": ".."}[case]
    elif case == "plugin onnx without engine":
        onnx_path = onnx_files["plugin"]
    elif case == "plugin engine without library":
        onnx_path, engine = onnx_files["plugin"], plugin_engine(onnx_files, rtx_engine, tmp_path)
    elif case == "engine on cpu":
        onnx_path, engine, kwargs["device"] = onnx_files["static"], rtx_engine, "cpu"
    elif case == "bad iou":
        kwargs["iou"] = 1.5
    elif case == "not onnx":
        onnx_path = tmp_path / "broken.onnx"
        onnx_path.write_bytes(b"\x00not a model")
    elif case == "raw carriage return in names":
        onnx_path = with_names(onnx_files["dynamic"], "{0: 'box\r', 1: 'disc'}", tmp_path)
    elif case == "names not a dict":
        onnx_path = with_names(onnx_files["dynamic"], "['box', 'disc']", tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(error, match=match) as raised:
        write_triton_repository(out, onnx_path, engine, **kwargs)
    assert "\n" not in str(raised.value)
    assert snapshot(tmp_path) == before
    if case in ("a file", "a fifo", "bad name", "slash in name", "dotted name"):
        with pytest.raises(ConfigError, match=match):  # what an exporter checks before its long export
            check_repository_target(out, kwargs["name"])


def test_control_characters_in_metadata_are_escaped_in_the_configs(onnx_files, tmp_path):
    """Names are the ONNX's metadata verbatim: a raw carriage return between its tokens is valid Python, and the
    configs must carry it through Triton's parser unchanged."""
    names = "{0: 'box',\r 1: 'disc\\r\\n'}"
    repository = write_triton_repository(tmp_path / "repo", with_names(onnx_files["dynamic"], names, tmp_path), name=NAME)
    configs = parsed_configs(repository)
    assert configs[f"{NAME}_ensemble"].parameters["names"].string_value == names
    assert configs[NAME].parameters["names"].string_value == names


def test_the_graph_and_the_engine_may_be_given_in_memory(onnx_files, rtx_engine, tmp_path):
    from_files = write_triton_repository(tmp_path / "files", onnx_files["static"], rtx_engine, name=NAME)
    in_memory = write_triton_repository(tmp_path / "memory", onnx.load(str(onnx_files["static"])),
                                        rtx_engine.read_bytes(), name=NAME)
    assert snapshot(in_memory) == snapshot(from_files)
    plain = write_triton_repository(tmp_path / "plain", onnx.load(str(onnx_files["static"])), name=NAME)
    assert onnx.load(str(plain / NAME / "1" / "model.onnx")) == onnx.load(str(onnx_files["static"]))


@pytest.mark.skipif(tensorrt10_include_dir() is None, reason="needs TensorRT 10+ headers (TRT_INCLUDE_DIRS) to build the plugin")
def test_plugin_engine_ships_the_library_and_the_plugin_sources(onnx_files, rtx_engine, tmp_path):
    from dattn.exporting.tensorrt import engine_metadata
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
    readme = (repository / f"{NAME}_ensemble" / "README.md").read_text()
    assert f"--backend-config=tensorrt,plugins=/models/{NAME}/plugin/{library.name}" in readme
    assert f"LD_PRELOAD=/models/{NAME}/plugin/{library.name}" in readme


WRITE_UNDER_UMASK_027 = """
import os, sys
from dattn.exporting.triton import write_triton_repository

os.umask(0o027)
write_triton_repository(sys.argv[1], sys.argv[2], name=sys.argv[3])
"""


def test_everything_written_gets_the_umask_copies_included(onnx_files, tmp_path):
    """Under umask 027 every folder is 0750 and every file 0640: the copied runtime, model.py and ONNX too."""
    from conftest import run_python

    repository = tmp_path / "repo"
    run_python(["-c", WRITE_UNDER_UMASK_027, str(repository), str(onnx_files["static"]), NAME])  # a new repository
    run_python(["-c", WRITE_UNDER_UMASK_027, str(repository), str(onnx_files["static"]), "second"])  # an existing one
    modes = {str(p.relative_to(repository)): oct(p.stat().st_mode & 0o777) for p in [repository, *repository.rglob("*")]}
    assert any(name.endswith("1/dattn/runtime/postprocess.py") for name in modes)
    assert {name for name, mode in modes.items() if mode != ("0o750" if (repository / name).is_dir() else "0o640")} == set()


def test_every_python_template_is_plain_python_and_the_client_queries_its_own_ensemble(onnx_files, tmp_path):
    """Nothing is filled into .py files (linters read them as they are); client.py takes its ensemble's folder name."""
    import ast

    from dattn.exporting.bundle import TEMPLATES as BUNDLE_FILES
    from dattn.exporting.triton import FILES

    for path in [*FILES.glob("*.py"), *BUNDLE_FILES.glob("*.py")]:
        ast.parse(path.read_text(), filename=str(path))
    repository = write_triton_repository(tmp_path / "repo", onnx_files["static"], name=NAME)
    client = repository / f"{NAME}_ensemble" / "client.py"
    assert client.read_bytes() == (FILES / "client.py").read_bytes()
    result = subprocess.run([sys.executable, str(client), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and f"(default: {NAME}_ensemble)" in result.stdout, result.stderr
