"""Load the built plugin library into a TensorRT process, so engines and parsers find DAttnGridSample.

A library built for another TensorRT must never reach this TensorRT's registry: its plugin classes would be
called through the wrong virtual tables. So the library's own statement of what it was built for (the string
`dattnTrtPluginBuildInfo`, e.g. "dattn-trt-plugin-build tensorrt=10.3.0 interface=IPluginV3") is read from the
file before it is loaded, and compared with the TensorRT in use:

- TensorRT (`tensorrt`): the library's TensorRT major version must be the one in use;
- TensorRT for RTX (`tensorrt_rtx`): it loads IPluginV3 plugins only, i.e. a library built against TensorRT 10
  or later headers.

Then the library is dlopen'ed (its static registration registers the creator where libnvinfer is in reach) and,
if the creator is still missing, handed to the registry's load_library (its getCreators / getPluginCreators entry
point: TensorRT 8.6+, and TensorRT for RTX). Python 3.6 compatible: the runtime loads plugins on JetPack 4.6.
"""

import ctypes
import os
import re
from collections import namedtuple
from pathlib import Path

from dattn.errors import PluginError
from dattn.plugin.build import plugin_path
from dattn.plugin.contract import LIBRARY_ENV, LIBRARY_NAME, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

BUILD_INFO_SYMBOL = "dattnTrtPluginBuildInfo"
_BUILD_INFO = re.compile(rb"dattn-trt-plugin-build tensorrt=(\d+)\.(\d+)\.(\d+) interface=(\w+)")
# TensorRT for RTX imports plugins through IPluginV3 only.
_RTX_INTERFACE = "IPluginV3"

BuildInfo = namedtuple("BuildInfo", ["tensorrt", "interface"])  # tensorrt: (major, minor, patch)


def require_plugin_library(library=None):
    """The library to load (a Path): `library`, else $DATTN_TRT_PLUGIN, else the one `dattn plugin build` made."""
    path = Path(library) if library is not None else plugin_path()
    if path is not None and path.is_file():
        return path
    override = os.environ.get(LIBRARY_ENV)
    if path is not None:
        where = "{} does not exist".format(path)
    elif override:
        where = "{}={} does not exist".format(LIBRARY_ENV, override)
    else:
        where = "no {} was found".format(LIBRARY_NAME)
    raise PluginError("the graph uses the {} plugin but {}: run `dattn plugin build` (or set {} to a built "
                      "library)".format(OP_TYPE, where, LIBRARY_ENV))


def read_build_info(path):
    """What the library (or object file) was built for, read from the file without loading it; None if it does not say."""
    match = _BUILD_INFO.search(Path(path).read_bytes())
    if match is None:
        return None
    major, minor, patch, interface = match.groups()
    return BuildInfo((int(major), int(minor), int(patch)), interface.decode())


def tensorrt_in_use(trt):
    """(name, (major, minor, patch)) of a TensorRT Python module: 'TensorRT' or 'TensorRT for RTX'."""
    rtx = trt.__name__.split(".")[0] == "tensorrt_rtx"
    version = tuple(int(part) for part in re.findall(r"\d+", trt.__version__)[:3])
    return ("TensorRT for RTX" if rtx else "TensorRT"), version


def check_build_matches(info, trt, path):
    """PluginError, in one line, when a library built as `info` cannot serve the TensorRT module `trt`."""
    name, version = tensorrt_in_use(trt)
    built = "{} was built for TensorRT {} ({})".format(Path(path).name, _dotted(info.tensorrt), info.interface)
    in_use = "{} {} is in use".format(name, _dotted(version))
    if name == "TensorRT for RTX":
        if info.interface != _RTX_INTERFACE:
            raise PluginError("{}, but {}, which loads IPluginV3 plugins only: rebuild it against TensorRT 10 or "
                              "later headers (`dattn plugin build --tensorrt-root <TensorRT 10+>`)".format(built, in_use))
    elif info.tensorrt[0] != version[0]:
        raise PluginError("{}, but {}: rebuild it against this TensorRT's headers (`dattn plugin build "
                          "--tensorrt-root <TensorRT {}>`)".format(built, in_use, version[0]))


def find_creator(registry):
    """The registry's DAttnGridSample creator, or None."""
    if hasattr(registry, "get_creator"):  # TensorRT 10+ and TensorRT for RTX
        return registry.get_creator(OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    return registry.get_plugin_creator(OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE)


def load_plugin_library(trt, logger, library=None):
    """Load the plugin library into the TensorRT module `trt` (and TensorRT's own plugins); returns its Path.

    Raises PluginError when the library is missing, was built for another TensorRT, cannot be loaded, or
    leaves no DAttnGridSample creator in the registry.
    """
    path = require_plugin_library(library)
    info = read_build_info(path)
    if info is None:
        raise PluginError("{} does not say which TensorRT it was built for (an older dattn's build?): rebuild it "
                          "with `dattn plugin build`".format(path))
    check_build_matches(info, trt, path)
    try:
        # Static registration runs here, where a TensorRT registry is in reach.
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError as error:  # the libnvinfer it was linked against is missing, wrong architecture, ...
        raise PluginError("{} cannot be loaded ({}): rebuild it for this TensorRT with `dattn plugin "
                          "build`".format(path, error)) from None
    registry = trt.get_plugin_registry()
    if find_creator(registry) is None and hasattr(registry, "load_library"):
        registry.load_library(str(path))  # through its getCreators / getPluginCreators entry point
    if hasattr(trt, "init_libnvinfer_plugins"):
        trt.init_libnvinfer_plugins(logger, "")
    if find_creator(registry) is None:
        name, version = tensorrt_in_use(trt)
        raise PluginError("{} loaded, but {} {} has no {}/{}/{} creator: rebuild it linked against this TensorRT "
                          "(`dattn plugin build --tensorrt-root ...`)".format(
                              path, name, _dotted(version), OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE))
    return path


def _dotted(version):
    return ".".join(str(part) for part in version)
