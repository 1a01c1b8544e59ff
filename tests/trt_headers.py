"""TensorRT header folders for the plugin's compile tests, named by TRT_INCLUDE_DIRS (os.pathsep-separated) or TRT_INCLUDE_DIR."""

import os
import re
from pathlib import Path

PLUGIN_SOURCES = ["gridSamplePluginCommon.cpp", "gridSamplePlugin.cpp", "gridSamplePluginLegacy.cpp",
                  "gridSamplePluginRegistration.cpp"]
SKIP_REASON = "set TRT_INCLUDE_DIRS (os.pathsep-separated) or TRT_INCLUDE_DIR to TensorRT include folders"


def tensorrt_include_dirs() -> list[str]:
    listed = os.environ.get("TRT_INCLUDE_DIRS") or os.environ.get("TRT_INCLUDE_DIR") or ""
    return [path for path in listed.split(os.pathsep) if path]


def tensorrt_version(include_dir: str) -> tuple[int, int]:
    text = (Path(include_dir) / "NvInferVersion.h").read_text()
    numbers = {}
    for part in ("MAJOR", "MINOR"):
        # 11.x writes `#define TRT_MAJOR_ENTERPRISE 11`; older headers `#define NV_TENSORRT_MAJOR 8`.
        match = re.search(rf"#define (?:NV_TENSORRT_{part}|TRT_{part}_[A-Z]+) +(\d+)", text)
        numbers[part] = int(match.group(1))
    return numbers["MAJOR"], numbers["MINOR"]


def tensorrt10_include_dir() -> str | None:
    """The first listed folder holding TensorRT 10 or later headers."""
    return next((d for d in tensorrt_include_dirs()
                 if (Path(d) / "NvInferVersion.h").is_file() and tensorrt_version(d)[0] >= 10), None)
