"""Run an exported ONNX with ONNX Runtime on NCHW float32 batches, on the best execution provider available.

TensorRT's execution provider, then CUDA's, then the CPU; `description` says which one runs. Names, stride,
image size and whether shapes are dynamic come from the file's metadata and its input.
A graph with DAttnGridSample plugin nodes runs with dattn's reference op (dattn.plugin.ort_reference), where
dattn's plugin package and onnxruntime-extensions are installed.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""


from dattn.errors import ConfigError, ModelFileError
from dattn.plugin.contract import OP_TYPE as PLUGIN_OP
from dattn.runtime.metadata import model_info

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("running an ONNX model needs ONNX Runtime: pip install onnxruntime (onnxruntime-gpu for CUDA); "
                          "on a Jetson, NVIDIA's Jetson Zoo has onnxruntime-gpu wheels")
    return onnxruntime


def parse_device(device):
    """(kind, index) from "cpu", "cuda", "cuda:1", "0" or None (None: the best available)."""
    if device is None or device == "":
        return None, 0
    text = str(device).lower()
    if text == "cpu":
        return "cpu", 0
    if text.startswith("cuda"):
        text = text[4:].lstrip(":") or "0"
    if not text.isdigit():
        raise ConfigError("--device must be cpu, cuda, cuda:N or N, got {!r}".format(device))
    return "cuda", int(text)


def choose_providers(available, device=None):
    """Execution providers to ask for, best first, given the available ones and the requested device."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    gpu = [(name, {"device_id": index}) for name in _GPU_PROVIDERS if name in available]
    if kind == "cuda" and not gpu:
        raise ConfigError("--device {} asks for a GPU but this ONNX Runtime has no GPU execution provider (it has {}); "
                          "pip install onnxruntime-gpu, or use --device cpu".format(device, ", ".join(available)))
    return gpu + ["CPUExecutionProvider"]


def _plugin_session_parts(model, name, options):
    """Model bytes and session options that run the plugin nodes with dattn's reference op."""
    try:  # optional: the Jetson bundle and Triton carry no reference op, and only this path needs onnx
        import onnx

        from dattn.plugin import ort_reference
    except ImportError:
        raise ModelFileError("{}: the graph uses the {} TensorRT plugin; ONNX Runtime runs it only with dattn's reference "
                             "op (dattn and onnxruntime-extensions installed); build a TensorRT engine to run it here"
                             .format(name, PLUGIN_OP))
    graph = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
    return ort_reference.onnxruntime_model(graph).SerializeToString(), ort_reference.session_options(options)


def _session(onnxruntime, model, name, providers, threads):
    def options():
        made = onnxruntime.SessionOptions()
        if threads:
            made.intra_op_num_threads = int(threads)
        return made

    try:
        return onnxruntime.InferenceSession(model, sess_options=options(), providers=providers)
    except Exception as error:  # ORT raises its own exception types (Fail, InvalidProtobuf, ...) from pybind11
        message = str(error)
        if PLUGIN_OP not in message:
            first = message.strip().splitlines()[0] if message.strip() else type(error).__name__
            raise ModelFileError("{}: not a model ONNX Runtime can load (truncated, or another kind of file?): {}"
                                 .format(name, first))
    model, plugin_options = _plugin_session_parts(model, name, options())
    # The reference op is numpy on the CPU; other providers would only copy back and forth.
    return onnxruntime.InferenceSession(model, sess_options=plugin_options, providers=["CPUExecutionProvider"])


def _dims_or_none(shape):
    return [d if isinstance(d, int) and d > 0 else None for d in shape]


def _dims(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


class OnnxRuntimeRunner(object):
    """`runner(batch)` -> the model's first output, laid out as its head writes it, as float32.

    path: the ONNX file, or the serialized model's bytes (named `name` in messages).
    """

    def __init__(self, path, device=None, threads=None, name=None):
        onnxruntime = _import_onnxruntime()
        model = path if isinstance(path, bytes) else str(path)
        self.path = name or ("the ONNX model" if isinstance(path, bytes) else str(path))
        self.session = _session(onnxruntime, model, self.path,
                                choose_providers(onnxruntime.get_available_providers(), device), threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        image = inputs[0] if len(inputs) == 1 else None
        if image is None or image.type != "tensor(float)" or len(image.shape) != 4 or image.shape[1] not in (3, "3") \
                and isinstance(image.shape[1], int) or not outputs:
            raise ModelFileError("{}: not a detector: a detector takes one float32 (N, 3, H, W) image, this model takes "
                                 "{}".format(self.path, ", ".join("{} {}".format(i.type, _dims(i.shape)) for i in inputs)))
        self.input_name = inputs[0].name
        self.output_shape = tuple(_dims_or_none(outputs[0].shape)) if outputs else ()
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.info = model_info(metadata, _dims_or_none(inputs[0].shape), self.path)
        provider = self.session.get_providers()[0]
        self.description = "ONNX Runtime {} ({})".format(onnxruntime.__version__, provider)
        self.on_cpu = provider == "CPUExecutionProvider"  # inference keeps every core busy

    def __call__(self, batch):
        return self.session.run(None, {self.input_name: batch})[0]
