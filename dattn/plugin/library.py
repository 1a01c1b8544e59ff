"""Load the built plugin library into a TensorRT process, so engines and parsers find DAttnGridSample."""

from __future__ import annotations

import ctypes
from pathlib import Path

from dattn.errors import PluginError
from dattn.plugin.build import plugin_path
from dattn.plugin.contract import LIBRARY_ENV, LIBRARY_NAME


def require_plugin_library(library: str | Path | None = None) -> Path:
    """The library to load: `library`, else the one `dattn plugin build` made; PluginError when there is none."""
    path = Path(library) if library is not None else plugin_path()
    if path is None or not path.is_file():
        where = f"{path} does not exist" if path is not None else f"no {LIBRARY_NAME} found"
        raise PluginError(f"the graph uses the DAttnGridSample plugin but {where}: run `dattn plugin build` "
                          f"(or set {LIBRARY_ENV} to a built library)")
    return path


def load_plugin_library(trt, logger, library: str | Path | None = None) -> Path:
    """dlopen the plugin library (its static initialisers register the creators) and TensorRT's own plugins."""
    path = require_plugin_library(library)
    try:
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as error:  # missing libnvinfer of the version it was built for, wrong architecture, ...
        raise PluginError(f"{path} cannot be loaded ({error}); rebuild it for this TensorRT with `dattn plugin build`") from None
    if hasattr(trt, "init_libnvinfer_plugins"):
        trt.init_libnvinfer_plugins(logger, "")
    return path
