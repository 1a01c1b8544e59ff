"""Run a TensorRT engine (either file form) on NCHW float32 batches, with device memory through ctypes on libcudart.

Engines are specific to a GPU and a TensorRT version: one built elsewhere is refused with a message that says so.
An engine whose graph uses the DAttnGridSample plugin needs the plugin library loaded before it is deserialized;
it is loaded when the metadata says so, or when TensorRT reports a missing plugin creator.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import sys

import numpy as np

from dattn.errors import ConfigError, ModelFileError, PluginError
from dattn.plugin.contract import OP_TYPE as PLUGIN_OP
from dattn.plugin.library import load_plugin_library
from dattn.runtime.cuda import CudaRuntime, DeviceBuffers
from dattn.runtime.engine_file import read_engine_file
from dattn.runtime.metadata import model_info
from dattn.runtime.tensorrt_io import tensor_io, tensor_nbytes

# What TensorRT logs when it cannot find a plugin creator (8.x: "getPluginCreator could not find plugin",
# "IPluginCreator not found"; 10.x: "Cannot find plugin: DAttnGridSample ...").
_MISSING_PLUGIN_HINTS = ("could not find plugin", "cannot find plugin", "creator not found", "plugin creator",
                         "ipluginregistry")
# What it logs first for a plan from another GPU, another TensorRT version, or without a usable CUDA.
_WRONG_DEVICE_HINTS = ("incompatible device", "expecting compute")
_WRONG_VERSION_HINTS = ("not compatible with this version", "version tag", "expecting library version", "magic tag",
                        "magictag")
_CUDA_HINTS = ("cudaerror", "cuda runtime", "cuda driver")


_NAMES = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT for RTX"}
_INSTALL_HINTS = {
    "tensorrt": "on a Jetson it comes with JetPack (python3-libnvinfer), on a desktop `pip install tensorrt`",
    "tensorrt_rtx": "on an RTX PC `pip install tensorrt-rtx-cu12`",
}


def import_tensorrt(module_name="tensorrt", needed_for="running a TensorRT engine",
                    instead="run the ONNX with ONNX Runtime"):
    """TensorRT's Python module (tensorrt or tensorrt_rtx); ConfigError saying how to get it when it is missing."""
    try:
        return __import__(module_name)
    except ImportError:
        raise ConfigError("{} needs {}'s Python package '{}' ({}); or {}".format(
            needed_for, _NAMES.get(module_name, module_name), module_name,
            _INSTALL_HINTS.get(module_name, "pip install " + module_name.replace("_", "-")), instead))


def capturing_logger(trt, echo=None):
    """A trt.ILogger that keeps warnings and errors (for error messages) and echoes warnings to `echo`."""

    class CapturingLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors = []

        def log(self, severity, msg):
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                self.errors.append(str(msg))
            elif int(severity) == int(trt.ILogger.Severity.WARNING) and echo is not None:
                echo.write("[TensorRT] {}\n".format(msg))

    return CapturingLogger()


def mentions_missing_plugin(errors):
    text = " ".join(errors).lower()
    return PLUGIN_OP.lower() in text or any(hint in text for hint in _MISSING_PLUGIN_HINTS)


def deserialization_error(path, errors, plugin_loaded):
    """The one-line error for an engine TensorRT refused, judged from what TensorRT logged (its first error first)."""
    said = errors[0] if errors else "no reason given"
    first = said.lower()
    if mentions_missing_plugin(errors):
        if plugin_loaded:
            return PluginError("{}: TensorRT still misses a plugin after loading the {} library (TensorRT says: {}); "
                               "rebuild the library for this TensorRT with `dattn plugin build`".format(path, PLUGIN_OP, said))
        return PluginError("{}: the engine needs the {} plugin library (TensorRT says: {}); build it with `dattn plugin "
                           "build` and pass --plugin PATH/libdattn_trt_plugins.so".format(path, PLUGIN_OP, said))
    if any(hint in first for hint in _WRONG_DEVICE_HINTS):
        return ModelFileError("{}: built for another GPU (TensorRT says: {}); engines are not portable: build it again on "
                              "this machine from the ONNX".format(path, said))
    if any(hint in first for hint in _WRONG_VERSION_HINTS):
        return ModelFileError("{}: built with another TensorRT version, or not an engine (TensorRT says: {}); engines are "
                              "not portable: build it again on this machine from the ONNX".format(path, said))
    if any(hint in first for hint in _CUDA_HINTS):
        return ModelFileError("{}: TensorRT cannot use CUDA here (TensorRT says: {}); check the GPU and its driver"
                              .format(path, said))
    return ModelFileError("{}: TensorRT cannot load this engine (TensorRT says: {}); it may be truncated, or built for "
                          "another GPU or TensorRT version: engines are not portable, build it again on this machine "
                          "from the ONNX".format(path, said))


def _shape_text(shape):
    return "x".join(str(int(d)) for d in shape)


