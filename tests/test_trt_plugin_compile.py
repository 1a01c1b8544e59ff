"""The plugin compiles without a GPU: the kernel for every listed architecture this nvcc supports,
and both plugin interfaces against each TensorRT header set named in TRT_INCLUDE_DIRS / TRT_INCLUDE_DIR."""

import re
import shutil
import subprocess

import pytest
from trt_headers import PLUGIN_SOURCES, SKIP_REASON, tensorrt_include_dirs, tensorrt_version

from toolchain import candidate_cuda_archs, cuda_include_dir, nvcc_version

from dattn.plugin.build import find_nvcc, plugin_source_dir
from dattn.plugin.library import read_build_info

SOURCE = plugin_source_dir()
NVCC = find_nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found (install the CUDA toolkit or set CUDA_HOME)")


def nvcc_archs(nvcc: str) -> set[int]:
    listed = subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True, text=True, check=True).stdout
    return {int(arch) for arch in re.findall(r"compute_(\d+)", listed)}


@needs_nvcc
def test_kernel_compiles_for_every_supported_arch(tmp_path):
    archs = [arch for arch in candidate_cuda_archs() if arch in nvcc_archs(NVCC)]
    if nvcc_version(NVCC) >= (11, 8):
        # Turing (the oldest CUDA 13 builds), Jetson Orin and Hopper at least.
        assert {75, 87, 90} <= set(archs), archs
    # One nvcc call, one SASS per architecture, plus PTX of the newest for future GPUs.
    gencode = [f"-gencode=arch=compute_{arch},code=sm_{arch}" for arch in archs]
    gencode.append(f"-gencode=arch=compute_{archs[-1]},code=compute_{archs[-1]}")
    subprocess.run([NVCC, "-std=c++14", "-O3", "-c", str(SOURCE / "gridSampleKernel.cu"), "-o",
                    str(tmp_path / "gridSampleKernel.o"), "-Werror", "all-warnings", *gencode], check=True)
    print(f"compiled sm_{', sm_'.join(map(str, archs))}")


@needs_nvcc
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not on PATH")
def test_cmake_builds_the_kernel_without_tensorrt(tmp_path):
    configure = subprocess.run(["cmake", "-S", str(SOURCE), "-B", str(tmp_path), "-DDATTN_KERNEL_ONLY=ON",
                                f"-DCMAKE_CUDA_COMPILER={NVCC}", "-DDATTN_CUDA_ARCHS=87"],
                               capture_output=True, text=True, check=True)
    assert "architectures: 87" in configure.stdout
    subprocess.run(["cmake", "--build", str(tmp_path), "--parallel", "2"], capture_output=True, check=True)
    assert (tmp_path / "libdattn_grid_sample_host.so").is_file()


@needs_nvcc
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not on PATH")
def test_cmake_default_archs_follow_the_cuda_version(tmp_path):
    configure = subprocess.run(["cmake", "-S", str(SOURCE), "-B", str(tmp_path), "-DDATTN_KERNEL_ONLY=ON",
                                f"-DCMAKE_CUDA_COMPILER={NVCC}"], capture_output=True, text=True, check=True)
    chosen = [int(a) for a in re.search(r"architectures: ([\d;]+)", configure.stdout).group(1).split(";")]
    if nvcc_version(NVCC) >= (13, 0):
        # CUDA 13 builds 7.5 and up: the Nano/TX2/Xavier kernels come from the device's own CUDA.
        assert chosen == [75, 80, 86, 87, 89, 90, 100, 110, 120]
    assert set(chosen) <= nvcc_archs(NVCC)


@pytest.fixture(scope="module")
def host_compiler():
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no host C++ compiler (g++/c++) on PATH")
    if NVCC is None or cuda_include_dir(NVCC) is None:
        pytest.skip("CUDA headers not found: TensorRT's headers include cuda_runtime_api.h")
    return compiler


@pytest.mark.skipif(not tensorrt_include_dirs(),
                    reason=SKIP_REASON)
@pytest.mark.parametrize("include_dir", tensorrt_include_dirs() or [None])
def test_plugin_classes_compile_against_tensorrt_headers(host_compiler, include_dir, tmp_path):
    major, minor = tensorrt_version(include_dir)
    flags = ["-std=c++14", "-fPIC", "-Wall", "-Wextra", "-Werror", "-Wno-deprecated-declarations",
             "-isystem", include_dir, "-isystem", str(cuda_include_dir(NVCC)), "-I", str(SOURCE)]
    for source in PLUGIN_SOURCES:
        subprocess.run([host_compiler, *flags, "-c", str(SOURCE / source), "-o", str(tmp_path / f"{source}.o")],
                       check=True)
    symbols = subprocess.run(["nm", "-C", str(tmp_path / "gridSamplePluginRegistration.cpp.o")],
                             capture_output=True, text=True, check=True).stdout
    defined = {line.split()[-1] for line in symbols.splitlines() if " T " in line}
    # The interface is chosen at compile time: IPluginV3 from 10 on, IPluginV2DynamicExt for 8.x.
    if major >= 10:
        assert "GridSamplePluginCreator" in symbols and "GridSamplePluginLegacyCreator" not in symbols
        assert {"getCreators", "setLoggerFinder"} <= defined
    else:
        assert "GridSamplePluginLegacyCreator" in symbols and "GridSamplePluginCreator::" not in symbols
        expected = {"getPluginCreators", "setLoggerFinder"} if (major, minor) >= (8, 6) else set()
        assert expected <= defined and ("getCreators" not in defined)
    # libnvinfer is referred to weakly, so the library also loads where none is in reach (TensorRT for RTX).
    weak = {line.split()[-1] for line in symbols.splitlines() if line.split()[:1] == ["w"]}
    assert "getPluginRegistry" in weak, symbols
    # What the library says it was built for, as dattn.plugin.library reads it from the file.
    assert re.search(r"^[0-9a-f]+ R dattnTrtPluginBuildInfo$", symbols, re.M), symbols
    build_info = read_build_info(tmp_path / "gridSamplePluginRegistration.cpp.o")
    assert build_info is not None and build_info.tensorrt[:2] == (major, minor)
    assert build_info.interface == ("IPluginV3" if major >= 10 else "IPluginV2DynamicExt")
    print(f"TensorRT {major}.{minor}: {len(PLUGIN_SOURCES)} sources compiled, entry points "
          f"{sorted(defined & {'getCreators', 'getPluginCreators', 'setLoggerFinder'})}, built for {build_info}")
