"""Stand-ins for TensorRT's Python module and for libcudart, one per API generation, for the runner's host-side logic.

Each fake engine has only the methods of its generation (checked against TensorRT's own headers and against
tensorrt_rtx's real bindings in the tests): bindings only (8.0-8.4), bindings and named tensors (8.5-9.x),
named tensors only (10.x and later). Device memory is host memory behind integer addresses, so a run really
moves the input in and the output out; the "model" computes an output from the input that a test can predict.
"""

from __future__ import annotations

import enum

import numpy as np

# Python method -> the C++ method of TensorRT's headers it wraps.
BINDING_API = {"num_bindings": "getNbBindings", "get_binding_name": "getBindingName", "binding_is_input": "bindingIsInput",
               "get_binding_shape": "getBindingDimensions", "get_binding_dtype": "getBindingDataType",
               "get_profile_shape": "getProfileDimensions", "set_binding_shape": "setBindingDimensions",
               "execute_v2": "executeV2"}
TENSOR_API = {"num_io_tensors": "getNbIOTensors", "get_tensor_name": "getIOTensorName", "get_tensor_mode": "getTensorIOMode",
              "get_tensor_shape": "getTensorShape", "get_tensor_dtype": "getTensorDataType",
              "get_tensor_profile_shape": "getProfileShape", "set_input_shape": "setInputShape",
              "set_tensor_address": "setTensorAddress", "execute_async_v3": "enqueueV3"}
CLASSES = 2
STRIDES = (8, 16, 32)


