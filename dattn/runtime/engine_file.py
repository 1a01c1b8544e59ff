"""TensorRT engine files in both forms: ultralytics' (4-byte little-endian length, JSON metadata, plan) and the raw plan.

A raw plan starts with b"ftrt" (TensorRT) or b"vtrt" (TensorRT for RTX). trtexec, DeepStream and Triton read only
raw plans; ultralytics' `YOLO("x.engine")` reads both.

Python 3.6 compatible (this file travels to JetPack 4.6 in the Jetson bundle and into Triton's python backend).
"""

import collections
import json

from dattn.errors import ModelFileError

TENSORRT_MAGIC = b"ftrt"
TENSORRT_RTX_MAGIC = b"vtrt"
# The Python module that deserializes each kind of plan.
MODULE_FOR_MAGIC = {TENSORRT_MAGIC: "tensorrt", TENSORRT_RTX_MAGIC: "tensorrt_rtx"}
_ZIP_MAGIC = b"PK\x03\x04"  # a PyTorch checkpoint (.pt) is a zip archive
_HEADER_LENGTH_BYTES = 4

EngineFile = collections.namedtuple("EngineFile", ["metadata", "plan", "module_name"])
EngineFile.__doc__ = ("metadata (dict, empty for a raw plan), plan (bytes for the TensorRT runtime), module_name "
                      "('tensorrt' or 'tensorrt_rtx': the one that can deserialize it, judged from the plan's magic).")


def _header_metadata(data, name):
    """The JSON metadata of ultralytics' header and the header's length; ({}, 0) for a raw plan.

    A plan's magic at the start means a raw plan; a '{' after the 4-byte length means a header, which must then
    be whole and valid JSON. Anything else is left to TensorRT to judge (older plans, future ones).
    """
    if bytes(data[:4]) in MODULE_FOR_MAGIC or data[_HEADER_LENGTH_BYTES:_HEADER_LENGTH_BYTES + 1] != b"{":
        return {}, 0
    length = int.from_bytes(data[:_HEADER_LENGTH_BYTES], "little")
    end = _HEADER_LENGTH_BYTES + length
    if end > len(data):
        raise ModelFileError("{}: truncated: its header announces {} bytes of metadata but the file has {} bytes; "
                             "copy or export it again".format(name, length, len(data)))
    try:
        metadata = json.loads(data[_HEADER_LENGTH_BYTES:end].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: JSON nested too deeply
        metadata = None
    if not isinstance(metadata, dict):
        raise ModelFileError("{}: damaged: its metadata header is not a JSON object; copy or export it again"
                             .format(name))
    return metadata, end


def parse_engine_bytes(data, name="engine"):
    """EngineFile from the bytes of an engine file; ModelFileError naming `name` when they are not one."""
    metadata, header_end = _header_metadata(data, name)
    plan = data[header_end:]
    if plan[:4] == _ZIP_MAGIC:
        raise ModelFileError("{}: is a PyTorch checkpoint, not a TensorRT engine; export it first "
                             "(dattn-export --weights {} --format engine, or --format onnx)".format(name, name))
    if not plan:
        raise ModelFileError("{}: truncated: there is no engine after the metadata header".format(name))
    # An unknown magic is left to TensorRT to judge (older plans, future ones); it says why it refuses.
    module_name = MODULE_FOR_MAGIC.get(bytes(plan[:4]), "tensorrt")
    return EngineFile(metadata, plan, module_name)


def engine_file_bytes(plan, metadata=None):
    """The bytes of an engine file: ultralytics' header form with `metadata`, else the raw plan."""
    if metadata is None:
        return plan
    header = json.dumps(metadata).encode("utf-8")
    return len(header).to_bytes(_HEADER_LENGTH_BYTES, "little") + header + plan


def read_engine_file(path):
    """EngineFile of the engine at `path` (either form)."""
    try:
        with open(str(path), "rb") as f:
            data = f.read()
    except (IOError, OSError) as error:
        raise ModelFileError("{}: cannot be read ({})".format(path, error.strerror or error))
    if not data:
        raise ModelFileError("{}: is empty".format(path))
    return parse_engine_bytes(data, str(path))
