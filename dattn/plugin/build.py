"""Build and locate the DAttnGridSample TensorRT plugin library (its sources: dattn/plugin/trt_gridsample).

`dattn plugin build` runs CMake on the plugin sources; `dattn plugin path` prints the library that
TensorRT should load (trtexec --plugins / --staticPlugins, or dattn.plugin.library.load_plugin_library).
Python 3.6 compatible, as dattn.plugin.library, which the runtime imports on JetPack 4.6.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Union

from dattn.errors import PluginError
from dattn.plugin.contract import LIBRARY_ENV, LIBRARY_NAME

# The sources travel inside the package (package data of a wheel, the folder itself in a checkout).
_SOURCE_DIR = Path(__file__).resolve().parent / "trt_gridsample"


def plugin_source_dir() -> Path:
    """The folder holding the plugin's CMakeLists.txt."""
    if (_SOURCE_DIR / "CMakeLists.txt").is_file():
        return _SOURCE_DIR
    raise PluginError(f"the plugin sources ({_SOURCE_DIR}) are not in this installation; reinstall dattn")


def default_build_dir() -> Path:
    """Where `build_plugin()` builds when given no folder: the user's cache, never the installed package."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "dattn" / "trt_gridsample"


def plugin_path() -> Optional[Path]:
    """The plugin library to load: $DATTN_TRT_PLUGIN, else the default build, else a build in the checkout."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return Path(override) if Path(override).is_file() else None
    candidates = [default_build_dir() / LIBRARY_NAME, *sorted(_SOURCE_DIR.glob(f"build*/{LIBRARY_NAME}"))]
    return next((path for path in candidates if path.is_file()), None)


def find_nvcc() -> Optional[str]:
    """nvcc from $CUDACXX, $CUDA_HOME/$CUDA_PATH, PATH, or the usual install prefix."""
    for variable in ("CUDACXX",):
        if os.environ.get(variable) and Path(os.environ[variable]).is_file():
            return os.environ[variable]
    for variable in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(variable) and (Path(os.environ[variable]) / "bin" / "nvcc").is_file():
            return str(Path(os.environ[variable]) / "bin" / "nvcc")
    found = shutil.which("nvcc")
    if found:
        return found
    return "/usr/local/cuda/bin/nvcc" if Path("/usr/local/cuda/bin/nvcc").is_file() else None


def _tensorrt_include_hint(tensorrt_root: Optional[Union[str, os.PathLike]]) -> Optional[str]:
    """A folder with NvInfer.h, as CMake will look for it; None when there is none."""
    roots = [tensorrt_root, os.environ.get("TRT_INCLUDE_DIR"), os.environ.get("TENSORRT_ROOT")]
    candidates = []
    for root in filter(None, roots):
        candidates += [Path(root), Path(root) / "include"]
    candidates += [Path(p) for p in ("/usr/include/x86_64-linux-gnu", "/usr/include/aarch64-linux-gnu",
                                     "/usr/local/tensorrt/include", "/opt/tensorrt/include", "/usr/include")]
    return next((str(path) for path in candidates if (path / "NvInfer.h").is_file()), None)


def build_plugin(build_dir: Optional[Union[str, os.PathLike]] = None,
                 tensorrt_root: Optional[Union[str, os.PathLike]] = None,
                 cuda_archs: Optional[Union[List[int], str]] = None) -> Path:
    """Configure and build libdattn_trt_plugins.so with CMake; returns the library's path.

    tensorrt_root: a TensorRT prefix (with include/ and lib/) or its include folder.
    cuda_archs: e.g. [87] or "75;86"; default: every listed architecture this CUDA can build.
    """
    cmake = shutil.which("cmake")
    if cmake is None:
        raise PluginError("cmake (3.18 or newer) is not on PATH: `pip install cmake` or your package manager")
    nvcc = find_nvcc()
    if nvcc is None:
        raise PluginError("nvcc is not found: install the CUDA toolkit, or set CUDA_HOME or CUDACXX")
    include = _tensorrt_include_hint(tensorrt_root)
    if include is None:
        raise PluginError(
            "TensorRT headers (NvInfer.h) are not found: pass --tensorrt-root (or set TENSORRT_ROOT / "
            "TRT_INCLUDE_DIR); on Jetson they are in /usr/include/aarch64-linux-gnu (package libnvinfer-dev)")

    source = plugin_source_dir()
    build = Path(build_dir) if build_dir is not None else default_build_dir()
    build.mkdir(parents=True, exist_ok=True)
    configure = [cmake, "-S", str(source), "-B", str(build), f"-DCMAKE_CUDA_COMPILER={nvcc}",
                 f"-DTRT_INCLUDE_DIR={include}", "-DCMAKE_BUILD_TYPE=Release"]
    if tensorrt_root is not None:
        configure.append(f"-DTENSORRT_ROOT={Path(tensorrt_root)}")
    if cuda_archs is not None:
        archs = cuda_archs if isinstance(cuda_archs, str) else ";".join(str(arch) for arch in cuda_archs)
        configure.append(f"-DDATTN_CUDA_ARCHS={archs.replace(',', ';')}")
    for step in (configure, [cmake, "--build", str(build), "--target", "dattn_trt_plugins",
                             "--parallel", str(os.cpu_count() or 2)]):
        print("+", " ".join(step), flush=True)
        # Output goes straight to the terminal: compiling for a dozen architectures takes a while.
        if subprocess.run(step).returncode != 0:  # the build broke (exit 1), not a missing prerequisite (exit 2)
            raise RuntimeError(f"`{' '.join(step)}` failed; see the output above")
    library = build / LIBRARY_NAME
    if not library.is_file():
        raise RuntimeError(f"the build finished but {library} is missing")
    return library


def main(argv: Optional[List[str]] = None) -> int:
    """`dattn plugin build [--build-dir D] [--tensorrt-root R] [--cuda-archs 87,75]` | `dattn plugin path`."""
    parser = argparse.ArgumentParser(prog="dattn plugin", description="The DAttnGridSample TensorRT plugin.")
    commands = parser.add_subparsers(dest="command")
    commands.required = True  # the keyword is Python 3.7+
    build = commands.add_parser("build", help="build libdattn_trt_plugins.so with CMake")
    build.add_argument("--build-dir", help=f"default: {default_build_dir()}")
    build.add_argument("--tensorrt-root", help="TensorRT prefix or include folder (default: TENSORRT_ROOT, usual places)")
    build.add_argument("--cuda-archs", help="e.g. 87 or 75,86 (default: all this CUDA supports)")
    commands.add_parser("path", help="print the built library's path (exit 2 when none)")
    args = parser.parse_args(argv)

    if args.command == "build":
        try:
            library = build_plugin(args.build_dir, args.tensorrt_root, args.cuda_archs)
        except PluginError as error:  # a missing prerequisite (CMake, nvcc, TensorRT's headers): the user's to fix
            print(f"dattn plugin build: error: {error}", file=sys.stderr)
            return error.exit_code
        print(library)
        return 0
    library = plugin_path()
    if library is None:
        print(f"dattn plugin path: error: no {LIBRARY_NAME} found: run `dattn plugin build` or set {LIBRARY_ENV}",
              file=sys.stderr)
        return 2
    print(library)
    return 0


if __name__ == "__main__":
    sys.exit(main())