def anchors(height, width):
    return sum((height // s) * (width // s) for s in STRIDES)


def model_output(batch: np.ndarray) -> np.ndarray:
    """What the fake network computes: (N, 4 + CLASSES, anchors), every value a function of its image."""
    n, _, h, w = batch.shape
    a = np.arange(anchors(h, w), dtype=np.float32)
    means = batch.reshape(n, -1).mean(axis=1).astype(np.float32)
    return means[:, None, None] + np.arange(4 + CLASSES, dtype=np.float32)[None, :, None] + a[None, None, :] * 1e-3


class FakeCuda:
    """Device memory as numpy bytes behind addresses; records allocations and frees."""

    def __init__(self):
        self.memory, self.allocations, self.freed, self.calls = {}, [], [], []
        self._next = 0x1000

    def set_device(self, index):
        self.calls.append(("set_device", index))

    def malloc(self, nbytes):
        address, self._next = self._next, self._next + nbytes + 0x100
        self.memory[address] = np.zeros(nbytes, dtype=np.uint8)
        self.allocations.append(nbytes)
        return address

    def free(self, address):
        self.freed.append(len(self.memory.pop(address)))

    def copy_to_device(self, address, array):
        self.memory[address][:array.nbytes] = np.frombuffer(array.tobytes(), dtype=np.uint8)

    def copy_to_host(self, array, address):
        array[...] = np.frombuffer(self.memory[address][:array.nbytes].tobytes(), dtype=array.dtype).reshape(array.shape)

    def read(self, address, shape, dtype):
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return np.frombuffer(self.memory[address][:nbytes].tobytes(), dtype=dtype).reshape(shape)

    def write(self, address, array):
        self.copy_to_device(address, np.ascontiguousarray(array))

    def create_stream(self):
        return 7

    def synchronize(self, stream):
        self.calls.append(("synchronize", stream))

    def destroy_stream(self, stream):
        self.calls.append(("destroy_stream", stream))


class Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class _Network:
    """The engine's tensors: input `images` (N, 3, H, W) with -1 where dynamic, output `output0`."""

    def __init__(self, input_shape, profile):
        self.input_shape = tuple(input_shape)
        self.profile = profile  # (min, opt, max) of the input, or None for a static engine
        self.shapes = {"images": self.input_shape, "output0": self._output_shape(self.input_shape)}

    @staticmethod
    def _output_shape(shape):
        n, _, h, w = shape
        return (n, 4 + CLASSES, anchors(h, w) if h > 0 and w > 0 else -1)

    names = ("images", "output0")


class _Context:
    def __init__(self, network, cuda):
        self.network, self.cuda = network, cuda
        self.shapes = dict(network.shapes)
        self.addresses = {}

    def _set_shape(self, name, shape):
        low, _, high = self.network.profile or (self.network.input_shape,) * 3
        if not all(lo <= d <= hi for lo, d, hi in zip(low, shape, high)):
            return False
        self.shapes[name] = tuple(shape)
        self.shapes["output0"] = _Network._output_shape(shape)
        return True

    def _run(self):
        batch = self.cuda.read(self.addresses["images"], self.shapes["images"], np.float32)
        self.cuda.write(self.addresses["output0"], model_output(batch))
        return True


class BindingContext(_Context):
    def set_binding_shape(self, index, shape):
        return self._set_shape(self.network.names[index], shape)

    def get_binding_shape(self, index):
        return self.shapes[self.network.names[index]]

    def execute_v2(self, bindings):
        self.addresses = dict(zip(self.network.names, bindings))
        return self._run()


class TensorContext(_Context):
    def set_input_shape(self, name, shape):
        return self._set_shape(name, shape)

    def get_tensor_shape(self, name):
        return self.shapes[name]

    def set_tensor_address(self, name, address):
        self.addresses[name] = address
        return True

    def execute_async_v3(self, stream_handle):
        return self._run()


class BothContext(BindingContext, TensorContext):
    pass


class _Engine:
    context_class = _Context

    def __init__(self, trt, network, cuda):
        self.trt, self.network, self.cuda = trt, network, cuda

    def create_execution_context(self):
        return self.context_class(self.network, self.cuda)


class BindingEngine(_Engine):
    """TensorRT 8.0-8.4."""

    context_class = BindingContext
    num_bindings = 2

    def get_binding_name(self, index):
        return self.network.names[index]

    def binding_is_input(self, index):
        return index == 0

    def get_binding_shape(self, index):
        return self.network.shapes[self.network.names[index]]

    def get_binding_dtype(self, index):
        return self.trt.DataType.FLOAT

    def get_profile_shape(self, profile_index, binding):
        return self.network.profile


class TensorEngine(_Engine):
    """TensorRT 10.x and later."""

    context_class = TensorContext
    num_io_tensors = 2

    def get_tensor_name(self, index):
        return self.network.names[index]

    def get_tensor_mode(self, name):
        return self.trt.TensorIOMode.INPUT if name == "images" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name):
        return self.network.shapes[name]

    def get_tensor_dtype(self, name):
        return self.trt.DataType.FLOAT

    def get_tensor_profile_shape(self, name, profile_index):
        return self.network.profile


class BothEngine(BindingEngine, TensorEngine):
    """TensorRT 8.5-9.x: both APIs (bindings deprecated)."""

    context_class = BothContext


ENGINES = {"8.2": BindingEngine, "8.6": BothEngine, "10.3": TensorEngine}


class FakeTensorRT:
    """The parts of the `tensorrt` module the runner uses. deserialize_cuda_engine follows `script`:

    a list of outcomes, one per call: "engine", or a list of messages to log as errors (and return None);
    a call after a plugin library was loaded ("plugins initialised") may answer differently.
    """

    class DataType(enum.Enum):
        FLOAT = "float32"
        HALF = "float16"

    class TensorIOMode(enum.Enum):
        INPUT = 1
        OUTPUT = 2

    def __init__(self, generation, input_shape=(1, 3, 64, 96), profile=None, cuda=None, script=("engine",)):
        self.__version__ = {"8.2": "8.2.1.8", "8.6": "8.6.2.3", "10.3": "10.3.0.30"}[generation]
        self.generation, self.cuda = generation, cuda or FakeCuda()
        self.network = _Network(input_shape, profile)
        self.script = list(script)
        self.events = []
        fake = self

        class ILogger:
            Severity = globals()["Severity"]

            def __init__(self):
                pass

        class Runtime:
            def __init__(self, logger):
                self.logger = logger
                fake.events.append("runtime")

            def deserialize_cuda_engine(self, plan):
                fake.events.append("deserialize")
                outcome = fake.script.pop(0)
                if outcome == "engine":
                    return ENGINES[fake.generation](fake, fake.network, fake.cuda)
                for message in outcome:
                    self.logger.log(Severity.ERROR, message)
                return None

        self.ILogger, self.Runtime = ILogger, Runtime

    @staticmethod
    def nptype(dtype):
        return np.dtype(dtype.value).type

    def init_libnvinfer_plugins(self, logger, namespace):
        self.events.append("plugins initialised")
        return True


def engine_file_bytes(metadata: dict | None, plan: bytes = b"ftrt" + bytes(60)) -> bytes:
    """An engine file: ultralytics' header form when metadata is given, else the raw plan."""
    from dattn.runtime.engine_file import engine_file_bytes as write

    return write(plan, metadata)
