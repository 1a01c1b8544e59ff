"""A model's input and output tensors in an engine, over the two generations of TensorRT's Python API.

- bindings (TensorRT 8.0-8.4; still present, deprecated, up to 9.x): tensors are binding indices,
  `context.set_binding_shape(i, shape)`, `context.execute_v2(addresses in binding order)`;
- named tensors (TensorRT 8.5 and later, the only API from 10.0): `context.set_input_shape(name, shape)`,
  `context.set_tensor_address(name, address)`, `context.execute_async_v3(stream)`.

Which one is used is decided by what the engine object has (`num_io_tensors`), never by a version number.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import numpy as np


def tensor_nbytes(shape, dtype):
    """Bytes a tensor of `shape` and numpy `dtype` occupies (dims must be known)."""
    if any(int(d) < 0 for d in shape):
        raise ValueError("shape {} is not fully known".format(tuple(shape)))
    return int(np.prod([int(d) for d in shape], dtype=np.int64)) * np.dtype(dtype).itemsize


class NamedTensorIO(object):
    """TensorRT >= 8.5: tensors addressed by name."""

    api = "named tensors"

    def __init__(self, trt, engine, context):
        self.trt, self.engine, self.context = trt, engine, context
        self.names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]

    def is_input(self, name):
        return self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT

    def engine_shape(self, name):
        """The shape the engine was built with, -1 where it is dynamic."""
        return tuple(self.engine.get_tensor_shape(name))

    def dtype(self, name):
        return np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))

    def profile(self, name):
        """(min, opt, max) shapes of optimisation profile 0."""
        return tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))

    def set_input_shape(self, name, shape):
        return self.context.set_input_shape(name, tuple(int(d) for d in shape)) is not False

    def shape(self, name):
        """The shape in the context, once input shapes are set."""
        return tuple(self.context.get_tensor_shape(name))

    def execute(self, addresses, stream, cuda):
        for name in self.names:
            self.context.set_tensor_address(name, addresses[name])
        ok = self.context.execute_async_v3(stream)
        cuda.synchronize(stream)
        return ok


class BindingIO(object):
    """TensorRT 8.0-8.4: tensors addressed by binding index."""

    api = "bindings"

    def __init__(self, trt, engine, context):
        self.trt, self.engine, self.context = trt, engine, context
        self.names = [engine.get_binding_name(i) for i in range(engine.num_bindings)]
        self._index = {name: i for i, name in enumerate(self.names)}

    def is_input(self, name):
        return self.engine.binding_is_input(self._index[name])

    def engine_shape(self, name):
        return tuple(self.engine.get_binding_shape(self._index[name]))

    def dtype(self, name):
        return np.dtype(self.trt.nptype(self.engine.get_binding_dtype(self._index[name])))

    def profile(self, name):
        return tuple(tuple(s) for s in self.engine.get_profile_shape(0, self._index[name]))

    def set_input_shape(self, name, shape):
        return self.context.set_binding_shape(self._index[name], tuple(int(d) for d in shape)) is not False

    def shape(self, name):
        return tuple(self.context.get_binding_shape(self._index[name]))

    def execute(self, addresses, stream, cuda):
        return self.context.execute_v2([addresses[name] for name in self.names])


def tensor_io(trt, engine, context):
    """The adapter for the API this TensorRT offers: named tensors where the engine has them, else bindings."""
    return NamedTensorIO(trt, engine, context) if hasattr(engine, "num_io_tensors") else BindingIO(trt, engine, context)
