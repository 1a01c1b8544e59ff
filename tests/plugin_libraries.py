"""Plugin libraries built the way users build them (`dattn plugin build`), against the TensorRT headers named in
TRT_INCLUDE_DIRS / TRT_INCLUDE_DIR, for one architecture; each is built once per test session."""

import shutil
from pathlib import Path

import pytest
from trt_headers import tensorrt_include_dirs, tensorrt_version

from dattn.plugin.build import build_plugin, find_nvcc

_BUILT: dict = {}


def include_dir_for(wanted) -> str | None:
    """The first listed header folder whose TensorRT version passes `wanted(major, minor)`."""
    return next((d for d in tensorrt_include_dirs()
                 if (Path(d) / "NvInferVersion.h").is_file() and wanted(*tensorrt_version(d))), None)


def built_library(include_dir: str | None, tmp_path_factory) -> Path:
    """libdattn_trt_plugins.so built by dattn.plugin.build.build_plugin against `include_dir` (sm_75 only)."""
    if include_dir is None:
        pytest.skip("needs the TensorRT header versions this test names in TRT_INCLUDE_DIRS / TRT_INCLUDE_DIR")
    if shutil.which("cmake") is None or find_nvcc() is None:
        pytest.skip("needs cmake and nvcc to build the plugin library")
    if include_dir not in _BUILT:
        major, minor = tensorrt_version(include_dir)
        build_dir = tmp_path_factory.mktemp(f"plugin-trt{major}.{minor}")
        _BUILT[include_dir] = build_plugin(build_dir, tensorrt_root=include_dir, cuda_archs=[75])
    return _BUILT[include_dir]
