"""The plugin classes behave as TensorRT expects, checked on the CPU without libnvinfer or a GPU.

For each TensorRT header folder in TRT_INCLUDE_DIRS (os.pathsep-separated) or TRT_INCLUDE_DIR, a C++ driver
(dattn/plugin/trt_gridsample/tests/gridSamplePluginRoundTrip.cpp with driverSupport.cpp and allocationFaults.cpp) is
compiled with g++ together with the plugin sources (the registration file with static registration off), the
kernel object (nvcc, one architecture, once per session) and CUDA's static runtime, and run. It calls the
plugin's build-time methods as TensorRT's builder does and its runtime methods as an engine does, and prints
one line per check, which the tests below read by group:

- identity:   creator name / version / namespace = DAttnGridSample / 1 / dattn, its field names, the plugin's,
              and the loadLibrary entry point (getPluginCreators on 8.6, getCreators on 10+);
- roundtrip:  align_corners 0 and 1 survive serialization (8.x: serialize -> deserializePlugin;
              10+: getFieldsToSerialize -> createPlugin(kRUNTIME)), clone (and attachToContext on 10+);
              bad attributes and corrupt bytes are refused;
- formats:    supportsFormatCombination, asked for every DataType x TensorFormat of the headers at every
              position, admits exactly LINEAR fp32 and LINEAR fp16, all tensors one type;
- shapes:     getOutputDimensions / getOutputShapes give (N, C, Ho, Wo) for constant, symbolic and mixed
              dimensions through an IExprBuilder of the driver's own, and refuse a constant grid that cannot fit;
- configure:  configurePlugin (and onShapeChange on 10+) accept right tensors and refuse wrong ones and wrong
              counts (on 8.x, where it returns nothing, by logging); getWorkspaceSize is 0;
- enqueue:    on a plugin that went through configure, clone, serialization and re-creation, null pointers,
              wrong shapes, types and formats give -1 and a logged reason before any kernel launch, an empty
              output gives 0, and a right call reaches the kernel (without a GPU: -1 and CUDA's error);
- exceptions: each allocation of createPlugin, clone, attachToContext, deserializePlugin and setPluginNamespace
              fails in turn (std::bad_alloc from the driver's operator new): null or unchanged result, error
              logged, nothing leaked, no std::terminate; the other methods allocate nothing;
- logging:    errors reach TensorRT's global logger, and on 8.6+ first the one given through setLoggerFinder.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from trt_headers import PLUGIN_SOURCES, SKIP_REASON, tensorrt_include_dirs, tensorrt_version

from toolchain import cuda_include_dir

from dattn.plugin.build import find_nvcc

# The checkout's sources (a wheel's copy carries no tests/ folder).
SOURCE = Path(__file__).resolve().parents[1] / "dattn" / "plugin" / "trt_gridsample"
DRIVER = SOURCE / "tests" / "gridSamplePluginRoundTrip.cpp"
DRIVER_SOURCES = [DRIVER, SOURCE / "tests" / "driverSupport.cpp", SOURCE / "tests" / "allocationFaults.cpp"]
NVCC = find_nvcc()
GROUPS = ["identity", "roundtrip", "formats", "shapes", "configure", "enqueue", "exceptions", "logging"]
LOGGER_FINDER = (8, 6)  # the first TensorRT that hands plugin libraries a logger


def expected_checks(version: tuple[int, int], group: str) -> set[str]:
    """The checks the driver must report for a header version; a missing one fails the test like a FAIL."""
    v3 = version[0] >= 10
    if group == "identity":
        names = {"creator.name", "creator.version", "creator.namespace", "creator.field_names",
                 "plugin.name_version_namespace"}
        names |= {"creator.interface", "plugin.capabilities"} if v3 else {"plugin.is_dynamic_ext"}
        return names | ({"entry_point"} if version >= LOGGER_FINDER else set())
    if group == "roundtrip":
        steps = ["fields_to_serialize", "create_runtime", "clone", "attach_to_context"] if v3 else \
            ["serialize", "deserialize", "clone"]
        names = {f"{step}.align_corners={value}" for step in ["create_build", *steps] for value in (0, 1)}
        return names | {"reject_bad_attributes"} | (set() if v3 else {"reject_corrupt_bytes"})
    if group == "formats":
        return {"pos0", "pos1", "pos2", "accepted_combinations", "malformed_calls"}
    if group == "shapes":
        return {"nb_outputs", "constant_dims", "symbolic_dims", "mixed_dims", "constant_mismatch", "malformed_inputs",
                "output_type"}
    if group == "configure":
        return {"right_tensors", "wrong_tensors", "wrong_counts", "workspace_size"} | \
            ({"on_shape_change"} if v3 else {"initialize"})
    if group == "enqueue":
        return {"engine_plugin", "null_input_descs", "null_output_descs", "null_input_array", "null_output_array",
                "null_x", "null_grid", "null_y", "x_rank_3", "grid_last_dim_3", "grid_batch_differs",
                "y_channels_differ", "y_height_width_swapped", "unknown_dim", "negative_dim", "int8", "int32",
                "fp32_x_fp16_grid", "fp16_x_fp32_y", "chw32_x", "hwc8_y", "empty_output", "right_call_reaches_kernel"}
    if group == "exceptions":
        allocating = {"createPlugin.build", "createPlugin.runtime", "clone", "attachToContext"} if v3 else \
            {"createPlugin", "deserializePlugin", "clone", "clone.long_namespace", "setPluginNamespace",
             "creator.setPluginNamespace", "createPlugin.long_namespace"}
        quiet = {"getFieldsToSerialize.allocates_nothing", "getCreators.allocates_nothing"} if v3 else \
            {"serialize.allocates_nothing"} | ({"getPluginCreators.allocates_nothing"}
                                              if version >= LOGGER_FINDER else set())
        return allocating | quiet | {"getFieldNames.allocates_nothing", "build_methods.allocate_nothing",
                                     "refused_enqueue.allocates_nothing"}
    return {"global_logger"} | ({"logger_finder"} if version >= LOGGER_FINDER else set())


def cudart_static_dir(nvcc: str) -> Path | None:
    """The folder with libcudart_static.a that nvcc itself links against."""
    result = subprocess.run([nvcc, "--dryrun", "-x", "cu", os.devnull, "-o", os.devnull],
                            capture_output=True, text=True)
    candidates = [Path(flag.strip('"')[2:]) for flag in re.findall(r'"?-L[^"\s]+"?', result.stdout + result.stderr)]
    include = cuda_include_dir(nvcc)
    if include is not None:
        candidates += [include.parent / "lib64", include.parent / "lib"]
    return next((path.resolve() for path in candidates if (path / "libcudart_static.a").is_file()), None)


def kernel_arch(nvcc: str) -> int:
    listed = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True)
    archs = sorted(int(arch) for arch in re.findall(r"compute_(\d+)", listed.stdout))
    return 75 if not archs or 75 in archs else archs[0]


@pytest.fixture(scope="session")
def toolchain(tmp_path_factory):
    """(g++, CUDA include folder, libcudart_static folder, kernel object): the kernel is compiled once."""
    if not DRIVER.is_file():
        pytest.skip(f"{DRIVER} not found (run from a source checkout)")
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no host C++ compiler (g++/c++) on PATH")
    if NVCC is None:
        pytest.skip("nvcc not found (install the CUDA toolkit or set CUDA_HOME)")
    include = cuda_include_dir(NVCC)
    if include is None:
        pytest.skip("CUDA headers not found: TensorRT's headers include cuda_runtime_api.h")
    libdir = cudart_static_dir(NVCC)
    if libdir is None:
        pytest.skip("libcudart_static.a not found next to nvcc's CUDA")
    out = tmp_path_factory.mktemp("roundtrip-kernel")
    arch = kernel_arch(NVCC)
    subprocess.run([NVCC, "-std=c++14", "-O2", "-c", str(SOURCE / "gridSampleKernel.cu"), "-o", str(out / "kernel.o"),
                    f"-gencode=arch=compute_{arch},code=sm_{arch}"], check=True, capture_output=True, text=True)
    return compiler, include, libdir, out / "kernel.o"


_RUNS: dict[str, dict] = {}


def driver_run(include_dir: str, toolchain, tmp_path_factory) -> dict:
    """Builds and runs the driver for one header folder (once per session); returns its parsed output."""
    if include_dir in _RUNS:
        return _RUNS[include_dir]
    compiler, cuda_include, libdir, kernel = toolchain
    version = tensorrt_version(include_dir)
    out = tmp_path_factory.mktemp(f"roundtrip-trt{version[0]}.{version[1]}")
    binary = out / "gridSamplePluginRoundTrip"
    # Static registration off; the plugin's weak getLogger resolves to the driver's, getPluginRegistry to nothing.
    build = subprocess.run([compiler, "-std=c++14", "-O1", "-Wall", "-Wextra", "-Wno-deprecated-declarations",
                            "-Wno-unused-function", "-DDATTN_STATIC_REGISTRATION=0", "-I", str(SOURCE),
                            "-isystem", include_dir, "-isystem", str(cuda_include), *map(str, DRIVER_SOURCES),
                            *[str(SOURCE / source) for source in PLUGIN_SOURCES], str(kernel),
                            "-L", str(libdir), "-lcudart_static", "-ldl", "-lpthread", "-lrt", "-o", str(binary)],
                           capture_output=True, text=True, timeout=300)
    result = {"version": version, "build": build, "run": None, "checks": {}}
    if build.returncode == 0:
        run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=60)
        result["run"] = run
        for line in run.stdout.splitlines():
            fields = line.split("\t")
            if fields[0] == "CHECK" and len(fields) >= 4:
                result["checks"][(fields[1], fields[2])] = (fields[3], fields[4] if len(fields) > 4 else "")
    _RUNS[include_dir] = result
    return result


@pytest.mark.skipif(not tensorrt_include_dirs(),
                    reason=SKIP_REASON)
@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("include_dir", tensorrt_include_dirs() or [None])
def test_plugin_classes_on_the_cpu(include_dir, group, toolchain, tmp_path_factory):
    result = driver_run(include_dir, toolchain, tmp_path_factory)
    version = result["version"]
    build, run = result["build"], result["run"]
    assert build.returncode == 0, f"driver build failed for TensorRT {version}:\n{build.stderr[-4000:]}"
    assert re.search(rf"^INFO\tTensorRT {version[0]}\.{version[1]},", run.stdout, re.M), run.stdout[:500]
    assert re.search(r"^SUMMARY\t", run.stdout, re.M), \
        f"driver did not finish (rc {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    checks = {name: outcome for (g, name), outcome in result["checks"].items() if g == group}
    missing = expected_checks(version, group) - set(checks)
    failed = {name: detail for name, (status, detail) in checks.items() if status != "PASS"}
    for name, (status, detail) in sorted(checks.items()):
        print(f"TensorRT {version[0]}.{version[1]} {group}/{name}: {status} {detail}")
    assert not missing, f"TensorRT {version}: {group} checks not reported: {sorted(missing)}"
    assert not failed, f"TensorRT {version}: {group} checks failed: {failed}"
