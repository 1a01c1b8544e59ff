"""What the plugin's compile tests ask of the CUDA toolchain and of the plugin's CMakeLists.txt."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from dattn.plugin.build import plugin_source_dir


def cuda_include_dir(nvcc: str) -> Path | None:
    """The CUDA headers nvcc compiles against (TensorRT's headers include cuda_runtime_api.h)."""
    # nvcc may be a wrapper script, so ask it rather than guessing from its path.
    result = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                            capture_output=True, text=True)
    for match in re.finditer(r'INCLUDES="([^"]*)"', result.stdout + result.stderr):
        for flag in match.group(1).split():
            path = Path(flag[2:].strip('"')) if flag.startswith("-I") else None
            if path is not None and (path / "cuda_runtime_api.h").is_file():
                return path.resolve()
    return None


def nvcc_version(nvcc: str) -> tuple[int, int]:
    output = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(n) for n in re.search(r"release (\d+)\.(\d+)", output).groups())


def candidate_cuda_archs() -> list[int]:
    """The architectures the plugin targets (Jetson and desktop), as listed in its CMakeLists.txt."""
    text = (plugin_source_dir() / "CMakeLists.txt").read_text()
    return [int(arch) for arch in re.search(r"set\(DATTN_CANDIDATE_ARCHS ([\d ]+)\)", text).group(1).split()]