class TensorRTRunner(object):
    """`runner(batch)` -> the model's first output (N, 4 + classes, anchors) as float32.

    metadata: names, stride, imgsz... for a raw plan, which carries none (as in ultralytics' engine header).
    plugin_library: the plugin's library (default: $DATTN_TRT_PLUGIN, else what `dattn plugin build` made).
    trt, cuda and load_plugin may be given (tests pass fakes of each API generation); by default the TensorRT
    module named by the plan's magic, CudaRuntime() on libcudart, and dattn.plugin.library's loader.
    """

    def __init__(self, path, device=0, plugin_library=None, metadata=None, trt=None, cuda=None, echo=sys.stderr,
                 load_plugin=load_plugin_library):
        engine_file = read_engine_file(path)
        if not engine_file.metadata and metadata:
            engine_file = engine_file._replace(metadata=dict(metadata))
        self.path = str(path)
        self.trt = trt if trt is not None else import_tensorrt(engine_file.module_name)
        self.logger = capturing_logger(self.trt, echo)
        library = plugin_library
        self.load_plugin = load_plugin
        self.plugin_loaded = False
        if engine_file.metadata.get("dattn_grid_sample") == "plugin":  # before CUDA: a missing library says so first
            self._load_plugin(library)
        self.cuda = cuda if cuda is not None else CudaRuntime()
        self.cuda.set_device(device)
        self.runtime = self.trt.Runtime(self.logger)
        self.engine = self._deserialize(engine_file.plan, library)
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise ModelFileError("{}: TensorRT could not create an execution context ({}); the GPU may be out of memory"
                                 .format(self.path, "; ".join(self.logger.errors) or "no reason given"))
        self.io = tensor_io(self.trt, self.engine, self.context)
        inputs = [name for name in self.io.names if self.io.is_input(name)]
        if len(inputs) != 1:
            raise ModelFileError("{}: expected one input tensor (images), found {}".format(self.path, len(inputs)))
        self.input_name = inputs[0]
        self.output_names = [name for name in self.io.names if not self.io.is_input(name)]
        self.output_shape = tuple(d if d > 0 else None for d in self.io.engine_shape(self.output_names[0]))
        self.info = model_info(engine_file.metadata, self.io.engine_shape(self.input_name), self.path)
        self.stream = self.cuda.create_stream()
        self.buffers = DeviceBuffers(self.cuda)
        version = getattr(self.trt, "__version__", "?")
        self.description = "TensorRT {} ({} API)".format(version, self.io.api)
        self.on_cpu = False

    def _load_plugin(self, library):
        self.load_plugin(self.trt, self.logger, library)
        self.plugin_loaded = True

    def _deserialize(self, plan, library):
        engine = self.runtime.deserialize_cuda_engine(plan)
        if engine is None and not self.plugin_loaded and mentions_missing_plugin(self.logger.errors):
            self._load_plugin(library)
            del self.logger.errors[:]
            engine = self.runtime.deserialize_cuda_engine(plan)
        if engine is None:
            raise deserialization_error(self.path, self.logger.errors, self.plugin_loaded)
        return engine

    def _set_input_shape(self, shape):
        if -1 not in self.io.engine_shape(self.input_name):
            expected = self.io.engine_shape(self.input_name)
            if tuple(shape) != expected:
                raise ConfigError("{}: the engine takes input {} only, got {}; export and build it with --dynamic, or at "
                                  "this size".format(self.path, _shape_text(expected), _shape_text(shape)))
            return
        low, _, high = self.io.profile(self.input_name)
        inside = all(lo <= d <= hi for lo, d, hi in zip(low, shape, high))
        if not inside or not self.io.set_input_shape(self.input_name, shape):
            raise ConfigError("{}: input {} is outside the engine's shape range ({} to {}); choose --imgsz within it"
                              .format(self.path, _shape_text(shape), _shape_text(low), _shape_text(high)))

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=self.io.dtype(self.input_name))
        self._set_input_shape(batch.shape)
        addresses = {self.input_name: self.buffers.address(self.input_name, batch.nbytes)}
        outputs = []
        for name in self.output_names:
            host = np.empty(self.io.shape(name), dtype=self.io.dtype(name))
            addresses[name] = self.buffers.address(name, tensor_nbytes(host.shape, host.dtype))
            outputs.append((name, host))
        # Plain (synchronous) copies: correct with both APIs, and execute() has synchronised the stream.
        self.cuda.copy_to_device(addresses[self.input_name], batch)
        del self.logger.errors[:]
        if not self.io.execute(addresses, self.stream, self.cuda):
            raise RuntimeError("{}: TensorRT failed to run the engine: {}".format(
                self.path, "; ".join(self.logger.errors) or "no reason given"))
        for name, host in outputs:
            self.cuda.copy_to_host(host, addresses[name])
        return outputs[0][1].astype(np.float32, copy=False)

    def close(self):
        self.buffers.release()
        self.cuda.destroy_stream(self.stream)
